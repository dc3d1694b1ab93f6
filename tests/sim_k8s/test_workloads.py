"""Deployments, DaemonSets, the scheduler and the pods' kubelets of the twin, seen through the
`kubernetes` client and kubectl: pods land on Ready Windows nodes, roll out, and move away
when a node is drained within its PodDisruptionBudget."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from typing import Any

import pytest
from kubernetes import client, config

from sim.k8s.server import KubeTwin
from tests.sim_k8s.conftest import RunningTwin, wait_for

NS = "winfleet"
WINDOWS_SELECTOR = {"kubernetes.io/os": "windows"}
WINDOWS_TOLERATION = {"key": "os", "operator": "Equal", "value": "Windows", "effect": "NoSchedule"}


@pytest.fixture
def running(start_twin: Any) -> RunningTwin:
    return start_twin(bookmark_interval=0.2, pod_start_seconds=0.3, pod_stop_seconds=0.2)


def ready_windows_node(name: str) -> dict[str, Any]:
    """A Node as a healthy Windows kubelet registers and reports it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {**WINDOWS_SELECTOR, "kubernetes.io/hostname": name}},
        "spec": {"taints": [{"key": "os", "value": "Windows", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": f"10.0.0.{len(name)}"}],
        },
    }


def web_deployment(
    replicas: int = 3, image: str = "mcr.microsoft.com/windows/servercore:v1"
) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": WINDOWS_SELECTOR,
                    "tolerations": [WINDOWS_TOLERATION],
                    "containers": [{"name": "web", "image": image}],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            },
        },
    }


def log_daemonset() -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "logs"},
        "spec": {
            "selector": {"matchLabels": {"app": "logs"}},
            "template": {
                "metadata": {"labels": {"app": "logs"}},
                "spec": {
                    "nodeSelector": WINDOWS_SELECTOR,
                    "tolerations": [WINDOWS_TOLERATION],
                    "containers": [{"name": "logs", "image": "fluent-bit:windows"}],
                },
            },
        },
    }


def kubectl(twin: KubeTwin, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(twin.kubeconfig_path), "HOME": str(twin.state_dir)}
    return subprocess.run(
        ["/usr/bin/kubectl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def pods(core: client.CoreV1Api, app: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(NS, label_selector=f"app={app}").items


def running_by_node(core: client.CoreV1Api, app: str) -> Counter[str]:
    return Counter(
        p.spec.node_name
        for p in pods(core, app)
        if p.status.phase == "Running" and not p.metadata.deletion_timestamp
    )


def test_a_deployment_runs_its_replicas_on_ready_windows_nodes_only(
    core: client.CoreV1Api, api_client: client.ApiClient, twin: KubeTwin
):
    core.create_node(ready_windows_node("win-a"))
    core.create_node(ready_windows_node("win-b"))
    core.create_node({"metadata": {"name": "linux-a", "labels": {"kubernetes.io/os": "linux"}}})
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(NS, web_deployment(replicas=4))

    wait_for(lambda: sum(running_by_node(core, "web").values()) == 4, 15, "4 web pods Running")
    assert running_by_node(core, "web") == {"win-a": 2, "win-b": 2}
    pod = pods(core, "web")[0]
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions == {
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    assert pod.status.pod_ip and pod.status.host_ip and pod.status.start_time
    assert pod.metadata.generate_name.startswith("web-")
    owner = pod.metadata.owner_references[0]
    rs = apps.read_namespaced_replica_set(owner.name, NS)
    assert owner.kind == "ReplicaSet" and owner.controller
    assert rs.metadata.labels["pod-template-hash"] == pod.metadata.labels["pod-template-hash"]
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert rs.metadata.owner_references[0].kind == "Deployment"
    done = kubectl(twin, "rollout", "status", "deployment/web", "-n", NS, "--timeout=30s")
    assert done.returncode == 0, done.stderr
    assert "successfully rolled out" in done.stdout

    core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "no-toleration", "labels": {"app": "lost"}},
            "spec": {
                "nodeSelector": WINDOWS_SELECTOR,
                "containers": [{"name": "c", "image": "x"}],
            },
        },
    )
    reason = wait_for(
        lambda: next(
            (
                c
                for c in core.read_namespaced_pod("no-toleration", NS).status.conditions or []
                if c.type == "PodScheduled" and c.reason == "Unschedulable"
            ),
            None,
        ),
        10,
        "the pod to be reported unschedulable",
    )
    assert "2 node(s) had untolerated taint {os: Windows}" in reason.message
    assert "1 node(s) didn't match Pod's node affinity/selector" in reason.message


def test_changing_the_image_rolls_out_a_new_replica_set_within_the_surge(
    core: client.CoreV1Api, api_client: client.ApiClient, twin: KubeTwin
):
    core.create_node(ready_windows_node("win-a"))
    core.create_node(ready_windows_node("win-b"))
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(NS, web_deployment(replicas=3))
    wait_for(lambda: sum(running_by_node(core, "web").values()) == 3, 15, "3 web pods Running")

    changed = kubectl(twin, "set", "image", "deployment/web", "web=web:v2", "-n", NS)
    assert changed.returncode == 0, changed.stderr
    done = kubectl(twin, "rollout", "status", "deployment/web", "-n", NS, "--timeout=60s")
    assert done.returncode == 0, done.stderr

    deploy = apps.read_namespaced_deployment("web", NS)
    assert deploy.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert (deploy.status.updated_replicas, deploy.status.available_replicas) == (3, 3)
    sets = {
        rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs
        for rs in apps.list_namespaced_replica_set(NS).items
    }
    assert sets["1"].spec.replicas == 0 and sets["2"].spec.replicas == 3
    live = [p for p in pods(core, "web") if not p.metadata.deletion_timestamp]
    assert {p.spec.containers[0].image for p in live} == {"web:v2"}


def test_drain_waits_for_the_disruption_budget_and_moves_the_pods_to_the_other_node(
    core: client.CoreV1Api, api_client: client.ApiClient, twin: KubeTwin
):
    core.create_node(ready_windows_node("win-a"))
    core.create_node(ready_windows_node("win-b"))
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_daemon_set(NS, log_daemonset())
    wait_for(
        lambda: running_by_node(core, "logs") == {"win-a": 1, "win-b": 1}, 15, "a log pod per node"
    )
    client.PolicyV1Api(api_client).create_namespaced_pod_disruption_budget(
        NS,
        {
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    apps.create_namespaced_deployment(NS, web_deployment(replicas=3))
    wait_for(lambda: sum(running_by_node(core, "web").values()) == 3, 15, "3 web pods Running")
    spread = running_by_node(core, "web")
    busy, other = ("win-a", "win-b") if spread["win-a"] >= spread["win-b"] else ("win-b", "win-a")
    assert spread[busy] == 2 and spread[other] == 1

    drained = kubectl(
        twin, "drain", busy, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s"
    )

    assert drained.returncode == 0, drained.stderr
    assert f"node/{busy} drained" in drained.stdout
    assert "ignoring DaemonSet-managed Pods: winfleet/logs-" in drained.stderr
    assert "disruption budget" in drained.stderr  # the second eviction had to wait
    wait_for(lambda: running_by_node(core, "web") == {other: 3}, 10, f"3 web pods on {other}")
    assert running_by_node(core, "logs") == {"win-a": 1, "win-b": 1}
    node = core.read_node(busy)
    assert node.spec.unschedulable is True
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in {
        (t.key, t.effect) for t in node.spec.taints
    }
    policy = client.PolicyV1Api(api_client)
    wait_for(
        lambda: (
            (
                (
                    s := policy.read_namespaced_pod_disruption_budget("web", NS).status
                ).current_healthy,
                s.disruptions_allowed,
            )
            == (3, 1)
        ),
        10,
        "the budget healthy again",
    )


def test_deleting_a_deployment_deletes_its_replica_sets_and_pods(
    core: client.CoreV1Api, api_client: client.ApiClient
):
    core.create_node(ready_windows_node("win-a"))
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(NS, web_deployment(replicas=2))
    wait_for(lambda: sum(running_by_node(core, "web").values()) == 2, 15, "2 web pods Running")

    apps.delete_namespaced_deployment("web", NS)

    wait_for(lambda: not apps.list_namespaced_replica_set(NS).items, 10, "the replica set gone")
    wait_for(lambda: not pods(core, "web"), 10, "the pods gone")


def test_pods_of_a_node_that_stops_reporting_turn_not_ready_and_stay_terminating(
    start_twin: Any,
):
    running = start_twin(node_monitor_grace_seconds=3.0, pod_start_seconds=0.1)
    twin = running.twin
    api = config.new_client_from_config(config_file=str(twin.kubeconfig_path))
    core = client.CoreV1Api(api)
    try:
        core.create_node(ready_windows_node("win-a"))
        client.AppsV1Api(api).create_namespaced_deployment(NS, web_deployment(replicas=1))
        first = wait_for(
            lambda: next((p for p in pods(core, "web") if p.status.phase == "Running"), None),
            10,
            "the web pod Running",
        )

        # nobody renews win-a's lease or posts its status: after 3 s it is Unknown
        wait_for(
            lambda: core.read_node("win-a").status.conditions[0].status == "Unknown",
            10,
            "win-a Unknown",
        )
        ready = wait_for(
            lambda: next(
                (
                    c.status
                    for c in core.read_namespaced_pod(first.metadata.name, NS).status.conditions
                    if c.type == "Ready" and c.status == "False"
                ),
                None,
            ),
            10,
            "the pod marked not ready",
        )
        assert ready == "False"
        core.delete_namespaced_pod(first.metadata.name, NS)
        gone = core.read_namespaced_pod(first.metadata.name, NS)
        assert gone.metadata.deletion_timestamp is not None  # Terminating, no kubelet to stop it
        replacement = wait_for(
            lambda: next(
                (p for p in pods(core, "web") if p.metadata.name != first.metadata.name), None
            ),
            10,
            "a replacement pod",
        )
        assert replacement.status.phase == "Pending"  # win-a is tainted unreachable
        assert core.read_namespaced_pod(first.metadata.name, NS).metadata.deletion_timestamp
    finally:
        api.close()


def test_binding_through_the_subresource_assigns_a_pod_once(
    core: client.CoreV1Api, running: RunningTwin
):
    core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "manual"},
            "spec": {"schedulerName": "my-scheduler", "containers": [{"name": "c", "image": "x"}]},
        },
    )
    binding = client.V1Binding(
        metadata=client.V1ObjectMeta(name="manual"),
        target=client.V1ObjectReference(kind="Node", name="win-x"),
    )
    core.create_namespaced_pod_binding("manual", NS, binding, _preload_content=False)
    pod = core.read_namespaced_pod("manual", NS)
    assert pod.spec.node_name == "win-x"
    assert {c.type: c.status for c in pod.status.conditions}["PodScheduled"] == "True"
    with pytest.raises(client.ApiException) as again:
        core.create_namespaced_pod_binding("manual", NS, binding, _preload_content=False)
    assert again.value.status == 409
    assert json.loads(again.value.body)["reason"] == "Conflict"
