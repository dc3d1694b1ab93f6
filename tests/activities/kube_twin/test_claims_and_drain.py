"""Node-name claims, UID-guarded deletes, cordon bookkeeping and drains, against the API twin."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from twin_callers import NAMESPACE, Caller

from activities import claims
from activities.claims import ClaimInput, claim_node, release_node
from activities.drain import (
    CordonInput,
    DrainInput,
    cordon_node,
    drain_node,
    uncordon_node,
)
from activities.node import DeleteNodeInput, delete_node
from sim.k8s.server import KubeTwin

NODE = "winworker-7"
IP = "127.5.0.7"
CORDONED_BY = "winfleet.io/cordoned-by"


def lease(twin: KubeTwin, node: str = NODE) -> dict[str, Any] | None:
    return twin.store.get("leases", f"winfleet-node-{node}", namespace=NAMESPACE)


def node(twin: KubeTwin, name: str = NODE) -> dict[str, Any]:
    return twin.store.get("nodes", name) or {}


async def run(fn: Any, arg: Any) -> Any:
    return await ActivityEnvironment().run(fn, arg)


# --- claims ------------------------------------------------------------------------------------
async def test_a_claim_is_held_once_and_refused_to_a_second_live_run(
    twin: KubeTwin, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def alive(holder: str) -> bool:
        return holder.startswith("onboard-a ")

    monkeypatch.setattr(claims, "holder_alive", alive)
    first = ClaimInput(NODE, "onboard-a run-1", "onboard")
    await run(claim_node, first)
    await run(claim_node, first)  # the same run again (a retry) keeps it
    held = lease(twin)
    assert held is not None and held["spec"]["holderIdentity"] == "onboard-a run-1"

    with pytest.raises(ApplicationError) as info:
        await run(claim_node, ClaimInput(NODE, "onboard-b run-9", "onboard"))
    assert info.value.type == "NodeNameClaimed" and info.value.non_retryable
    assert "onboard-a" in info.value.message and "Nothing was changed" in info.value.message
    assert lease(twin)["spec"]["holderIdentity"] == "onboard-a run-1"  # type: ignore[index]

    await run(release_node, ClaimInput(NODE, "onboard-b run-9"))  # not the holder: no effect
    assert lease(twin) is not None
    await run(release_node, first)
    assert lease(twin) is None
    await run(release_node, first)  # releasing twice is fine


async def test_a_claim_left_by_a_closed_run_is_taken_over(
    twin: KubeTwin, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def dead(holder: str) -> bool:
        return False

    monkeypatch.setattr(claims, "holder_alive", dead)
    await run(claim_node, ClaimInput(NODE, "onboard-a run-1", "onboard"))
    await run(claim_node, ClaimInput(NODE, "decommission-a run-2", "decommission"))
    held = lease(twin)
    assert held is not None and held["spec"]["holderIdentity"] == "decommission-a run-2"
    assert held["metadata"]["annotations"]["winfleet.io/purpose"] == "decommission"


# --- deletes carry the UID of the Node meant ---------------------------------------------------
async def test_a_node_delete_with_another_uid_keeps_the_node(twin: KubeTwin, admin: Caller) -> None:
    await admin.create_node(NODE, ip=IP)
    assert await run(delete_node, DeleteNodeInput(NODE, uid="not-this-one")) is False
    assert node(twin)
    uid = node(twin)["metadata"]["uid"]
    assert await run(delete_node, DeleteNodeInput(NODE, uid=uid)) is True
    assert not node(twin)


async def test_a_node_older_than_the_run_is_not_the_runs_to_delete(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP)
    later = "2999-01-01T00:00:00+00:00"
    assert await run(delete_node, DeleteNodeInput(NODE, created_after=later)) is False
    assert node(twin)
    earlier = "2000-01-01T00:00:00+00:00"
    assert await run(delete_node, DeleteNodeInput(NODE, created_after=earlier)) is True
    assert not node(twin)


# --- cordon bookkeeping ------------------------------------------------------------------------
async def test_winfleet_lifts_only_its_own_cordon(twin: KubeTwin, admin: Caller) -> None:
    await admin.create_node(NODE, ip=IP)
    mine = CordonInput(NODE, "upgrade-pool-a run-1")
    assert await run(cordon_node, mine) is True
    cordoned = node(twin)
    assert cordoned["spec"]["unschedulable"] is True
    assert cordoned["metadata"]["annotations"][CORDONED_BY] == "upgrade-pool-a run-1"
    assert await run(uncordon_node, mine) is True
    assert not node(twin)["spec"].get("unschedulable")

    await admin.create_node("admin-cordoned", ip="127.5.0.8", unschedulable=True)
    theirs = CordonInput("admin-cordoned", "upgrade-pool-a run-1")
    assert await run(cordon_node, theirs) is False  # already cordoned, not by us
    assert await run(uncordon_node, theirs) is False
    assert node(twin, "admin-cordoned")["spec"]["unschedulable"] is True


async def test_a_cordon_that_conflicts_reads_the_node_again_and_cordons(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP)
    twin.faults.add("patch", "nodes", 409, count=2)  # the Node changed twice since it was read
    assert await run(cordon_node, CordonInput(NODE, "upgrade-pool-a run-2")) is True
    cordoned = node(twin)
    assert cordoned["spec"]["unschedulable"] is True
    assert cordoned["metadata"]["annotations"][CORDONED_BY] == "upgrade-pool-a run-2"


async def test_a_linux_node_is_never_cordoned(twin: KubeTwin, admin: Caller) -> None:
    await admin.create_node("linux-1", ip="127.5.0.9", os="linux")
    with pytest.raises(ApplicationError) as info:
        await run(cordon_node, CordonInput("linux-1", "x y"))
    assert info.value.type == "InvalidRequest"
    assert not node(twin, "linux-1")["spec"].get("unschedulable")


# --- drains ------------------------------------------------------------------------------------
def pod(name: str, *, labels: dict[str, str] | None = None, owner: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u-1", "controller": True}
        ]
    return {
        "metadata": meta,
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "mcr/x"}]},
    }


async def add_running_pod(admin: Caller, body: dict[str, Any]) -> None:
    await admin.run(admin.core.create_namespaced_pod, NAMESPACE, body)
    await admin.run(
        admin.core.patch_namespaced_pod_status,
        body["metadata"]["name"],
        NAMESPACE,
        {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
    )


def pods_on_node(twin: KubeTwin) -> set[str]:
    return {
        p["metadata"]["name"]
        for p in twin.store.list("pods", namespace=NAMESPACE)
        if p["spec"].get("nodeName") == NODE and not p["metadata"].get("deletionTimestamp")
    }


async def test_a_drain_evicts_workload_pods_and_skips_daemonset_pods(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP)
    await admin.set_ready(NODE, ready=True, ip=IP)
    await add_running_pod(admin, pod("web-1", owner="ReplicaSet"))
    await add_running_pod(admin, pod("bare-1"))
    await add_running_pod(admin, pod("exporter-1", owner="DaemonSet"))
    result = await run(drain_node, DrainInput(NODE, timeout_s=20))
    assert set(result.evicted) == {f"{NAMESPACE}/web-1", f"{NAMESPACE}/bare-1"}
    assert result.skipped == (f"{NAMESPACE}/exporter-1",)
    assert pods_on_node(twin) == {"exporter-1"}


async def test_a_drain_blocked_by_a_budget_past_its_timeout_fails_naming_the_budget(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP)
    await admin.set_ready(NODE, ready=True, ip=IP)
    await add_running_pod(admin, pod("db-1", labels={"app": "db"}, owner="StatefulSet"))
    pdb = client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name="db-budget", namespace=NAMESPACE),
        spec=client.V1PodDisruptionBudgetSpec(
            min_available=1, selector=client.V1LabelSelector(match_labels={"app": "db"})
        ),
    )
    policy = client.PolicyV1Api(admin.core.api_client)
    await admin.run(policy.create_namespaced_pod_disruption_budget, NAMESPACE, pdb)

    with pytest.raises(ApplicationError) as info:
        await run(drain_node, DrainInput(NODE, timeout_s=1))
    assert info.value.type == "DrainTimedOut" and info.value.non_retryable
    assert f"PodDisruptionBudget {NAMESPACE}/db-budget" in info.value.message
    assert pods_on_node(twin) == {"db-1"}
    blocked = [e for e in twin.store.list("events") if e.get("reason") == "DrainBlocked"]
    assert blocked and "db-budget" in blocked[0]["message"]

    forced = await run(drain_node, DrainInput(NODE, timeout_s=0, force=True))
    assert forced.forced == (f"{NAMESPACE}/db-1",)
    assert pods_on_node(twin) == set()
