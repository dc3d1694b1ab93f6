"""Drift checks and repair helpers against a configured simulated host, over real SSH."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from host_changes import changed, snapshot, writes
from kubernetes import client
from network_lab import KEY_SECRET, NAMESPACE, Cluster, eventually, target
from temporalio.testing import ActivityEnvironment
from test_deconfigure_activity import SUBNET_ANNOTATION, configured_host

from activities import desired_state, kube, metrics
from activities.contracts import Platform
from activities.drift_check import check_nodes
from activities.drift_contracts import (
    DESIRED_STATE_ANNOTATION,
    Check,
    CheckNodesInput,
    RepairRecord,
    ServiceControlInput,
)
from activities.drift_observe import ObserveDriftInput, observe_drift
from activities.drift_repair import record_repair, service_control
from activities.node import OS_LABEL, FinalizeNodeInput, finalize_node
from activities.pool_contracts import POOL_GROUP, POOL_LABEL, POOL_PLURAL, POOL_VERSION
from sim.windows.host import SimulatedWindowsHost

CRD = (
    Path(__file__).resolve().parents[3] / "deploy" / "crds" / "winfleet.io_windowsmachinepools.yaml"
)

POOL = "lab"
MACHINE = desired_state.machine_hash(Platform.AWS)


async def pool_node(cluster: Cluster, hostname: str) -> tuple[SimulatedWindowsHost, str]:
    """A host configured through phases 4-8, Ready, finalized as a member of pool `lab`."""
    host, node = await configured_host(cluster, hostname)
    await eventually("the Node Ready", lambda: cluster.node_ready(node))
    await cluster.serving_certificate(host, node)
    subnet = cluster.node(node)["metadata"]["annotations"][SUBNET_ANNOTATION]  # type: ignore[index]
    await ActivityEnvironment().run(
        finalize_node,
        FinalizeNodeInput(
            node_name=node,
            private_key_secret=KEY_SECRET,
            pool=POOL,
            host=host.address,
            node_subnet=subnet,
            machine_hash=MACHINE,
        ),
    )
    return host, node


def check_input(**kw: object) -> CheckNodesInput:
    return CheckNodesInput(
        pool=POOL,
        platform=Platform.AWS,
        private_key_secret=KEY_SECRET,
        machine_hash=MACHINE,
        **kw,  # type: ignore[arg-type]
    )


async def pwsh(host: SimulatedWindowsHost, script: str) -> None:
    _, err, code = await host.run(f'powershell.exe -NoProfile -Command "{script}"')
    assert code == 0, err


async def test_a_configured_node_shows_no_drift_and_checking_it_changes_nothing(
    cluster: Cluster,
) -> None:
    host, node = await pool_node(cluster, "WIN-DRIFT1")
    assert cluster.node(node)["metadata"]["annotations"][DESIRED_STATE_ANNOTATION]  # type: ignore[index]
    before, logged = snapshot(host), len(host.command_log)

    result = await ActivityEnvironment().run(check_nodes, check_input())

    assert (result.checked, result.clean, result.drifted) == (1, 1, ()), result.drifted
    assert writes(host.command_log[logged:]) == []
    assert changed(before, snapshot(host)) == set()
    assert len(host.command_log) - logged == 1  # one PowerShell process per node


async def test_each_kind_of_host_drift_is_found_and_named(cluster: Cluster) -> None:
    host, _node = await pool_node(cluster, "WIN-DRIFT2")
    k = host.root / "C" / "k"
    conf = k / "cni" / "config" / "cni.conf"
    edited = json.loads(conf.read_text())
    edited["ipam"]["subnet"] = "10.99.0.0/24"
    conf.write_text(json.dumps(edited))
    (k / "kubelet.exe").write_bytes((k / "kubelet.exe").read_bytes() + b"tampered")
    await pwsh(host, "Set-Service -Name kube-proxy -StartupType Disabled")
    _, _, code = await host.run(
        r'sc.exe config hybrid-overlay-node binPath= "C:\k\hybrid-overlay-node.exe --node x"'
    )
    assert code == 0
    await pwsh(host, "Stop-Service -Name kubelet -Force")
    stopped_before = counted("winfleet_reconcile_findings", kind="service-stopped")

    result = await ActivityEnvironment().run(check_nodes, check_input())

    assert result.checked == 1 and result.clean == 0
    found = {(f.check, f.subject) for f in result.drifted[0].findings}
    assert {
        (Check.PAYLOAD_FILE, r"C:\k\kubelet.exe"),
        (Check.CNI_CONFIG, r"C:\k\cni\config\cni.conf"),
        (Check.SERVICE_DISABLED, "kube-proxy"),
        (Check.SERVICE_STOPPED, "kubelet"),
        (Check.SERVICE_STOPPED, "kube-proxy"),
        (Check.SERVICE_ARGUMENTS, "hybrid-overlay-node"),
    } <= found
    args = next(f for f in result.drifted[0].findings if f.check == Check.SERVICE_ARGUMENTS)
    assert "--k8s-kubeconfig" in args.detail  # names what went missing
    # /metrics counts the findings per check
    stopped = [f for f in result.drifted[0].findings if f.check == Check.SERVICE_STOPPED]
    assert counted("winfleet_reconcile_findings", kind="service-stopped") == stopped_before + len(
        stopped
    )


def counted(series: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(f"{series}_total", labels) or 0.0


async def test_a_deleted_overlay_network_is_found_as_hns_drift(cluster: Cluster) -> None:
    host, _node = await pool_node(cluster, "WIN-DRIFT3")
    await pwsh(
        host,
        r"Import-Module C:\k\hns.psm1; Get-HnsNetwork | Where-Object -Property Name -EQ "
        r"-Value OVNKubernetesHybridOverlayNetwork | Remove-HnsNetwork",
    )

    result = await ActivityEnvironment().run(check_nodes, check_input())

    hns = [f for f in result.drifted[0].findings if f.check == Check.HNS]
    assert hns and hns[0].subject in (
        "network OVNKubernetesHybridOverlayNetwork",
        "endpoint VIPEndpoint",
    )


async def test_nodes_in_the_skip_list_or_outside_the_shard_are_not_checked(
    cluster: Cluster,
) -> None:
    host, node = await pool_node(cluster, "WIN-DRIFT4")
    logged = len(host.command_log)
    env = ActivityEnvironment()

    skipped = await env.run(check_nodes, check_input(skip=(node,)))
    other_shard = await env.run(check_nodes, check_input(shard=1, shards=2))

    assert skipped.checked == 0 and other_shard.checked == 0
    assert host.command_log[logged:] == []


async def test_service_control_acts_only_where_the_host_differs(cluster: Cluster) -> None:
    host, node = await pool_node(cluster, "WIN-DRIFT5")
    await pwsh(host, "Set-Service -Name kubelet -StartupType Disabled")
    await pwsh(host, "Stop-Service -Name kube-proxy -Force")
    controls = ServiceControlInput(
        **target(host, node),
        automatic=("kubelet", "hybrid-overlay-node"),
        start=("kubelet", "hybrid-overlay-node", "kube-proxy"),
    )
    logged = len(host.command_log)

    await ActivityEnvironment().run(service_control, controls)

    assert writes(host.command_log[logged:]) == [
        "Set-Service -Name 'kubelet' -StartupType Automatic",
        "Start-Service -Name 'kube-proxy'",
    ]
    assert host.scm.get("kubelet").start_type == "Automatic"
    assert host.services["kube-proxy"] == "Running"


async def test_recording_a_repair_annotates_the_desired_state_and_records_one_event(
    cluster: Cluster,
) -> None:
    _host, node = await pool_node(cluster, "WIN-DRIFT6")
    subnet = cluster.node(node)["metadata"]["annotations"][SUBNET_ANNOTATION]  # type: ignore[index]
    wanted = cluster.node(node)["metadata"]["annotations"][DESIRED_STATE_ANNOTATION]  # type: ignore[index]
    await kube.call_json(  # someone removed the annotation
        "remove annotation",
        kube.core().patch_node,
        node,
        {"metadata": {"annotations": {DESIRED_STATE_ANNOTATION: None}}},
        _content_type="application/merge-patch+json",
    )
    assert DESIRED_STATE_ANNOTATION not in cluster.node(node)["metadata"]["annotations"]  # type: ignore[index]
    record = RepairRecord(
        node_name=node,
        repaired=("service-stopped kubelet",),
        run="run-1",
        node_subnet=subnet,
        machine_hash=MACHINE,
    )
    env = ActivityEnvironment()
    before = counted("winfleet_reconcile_repairs", kind="service-stopped", outcome="repaired")

    await env.run(record_repair, record)
    await env.run(record_repair, record)  # a retry records nothing twice

    # the metric counts each run of the activity (a retry counts again, as documented)
    after = counted("winfleet_reconcile_repairs", kind="service-stopped", outcome="repaired")
    assert after == before + 2

    annotations = cluster.node(node)["metadata"]["annotations"]  # type: ignore[index]
    assert annotations[DESIRED_STATE_ANNOTATION] == wanted
    repaired = [
        e.obj
        for e in cluster.twin.store.entries(("", "events"))
        if e.obj.get("reason") == "DriftRepaired" and e.obj["involvedObject"]["name"] == node
    ]
    assert len(repaired) == 1
    assert "service-stopped kubelet" in repaired[0]["message"]


async def test_a_pool_whose_cloud_cannot_be_asked_still_has_its_nodes_observed(
    cluster: Cluster,
) -> None:
    """An Azure pool with no resource group (neither its own nor the worker's): its VMs cannot
    be listed, the observation says why, and its nodes are observed all the same."""
    ext = client.ApiextensionsV1Api(kube.api_client())
    await kube.call(
        "install the CRD", ext.create_custom_resource_definition, yaml.safe_load(CRD.read_text())
    )
    pool = {
        "apiVersion": f"{POOL_GROUP}/{POOL_VERSION}",
        "kind": "WindowsMachinePool",
        "metadata": {"name": "noaz", "namespace": NAMESPACE},
        "spec": {"platform": "azure", "replicas": 1},
    }
    create = kube.custom_objects().create_namespaced_custom_object
    await kube.call("create pool", create, POOL_GROUP, POOL_VERSION, NAMESPACE, POOL_PLURAL, pool)
    node = {
        "metadata": {"name": "noaz-x1", "labels": {POOL_LABEL: "noaz", OS_LABEL: "windows"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    await kube.call("create node", kube.core().create_node, node)

    obs = await ActivityEnvironment().run(
        observe_drift, ObserveDriftInput(pool="noaz", platform=Platform.AZURE)
    )

    assert obs.found and [n.name for n in obs.nodes] == ["noaz-x1"]
    assert "resource group" in obs.vm_problem, obs.vm_problem
    assert not obs.vms_checked and obs.vm_gone == () and obs.orphan_vms == ()
