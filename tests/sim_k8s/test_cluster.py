"""Cluster-side behaviour of the twin: OVN subnets, eviction budgets, CRDs, faults, MCS, kubectl."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from sim.k8s.controllers import SUBNET_ANNOTATION
from sim.k8s.mcs import IGNITION_ACCEPT
from sim.k8s.server import KubeTwin
from tests.sim_k8s.conftest import client_for_token, node_body, wait_for
from tests.sim_k8s.test_certificates import csr_body


def _subnet(core: client.CoreV1Api, name: str) -> str | None:
    return (core.read_node(name).metadata.annotations or {}).get(SUBNET_ANNOTATION)


def test_windows_nodes_get_distinct_hybrid_overlay_subnets(core: client.CoreV1Api):
    core.create_node(node_body("linux-1", {"kubernetes.io/os": "linux"}))
    for name in ("win-1", "win-2"):
        core.create_node(node_body(name, {"kubernetes.io/os": "windows"}))
    subnets = [
        wait_for(lambda n=n: _subnet(core, n), what=f"subnet on {n}") for n in ("win-1", "win-2")
    ]
    nets = [ipaddress.ip_network(s) for s in subnets]
    assert len(set(nets)) == 2
    assert all(
        n.prefixlen == 24 and n.subnet_of(ipaddress.ip_network("10.132.0.0/14")) for n in nets
    )
    assert _subnet(core, "linux-1") is None


def _pod(name: str, phase: str | None = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "win-1", "containers": [{"name": "c", "image": "web"}]},
    }


def _running_pod(core: client.CoreV1Api, name: str) -> None:
    """A pod Running on node win-1, whose kubelet is up (it posts status), so that a deleted
    pod is removed once the kubelet stopped it, as on a real cluster."""
    try:
        core.create_node(node_body("win-1"))
    except ApiException as exc:
        assert exc.status == 409
    core.create_namespaced_pod("winfleet", _pod(name))
    core.patch_namespaced_pod_status(name, "winfleet", {"status": {"phase": "Running"}})


def _evict(core: client.CoreV1Api, name: str) -> None:
    core.create_namespaced_pod_eviction(
        name,
        "winfleet",
        client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="winfleet")),
    )


def test_eviction_that_would_violate_a_disruption_budget_is_refused_with_429(
    core: client.CoreV1Api, api_client: client.ApiClient, twin: KubeTwin
):
    client.PolicyV1Api(api_client).create_namespaced_pod_disruption_budget(
        "winfleet",
        {
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    _running_pod(core, "web-1")
    with pytest.raises(ApiException) as exc:
        _evict(core, "web-1")
    body = json.loads(exc.value.body)
    assert exc.value.status == 429 and body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert twin.store.get("pods", "web-1", "winfleet") is not None
    _running_pod(core, "web-2")
    _evict(core, "web-1")
    wait_for(lambda: twin.store.get("pods", "web-1", "winfleet") is None, what="web-1 gone")


def test_disruption_budget_status_follows_the_pods(
    core: client.CoreV1Api, api_client: client.ApiClient
):
    policy = client.PolicyV1Api(api_client)
    policy.create_namespaced_pod_disruption_budget(
        "winfleet",
        {
            "metadata": {"name": "web"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    for name in ("web-1", "web-2", "web-3"):
        _running_pod(core, name)

    def status() -> tuple[int, int, int] | None:
        s = policy.read_namespaced_pod_disruption_budget("web", "winfleet").status
        return (s.expected_pods, s.current_healthy, s.disruptions_allowed) if s else None

    wait_for(lambda: status() == (3, 3, 1), what="budget status 3 pods, 1 disruption allowed")
    _evict(core, "web-1")
    wait_for(lambda: status() == (2, 2, 1), what="budget status after eviction")


def test_pods_without_a_budget_are_evicted(core: client.CoreV1Api, twin: KubeTwin):
    _running_pod(core, "free")
    _evict(core, "free")
    wait_for(lambda: twin.store.get("pods", "free", "winfleet") is None, what="pod free gone")


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {  # undeclared fields would be pruned, as for real
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                            "status": {
                                "type": "object",
                                "properties": {"ready": {"type": "boolean"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


def test_a_registered_crd_serves_its_custom_resources(api_client: client.ApiClient):
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(WIDGET_CRD)
    custom = client.CustomObjectsApi(api_client)
    args = ("example.com", "v1", "winfleet", "widgets")
    created = custom.create_namespaced_custom_object(
        *args,
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 1},
            "status": {"ignored": True},
        },
    )
    assert "status" not in created and created["metadata"]["generation"] == 1
    custom.patch_namespaced_custom_object(*args, "w1", {"spec": {"size": 2}})
    custom.patch_namespaced_custom_object_status(*args, "w1", {"status": {"ready": True}})
    got = custom.get_namespaced_custom_object(*args, "w1")
    assert (got["spec"], got["status"], got["metadata"]["generation"]) == (
        {"size": 2},
        {"ready": True},
        2,
    )
    assert [
        w["metadata"]["name"] for w in custom.list_namespaced_custom_object(*args)["items"]
    ] == ["w1"]
    custom.delete_namespaced_custom_object(*args, "w1")
    assert custom.list_namespaced_custom_object(*args)["items"] == []


def test_cluster_scoped_crds_serve_cluster_scoped_resources(api_client: client.ApiClient):
    crd = json.loads(
        json.dumps(WIDGET_CRD)
        .replace("widget", "gadget")
        .replace("Widget", "Gadget")
        .replace('"Namespaced"', '"Cluster"')
    )
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
    custom = client.CustomObjectsApi(api_client)
    custom.create_cluster_custom_object(
        "example.com",
        "v1",
        "gadgets",
        {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}},
    )
    assert (
        custom.get_cluster_custom_object("example.com", "v1", "gadgets", "g1")["metadata"]["name"]
        == "g1"
    )


def test_machine_api_types_are_served_from_start(api_client: client.ApiClient):
    custom = client.CustomObjectsApi(api_client)
    args = ("machine.openshift.io", "v1beta1", "openshift-machine-api")
    custom.create_namespaced_custom_object(
        *args,
        "machinesets",
        {
            "apiVersion": "machine.openshift.io/v1beta1",
            "kind": "MachineSet",
            "metadata": {"name": "win"},
            "spec": {"replicas": 2},
        },
    )
    custom.create_namespaced_custom_object(
        *args,
        "machines",
        {
            "apiVersion": "machine.openshift.io/v1beta1",
            "kind": "Machine",
            "metadata": {"name": "win-a", "labels": {"machine.openshift.io/os-id": "Windows"}},
        },
    )
    listed = custom.list_namespaced_custom_object(
        *args, "machines", label_selector="machine.openshift.io/os-id=Windows"
    )
    assert [m["metadata"]["name"] for m in listed["items"]] == ["win-a"]


def test_an_injected_fault_fails_the_next_request_then_the_store_serves_normally(
    core: client.CoreV1Api, twin: KubeTwin
):
    twin.faults.add("create", "configmaps", status=500, count=1)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("winfleet", {"metadata": {"name": "f"}})
    assert exc.value.status == 500
    assert twin.store.get("configmaps", "f", "winfleet") is None
    core.create_namespaced_config_map("winfleet", {"metadata": {"name": "f"}})
    assert twin.store.get("configmaps", "f", "winfleet") is not None


def test_injected_429s_carry_retry_after_and_only_hit_matching_requests(
    core: client.CoreV1Api, twin: KubeTwin
):
    certs = client.CertificatesV1Api(core.api_client)
    twin.faults.add("create", "certificatesigningrequests", status=429, count=1)
    core.list_node()
    certs.list_certificate_signing_request()
    with pytest.raises(ApiException) as exc:
        certs.create_certificate_signing_request(csr_body("throttled"))
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "1"
    certs.create_certificate_signing_request(csr_body("throttled"))


def test_injected_latency_slows_matching_requests(core: client.CoreV1Api, twin: KubeTwin):
    twin.faults.latency("list", "nodes", 0.3)
    started = time.monotonic()
    core.list_node()
    assert time.monotonic() - started >= 0.3
    twin.faults.clear()
    started = time.monotonic()
    core.list_node()
    assert time.monotonic() - started < 0.3


def _fetch(url: str, ca: bytes, accept: str | None) -> bytes:
    ctx = ssl.create_default_context(cadata=ca.decode())
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
        return resp.read()


def _files(ignition: dict[str, Any]) -> dict[str, bytes]:
    out = {}
    for f in ignition["storage"]["files"]:
        source = f["contents"]["source"]
        assert source.startswith("data:;base64,")
        out[f["path"]] = base64.b64decode(source.removeprefix("data:;base64,"))
    return out


def test_mcs_serves_worker_ignition_whose_bootstrap_kubeconfig_works(twin: KubeTwin):
    ignition = json.loads(_fetch(twin.mcs_url, twin.ca.ca_pem, IGNITION_ACCEPT))
    assert ignition["ignition"]["version"] == "3.2.0"
    files = _files(ignition)
    assert files["/etc/kubernetes/kubelet-ca.crt"] == twin.ca.ca_pem
    assert yaml.safe_load(files["/etc/kubernetes/kubelet.conf"])["kind"] == "KubeletConfiguration"
    kubeconfig = yaml.safe_load(files["/etc/kubernetes/kubeconfig"])
    cluster = kubeconfig["clusters"][0]["cluster"]
    assert cluster["server"] == twin.url
    assert base64.b64decode(cluster["certificate-authority-data"]) == twin.ca.ca_pem
    token = kubeconfig["users"][0]["user"]["token"]
    with client_for_token(twin, token) as api:
        created = client.CertificatesV1Api(api).create_certificate_signing_request(
            csr_body("from-ignition")
        )
    assert created.spec.username.endswith(":node-bootstrapper")


def test_mcs_refuses_requests_without_the_ignition_accept_header(twin: KubeTwin):
    with pytest.raises(urllib.error.HTTPError) as exc:
        _fetch(twin.mcs_url, twin.ca.ca_pem, "application/json")
    assert exc.value.code == 406
    exc.value.close()


def _kubectl(twin: KubeTwin, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(twin.kubeconfig_path), "HOME": str(twin.state_dir)}
    done = subprocess.run(
        ["/usr/bin/kubectl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kubectl_lists_nodes_csrs_and_configmaps(core: client.CoreV1Api, twin: KubeTwin):
    core.create_node(node_body("win-kubectl", {"kubernetes.io/os": "windows"}))
    core.create_namespaced_config_map("winfleet", {"metadata": {"name": "windows-instances"}})
    client.CertificatesV1Api(core.api_client).create_certificate_signing_request(
        csr_body("csr-kubectl")
    )
    nodes = _kubectl(twin, "get", "nodes")
    assert "win-kubectl" in nodes and "NotReady" in nodes
    csrs = _kubectl(twin, "get", "csr")
    assert "csr-kubectl" in csrs and "Pending" in csrs and "system:admin" in csrs
    assert "windows-instances" in _kubectl(twin, "get", "configmaps", "-n", "winfleet")
    as_json = json.loads(_kubectl(twin, "get", "node", "win-kubectl", "-o", "json"))
    assert as_json["metadata"]["labels"]["kubernetes.io/os"] == "windows"


def test_kubectl_creates_from_files_approves_csrs_and_drains_nodes(
    core: client.CoreV1Api, twin: KubeTwin
):
    core.create_node(node_body("win-drain"))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p1", "namespace": "winfleet"},
        "spec": {"nodeName": "win-drain", "containers": [{"name": "c", "image": "x"}]},
    }
    (twin.state_dir / "pod.json").write_text(json.dumps(pod))
    (twin.state_dir / "csr.json").write_text(json.dumps(csr_body("kubectl-csr")))
    _kubectl(twin, "create", "-f", str(twin.state_dir / "pod.json"))
    _kubectl(twin, "apply", "-f", str(twin.state_dir / "csr.json"))
    _kubectl(twin, "certificate", "approve", "kubectl-csr")
    wait_for(
        lambda: "Approved,Issued" in _kubectl(twin, "get", "csr", "kubectl-csr"),
        what="kubectl to show the CSR issued",
    )
    drained = _kubectl(twin, "drain", "win-drain", "--force", "--timeout=10s")
    assert "pod/p1 evicted" in drained
    assert twin.store.get("pods", "p1", "winfleet") is None
    assert twin.store.get("nodes", "win-drain")["spec"]["unschedulable"] is True


def test_a_token_for_an_ordinary_user_is_authenticated_but_not_authorized(twin: KubeTwin):
    token = twin.issue_token("alice", ("developers",))
    with client_for_token(twin, token) as api:
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(api).list_node()
    body = json.loads(exc.value.body)
    assert exc.value.status == 403 and 'User "alice" cannot list' in body["message"]


def test_updating_a_crd_serves_its_new_version(api_client: client.ApiClient):
    crds = client.ApiextensionsV1Api(api_client)
    crds.create_custom_resource_definition(WIDGET_CRD)
    crd = crds.read_custom_resource_definition("widgets.example.com")
    crd.spec.versions.append(
        client.V1CustomResourceDefinitionVersion(
            name="v2",
            served=True,
            storage=False,
            schema=client.V1CustomResourceValidation(
                open_apiv3_schema=client.V1JSONSchemaProps(type="object")
            ),
        )
    )
    crds.replace_custom_resource_definition("widgets.example.com", crd)
    custom = client.CustomObjectsApi(api_client)
    assert (
        custom.list_namespaced_custom_object("example.com", "v2", "winfleet", "widgets")["items"]
        == []
    )
