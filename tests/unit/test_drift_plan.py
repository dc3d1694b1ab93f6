"""The drift plan: who acts on each finding, the short-circuit, and the repair of one node."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.contracts import Platform
from activities.drift_contracts import (
    Check,
    ClusterObservation,
    Finding,
    NodeDrift,
    NodeState,
    OrphanVm,
)
from activities.pool_contracts import IntOrPercent
from workflows.fleet.drift import PoolFacts, Remedy, plan, repair_steps, still_broken

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def facts(platform: Platform = Platform.AWS, desired: int = 3, budget: int | str = 1) -> PoolFacts:
    raw = IntOrPercent.parse(budget)
    return PoolFacts(platform, desired, raw, "1.1.0", unhealthy_timeout_s=600)


def node(name: str, ready: str = "True", since: float = 3600, **kw: object) -> NodeState:
    return NodeState(
        name,
        address=f"10.0.0.{len(name)}",
        ready=ready,
        ready_since=ago(since),
        version="1.1.0",
        **kw,
    )  # type: ignore[arg-type]


def drift(name: str, *found: tuple[Check, str]) -> NodeDrift:
    findings = tuple(Finding(c, name, s) for c, s in found)
    return NodeDrift(name, "10.0.0.1", "Administrator", findings, "10.132.0.0/24", "1.1.0")


def observed(*nodes: NodeState, **kw: object) -> ClusterObservation:
    return ClusterObservation(found=True, nodes=nodes, **kw)  # type: ignore[arg-type]


def by_node(p: object) -> dict[str, Remedy]:
    return {n.node: n.remedy for n in p.nodes}  # type: ignore[attr-defined]


ABC = (node("a"), node("b"), node("c"))


def test_a_pool_as_declared_has_nothing_to_do() -> None:
    p = plan(facts(), observed(*ABC), (), NOW)
    assert (p.found, p.unhealthy, p.short_circuit, p.wake_pool) == (0, (), "", False)


@pytest.mark.parametrize(
    ("desired", "check", "subject"),
    [(4, Check.MISSING_REPLICA, "1 replica(s)"), (2, Check.EXTRA_REPLICA, "1 node(s)")],
)
def test_missing_and_extra_replicas_are_the_pools_to_act_on(
    desired: int, check: Check, subject: str
) -> None:
    p = plan(facts(desired=desired), observed(*ABC), (), NOW)
    ((item),) = p.pool_items
    assert (item.finding.check, item.finding.subject, item.remedy) == (check, subject, Remedy.POOL)
    assert p.wake_pool and not p.nodes


def test_byoh_hosts_added_and_removed_are_the_pools_to_act_on() -> None:
    obs = observed(*ABC, byoh_added=("10.0.0.9",), byoh_removed=("a",), listed_hosts=3)
    p = plan(facts(Platform.BYOH), obs, (), NOW)
    assert {(i.finding.check, i.finding.subject, i.remedy) for i in p.pool_items} == {
        (Check.BYOH_ADDED, "10.0.0.9", Remedy.POOL),
        (Check.BYOH_REMOVED, "a", Remedy.POOL),
    }


@pytest.mark.parametrize(("age", "remedy"), [(60, Remedy.WAIT), (900, Remedy.TERMINATE)])
def test_an_orphan_vm_is_terminated_once_older_than_node_startup_timeout(
    age: float, remedy: Remedy
) -> None:
    vm = OrphanVm("i-0abc", "pool-x", ago(age))
    p = plan(facts(), observed(*ABC, orphan_vms=(vm,)), (), NOW)
    assert p.pool_items[0].remedy == remedy
    assert p.terminate == ((vm,) if remedy == Remedy.TERMINATE else ())


@pytest.mark.parametrize(
    ("platform", "ready", "down_for", "remedy"),
    [
        (Platform.AWS, "Unknown", 60, Remedy.WAIT),
        (Platform.AWS, "Unknown", 700, Remedy.REPLACE),
        (Platform.BYOH, "False", 700, Remedy.RECONFIGURE),
    ],
)
def test_a_node_not_ready_is_replaced_or_reconfigured_only_after_unhealthy_timeout(
    platform: Platform, ready: str, down_for: float, remedy: Remedy
) -> None:
    obs = observed(node("a", ready, down_for), node("b"), node("c"), listed_hosts=3)
    p = plan(facts(platform), obs, (), NOW)
    assert by_node(p) == {"a": remedy} and p.unhealthy == ("a",)


def test_a_node_whose_vm_is_gone_is_replaced_at_once() -> None:
    p = plan(facts(), observed(*ABC, vm_gone=("b",)), (), NOW)
    assert by_node(p) == {"b": Remedy.REPLACE} and p.unhealthy == ("b",)


@pytest.mark.parametrize(
    ("found", "unhealthy"),
    [
        ((Check.SERVICE_STOPPED, "kubelet"), True),
        ((Check.HNS, "endpoint VIPEndpoint"), True),
        ((Check.SERVICE_DISABLED, "kube-proxy"), False),
        ((Check.CNI_CONFIG, r"C:\k\cni\config\cni.conf"), False),
        ((Check.PAYLOAD_FILE, r"C:\k\kubelet.exe"), False),
    ],
)
def test_node_level_drift_is_repaired_in_place_and_breaking_drift_counts_as_unhealthy(
    found: tuple[Check, str], unhealthy: bool
) -> None:
    p = plan(facts(), observed(*ABC), (drift("a", found),), NOW)
    assert by_node(p) == {"a": Remedy.REPAIR}
    assert p.unhealthy == (("a",) if unhealthy else ())


def test_a_changed_machine_spec_replaces_the_node_without_counting_it_unhealthy() -> None:
    p = plan(facts(), observed(*ABC), (drift("a", (Check.DESIRED_STATE, "machine")),), NOW)
    assert by_node(p) == {"a": Remedy.REPLACE} and p.unhealthy == ()


def test_an_unreachable_node_waits_for_unhealthy_timeout_then_is_replaced() -> None:
    lost = (Check.UNREACHABLE, "10.0.0.1")
    young = plan(
        facts(), observed(node("a", "Unknown", 30), node("b"), node("c")), (drift("a", lost),), NOW
    )
    old = plan(
        facts(), observed(node("a", "Unknown", 900), node("b"), node("c")), (drift("a", lost),), NOW
    )
    assert by_node(young) == {"a": Remedy.WAIT} and by_node(old) == {"a": Remedy.REPLACE}


def test_a_stale_version_is_the_rollouts_and_does_not_stop_a_repair() -> None:
    stale = NodeState("a", ready="True", ready_since=ago(3600), version="1.0.0")
    p = plan(
        facts(), observed(stale, node("b"), node("c")), (drift("a", (Check.CNI_CONFIG, "x")),), NOW
    )
    remedies = {i.finding.check: i.remedy for i in p.nodes[0].items}
    assert remedies == {Check.STALE_VERSION: Remedy.ROLLOUT, Check.CNI_CONFIG: Remedy.REPAIR}
    assert p.start_rollout


def test_a_node_someone_else_is_changing_is_left_alone() -> None:
    busy = NodeState("a", ready="False", ready_since=ago(9000), version="1.1.0", busy="upgrade-p")
    p = plan(facts(), observed(busy, node("b"), node("c"), vm_gone=("a",)), (), NOW)
    assert by_node(p) == {"a": Remedy.WAIT} and p.unhealthy == ()
    assert all("upgrade-p" in i.why for i in p.nodes[0].items)


@pytest.mark.parametrize(
    ("budget", "short"), [(1, True), (2, False), ("50%", True), ("67%", False)]
)
def test_more_unhealthy_nodes_than_max_unhealthy_short_circuit_every_repair(
    budget: int | str, short: bool
) -> None:
    stopped = (Check.SERVICE_STOPPED, "kubelet")
    vm = OrphanVm("i-0abc", "x", ago(9000))
    obs = observed(*ABC, orphan_vms=(vm,))
    p = plan(facts(budget=budget), obs, (drift("a", stopped), drift("b", stopped)), NOW)
    assert bool(p.short_circuit) is short
    if short:
        assert set(by_node(p).values()) == {Remedy.WAIT} and p.terminate == ()
        assert "maxUnhealthy" in p.short_circuit
    else:
        assert by_node(p) == {"a": Remedy.REPAIR, "b": Remedy.REPAIR} and p.terminate == (vm,)


def test_at_most_max_repairs_nodes_per_run_unhealthy_first() -> None:
    many = tuple(node(f"n{i}") for i in range(5))
    found = [drift(f"n{i}", (Check.CNI_CONFIG, "x")) for i in range(4)]
    found.append(drift("n4", (Check.SERVICE_STOPPED, "kubelet")))
    f = PoolFacts(Platform.AWS, 5, IntOrPercent(5), "1.1.0", max_repairs=2)
    p = plan(f, observed(*many), found, NOW)
    assert by_node(p) == {
        "n0": Remedy.REPAIR,
        "n1": Remedy.WAIT,
        "n2": Remedy.WAIT,
        "n3": Remedy.WAIT,
        "n4": Remedy.REPAIR,
    }
    assert "next run" in p.nodes[1].items[0].why


# --- repairing one node -------------------------------------------------------------------------
def steps_for(*found: tuple[Check, str]):  # type: ignore[no-untyped-def]
    return repair_steps(Finding(c, "a", s) for c, s in found)


def test_a_stopped_kubelet_is_started_and_so_are_the_services_that_depend_on_it() -> None:
    s = steps_for((Check.SERVICE_STOPPED, "kubelet"))
    assert (s.start_kubelet, s.hybrid_overlay, s.kube_proxy) == (True, True, True)
    assert not (s.configure_kubelet or s.copy_payload or s.cni or s.stop)


def test_a_replaced_binary_is_copied_with_its_service_stopped_then_started_again() -> None:
    s = steps_for((Check.PAYLOAD_FILE, r"C:\k\kubelet.exe"))
    assert s.stop == ("kubelet",) and s.copy_payload and s.start_kubelet
    assert s.hybrid_overlay and s.kube_proxy  # Stop-Service -Force stopped them too
    proxy = steps_for((Check.PAYLOAD_FILE, r"C:\k\kube-proxy.exe"))
    assert proxy.stop == ("kube-proxy",) and proxy.kube_proxy and not proxy.start_kubelet
    cni = steps_for((Check.PAYLOAD_FILE, r"C:\k\cni\win-overlay.exe"))
    assert cni.stop == () and cni.copy_payload


def test_edited_service_arguments_forget_the_applied_definition_first() -> None:
    s = steps_for((Check.SERVICE_ARGUMENTS, "hybrid-overlay-node"))
    assert s.forget == ("hybrid-overlay-node",) and s.hybrid_overlay and s.kube_proxy
    k = steps_for((Check.SERVICE_ARGUMENTS, "kubelet"))
    assert k.forget == ("kubelet",) and k.configure_kubelet and k.cni and not k.start_kubelet


def test_a_disabled_kubelet_is_set_back_to_automatic_and_started() -> None:
    s = steps_for((Check.SERVICE_DISABLED, "kubelet"))
    assert s.automatic == ("kubelet",) and s.start_kubelet


@pytest.mark.parametrize(
    ("found", "flag"),
    [
        ((Check.CNI_CONFIG, r"C:\k\cni\config\cni.conf"), "cni"),
        ((Check.HNS, "endpoint VIPEndpoint"), "kube_proxy"),
        ((Check.HNS, "network OVNKubernetesHybridOverlayNetwork"), "hybrid_overlay"),
        ((Check.SERVICE_DISABLED, "kube-proxy"), "kube_proxy"),
        ((Check.SERVICE_STOPPED, "windows_exporter"), "exporter"),
        ((Check.SERVING_CERTIFICATE, "kubelet serving certificate"), "approve_csrs"),
    ],
)
def test_each_finding_runs_the_onboarding_step_that_owns_it(
    found: tuple[Check, str], flag: str
) -> None:
    s = steps_for(found)
    assert getattr(s, flag) is True
    assert not s.copy_payload and not s.configure_kubelet
    assert s.repairs == (f"{found[0].value} {found[1]}",)


def test_cluster_level_findings_and_the_desired_state_alone_change_nothing_on_the_host() -> None:
    s = steps_for((Check.VM_GONE, ""), (Check.NOT_READY, ""), (Check.DESIRED_STATE, "cni"))
    assert s.repairs == () and not any(
        (s.start_kubelet, s.hybrid_overlay, s.kube_proxy, s.cni, s.copy_payload, s.stop)
    )


def test_a_recheck_that_only_sees_the_old_desired_state_annotation_counts_as_fixed() -> None:
    after = (Finding(Check.DESIRED_STATE, "a", "payload"),)
    assert still_broken(after) == ()
    assert still_broken((Finding(Check.SERVICE_STOPPED, "a", "kubelet"),))
