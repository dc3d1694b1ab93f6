"""What `kubectl get -o wide` and `kubectl describe node` show from the API server twin."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from sim.k8s.server import KubeTwin
from tests.sim_k8s.conftest import kubectl_ok, node_body
from tests.sim_k8s.test_certificates import csr_body


def _windows_node(name: str) -> dict[str, Any]:
    body = node_body(name, {"kubernetes.io/os": "windows", "node-role.kubernetes.io/worker": ""})
    body["status"].update(
        nodeInfo={
            "kubeletVersion": "v1.29.0-sim",
            "kubeProxyVersion": "v1.29.0-sim",
            "osImage": "Windows Server 2019 Datacenter",
            "kernelVersion": "10.0.17763.1457",
            "containerRuntimeVersion": "containerd://1.7.11",
            "operatingSystem": "windows",
            "architecture": "amd64",
            "machineID": name,
            "systemUUID": "uuid-1",
            "bootID": "",
        },
        capacity={"cpu": "2", "memory": "8388608Ki", "pods": "110"},
        allocatable={"cpu": "1500m", "memory": "7340032Ki", "pods": "110"},
    )
    return body


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_get_nodes_wide_prints_the_real_columns_with_the_node_values(
    core: client.CoreV1Api, twin: KubeTwin
):
    core.create_node(_windows_node("win-wide"))
    header, row = _table(kubectl_ok(twin, "get", "nodes", "-o", "wide"))
    assert header == [
        "NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP",
        "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME",
    ]  # fmt: skip
    assert row[:3] == ["win-wide", "NotReady", "worker"]
    assert row[4:7] == ["v1.29.0-sim", "10.0.0.5", "<none>"]
    assert row[7:] == [
        "Windows",
        "Server",
        "2019",
        "Datacenter",
        "10.0.17763.1457",
        "containerd://1.7.11",
    ]
    # without -o wide only the priority-0 columns are printed
    assert _table(kubectl_ok(twin, "get", "nodes"))[0] == [
        "NAME",
        "STATUS",
        "ROLES",
        "AGE",
        "VERSION",
    ]


def test_describe_node_shows_conditions_addresses_capacity_system_info_taints_and_events(
    core: client.CoreV1Api, twin: KubeTwin
):
    core.create_node(_windows_node("win-desc"))
    core.create_namespaced_pod(
        "winfleet",
        {
            "metadata": {"name": "on-node"},
            "spec": {"nodeName": "win-desc", "containers": [{"name": "c", "image": "x"}]},
        },
    )
    core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "win-desc.starting"},
            "involvedObject": {"kind": "Node", "name": "win-desc", "uid": "win-desc"},
            "reason": "Starting",
            "message": "Starting kubelet.",
            "type": "Normal",
            "source": {"component": "kubelet", "host": "win-desc"},
        },
    )
    out = kubectl_ok(twin, "describe", "node", "win-desc")
    assert "Taints:             os=Windows:NoSchedule" in out
    assert "Ready" in out and "Booting" in out
    assert "InternalIP:  10.0.0.5" in out
    capacity = out.split("Capacity:")[1].split("Allocatable:")
    assert "memory:  8Gi" in capacity[0] and "1500m" in capacity[1].split("System Info:")[0]
    assert "OS Image:                   Windows Server 2019 Datacenter" in out
    assert "Kernel Version:             10.0.17763.1457" in out
    assert "Non-terminated Pods:          (1 in total)" in out and "on-node" in out
    assert "Starting kubelet." in out


def test_get_pods_wide_and_csrs_print_the_real_columns(core: client.CoreV1Api, twin: KubeTwin):
    core.create_node(_windows_node("win-pods"))
    core.create_namespaced_pod(
        "winfleet",
        {
            "metadata": {"name": "p"},
            "spec": {"nodeName": "win-pods", "containers": [{"name": "c", "image": "x"}]},
        },
    )
    header, row = _table(kubectl_ok(twin, "get", "pods", "-n", "winfleet", "-o", "wide"))
    assert header == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
        "READINESS", "GATES",
    ]  # fmt: skip
    assert row[:4] == ["p", "0/1", "Pending", "0"] and row[5:] == [
        "<none>",
        "win-pods",
        "<none>",
        "<none>",
    ]
    client.CertificatesV1Api(core.api_client).create_certificate_signing_request(
        csr_body("csr-view", expirationSeconds=86400)
    )
    header, row = _table(kubectl_ok(twin, "get", "csr"))
    assert header == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert row[0] == "csr-view" and row[2:] == [
        "kubernetes.io/kube-apiserver-client-kubelet", "system:admin", "24h", "Pending"
    ]  # fmt: skip
