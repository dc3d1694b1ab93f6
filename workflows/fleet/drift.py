"""The drift plan: from what the checks found to what a reconciliation run does (pure).

`plan` decides, per finding, who acts and how:
- the pool workflow: missing or extra replicas, BYOH hosts added to or removed from
  `windows-instances` (it scales; the run only wakes it and reports);
- the rollout: nodes not on the pool's version (`UpgradeWindowsPool`, started or joined);
- this run: an orphan VM older than `nodeStartupTimeout` is terminated; a node whose VM is gone,
  or that has been NotReady (or unreachable) for `unhealthyTimeout`, or whose machine spec
  changed is replaced (cloud: decommissioned, the pool onboards its successor) or reconfigured
  (BYOH: deconfigured and onboarded again on the same host); any other node-level drift is
  repaired in place.
A node being changed by someone else (a claim or a grant) is left alone. Like Cluster API's
MachineHealthCheck, when more nodes are unhealthy at once than `maxUnhealthy` allows, nothing is
repaired and the pool is reported Degraded: something bigger is wrong. At most
`max_repairs` nodes are repaired per run (unhealthy ones first); the rest wait for the next run.
`repair_steps` turns a node's findings into the onboarding activities that put them right.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import Platform
    from activities.drift_contracts import (
        NODE_CHECKS,
        Check,
        ClusterObservation,
        Finding,
        NodeDrift,
        NodeState,
        OrphanVm,
    )
    from activities.pool_contracts import IntOrPercent
    from activities.windows import paths, services

MAX_REPAIRS_PER_RUN = 25  # disruptive remedies one run starts (keeps its history bounded)

BREAKING = frozenset(
    {Check.UNREACHABLE, Check.SERVICE_MISSING, Check.SERVICE_STOPPED, Check.HNS, Check.VM_GONE}
)
"""Findings that leave a node unable to serve now (it counts as unhealthy at once)."""

BINARY_OF = {
    paths.KUBELET.lower(): services.KUBELET_SERVICE,
    paths.HYBRID_OVERLAY.lower(): services.HYBRID_OVERLAY_SERVICE,
    paths.KUBE_PROXY.lower(): services.KUBE_PROXY_SERVICE,
    services.WINDOWS_EXPORTER.lower(): services.WINDOWS_EXPORTER_SERVICE,
}
"""Which service runs a payload binary (it must stop before the file can be replaced)."""


class Remedy(StrEnum):
    POOL = "the pool scales"
    ROLLOUT = "the rollout replaces it"
    TERMINATE = "terminate the VM"
    REPAIR = "repair in place"
    REPLACE = "replace the node"
    RECONFIGURE = "reconfigure the node"
    WAIT = "wait"
    NONE = "report"


DISRUPTIVE = frozenset({Remedy.REPAIR, Remedy.REPLACE, Remedy.RECONFIGURE})


@dataclass(frozen=True)
class PoolFacts:
    """What the plan needs of the pool's spec."""

    platform: Platform
    desired: int  # replicas (BYOH: hosts listed)
    max_unhealthy: IntOrPercent
    version: str  # the version every node should run
    unhealthy_timeout_s: int = 600
    node_startup_timeout_s: int = 600
    max_repairs: int = MAX_REPAIRS_PER_RUN


@dataclass(frozen=True)
class Item:
    """One finding and what becomes of it."""

    finding: Finding
    remedy: Remedy
    why: str = ""


@dataclass(frozen=True)
class NodePlan:
    node: str
    remedy: Remedy  # what this run does to the node (WAIT / NONE: nothing)
    items: tuple[Item, ...]
    unhealthy: bool = False
    drift: NodeDrift | None = None  # what the node-level check saw (for a repair)


@dataclass(frozen=True)
class Plan:
    max_unhealthy: int
    unhealthy: tuple[str, ...] = ()
    short_circuit: str = ""  # why nothing is repaired, or ""
    pool_items: tuple[Item, ...] = ()
    nodes: tuple[NodePlan, ...] = ()
    wake_pool: bool = False
    start_rollout: bool = False
    terminate: tuple[OrphanVm, ...] = ()

    @property
    def found(self) -> int:
        return len(self.pool_items) + sum(len(n.items) for n in self.nodes)


def _seconds(since: str, now: datetime) -> float | None:
    if not since:
        return None
    try:
        then = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (now - then).total_seconds()


def _pool_items(facts: PoolFacts, obs: ClusterObservation, now: datetime) -> list[Item]:
    items: list[Item] = []
    if facts.platform == Platform.BYOH:
        items += [
            Item(Finding(Check.BYOH_ADDED, subject=a), Remedy.POOL, "the pool onboards it")
            for a in obs.byoh_added
        ]
        items += [
            Item(
                Finding(Check.BYOH_REMOVED, n, subject=n, detail="its host is no longer listed"),
                Remedy.POOL,
                "the pool takes it out",
            )
            for n in obs.byoh_removed
        ]
        return items
    serving = sum(1 for n in obs.nodes if not n.deleting)
    if serving < facts.desired:
        missing = facts.desired - serving
        detail = f"{serving} of {facts.desired} replicas exist"
        items.append(
            Item(
                Finding(Check.MISSING_REPLICA, subject=f"{missing} replica(s)", detail=detail),
                Remedy.POOL,
                "the pool onboards the missing replicas",
            )
        )
    elif serving > facts.desired:
        extra = serving - facts.desired
        detail = f"{serving} nodes for {facts.desired} replicas"
        items.append(
            Item(
                Finding(Check.EXTRA_REPLICA, subject=f"{extra} node(s)", detail=detail),
                Remedy.POOL,
                "the pool takes the extra nodes out",
            )
        )
    grace = facts.node_startup_timeout_s
    for vm in obs.orphan_vms:
        age = _seconds(vm.launched, now)
        finding = Finding(
            Check.ORPHAN_VM, subject=vm.vm_id, detail=f"tagged for node {vm.node}, no such Node"
        )
        if age is not None and age >= grace:
            items.append(Item(finding, Remedy.TERMINATE, f"no Node for {age:.0f}s"))
        else:
            items.append(Item(finding, Remedy.WAIT, f"younger than nodeStartupTimeout ({grace}s)"))
    return items


def _cluster_findings(facts: PoolFacts, node: NodeState, gone: bool) -> list[Finding]:
    found = []
    if gone:
        found.append(Finding(Check.VM_GONE, node.name, detail="no VM is tagged for it any more"))
    if node.ready != "True":
        found.append(Finding(Check.NOT_READY, node.name, detail=f"Ready={node.ready}"))
    if facts.version and node.version and node.version != facts.version:
        detail = f"runs {node.version}, the pool wants {facts.version}"
        found.append(Finding(Check.STALE_VERSION, node.name, subject=node.version, detail=detail))
    return found


def _judge(
    facts: PoolFacts, node: NodeState, found: list[Finding], now: datetime
) -> tuple[Remedy, bool, list[Item]]:
    """(what to do to the node, whether it is unhealthy, the fate of each finding)."""
    checks = {f.check for f in found}
    timeout = facts.unhealthy_timeout_s
    down = _seconds(node.ready_since, now) if Check.NOT_READY in checks else None
    timed_out = down is not None and down >= timeout
    machine = any(f.check == Check.DESIRED_STATE and f.subject == "machine" for f in found)
    unhealthy = bool(checks & (BREAKING | {Check.NOT_READY}))
    replace = Remedy.RECONFIGURE if facts.platform == Platform.BYOH else Remedy.REPLACE
    if Check.VM_GONE in checks:
        remedy, why = replace, "its VM is gone"
    elif timed_out:
        remedy, why = replace, f"NotReady for {down:.0f}s (unhealthyTimeout {timeout}s)"
    elif Check.UNREACHABLE in checks:
        remedy, why = Remedy.WAIT, f"unreachable; replaced once NotReady for {timeout}s"
    elif machine:
        remedy, why = replace, "its machine spec changed"
    elif checks & NODE_CHECKS:
        remedy, why = Remedy.REPAIR, "put right in place"
    elif Check.NOT_READY in checks:
        waited = f"{down:.0f}s" if down is not None else "a while"
        remedy, why = Remedy.WAIT, f"NotReady for {waited}; unhealthyTimeout is {timeout}s"
    else:
        remedy, why = Remedy.NONE, ""
    items = []
    for f in found:
        if f.check == Check.STALE_VERSION:
            items.append(Item(f, Remedy.ROLLOUT, f"UpgradeWindowsPool rolls out {facts.version}"))
        elif remedy == Remedy.NONE:
            items.append(Item(f, Remedy.NONE, "nothing to do"))
        else:
            items.append(Item(f, remedy, why))
    return remedy, unhealthy, items


def _node_plans(
    facts: PoolFacts, obs: ClusterObservation, drift: dict[str, NodeDrift], now: datetime
) -> list[NodePlan]:
    plans = []
    gone = set(obs.vm_gone)
    for node in obs.nodes:
        if node.deleting:
            continue
        d = drift.get(node.name)
        found = _cluster_findings(facts, node, node.name in gone)
        found += list(d.findings) if d is not None else []
        if not found:
            continue
        if node.busy:
            items = tuple(Item(f, Remedy.WAIT, f"being changed by {node.busy}") for f in found)
            plans.append(NodePlan(node.name, Remedy.WAIT, items))
            continue
        remedy, unhealthy, items_list = _judge(facts, node, found, now)
        plans.append(NodePlan(node.name, remedy, tuple(items_list), unhealthy, d))
    return plans


def _defer(node: NodePlan, why: str) -> NodePlan:
    items = tuple(
        Item(i.finding, Remedy.WAIT, why) if i.remedy in DISRUPTIVE else i for i in node.items
    )
    return NodePlan(node.node, Remedy.WAIT, items, node.unhealthy, node.drift)


def plan(
    facts: PoolFacts, obs: ClusterObservation, drift: Iterable[NodeDrift], now: datetime
) -> Plan:
    """What a run does about everything observed (see the module docstring)."""
    budget = facts.max_unhealthy.resolve(facts.desired)
    pool_items = _pool_items(facts, obs, now)
    nodes = _node_plans(facts, obs, {d.node: d for d in drift}, now)
    unhealthy = tuple(n.node for n in nodes if n.unhealthy)
    short = ""
    if len(unhealthy) > budget:
        short = (
            f"{len(unhealthy)} nodes are unhealthy at once ({', '.join(unhealthy[:5])}), more "
            f"than maxUnhealthy {facts.max_unhealthy} allows ({budget}): nothing is repaired "
            "until fewer are; something bigger than one node is wrong"
        )
        nodes = [_defer(n, "short-circuit: too many unhealthy nodes") for n in nodes]
        pool_items = [
            Item(i.finding, Remedy.WAIT, "short-circuit") if i.remedy == Remedy.TERMINATE else i
            for i in pool_items
        ]
    else:
        chosen = sorted(
            (n for n in nodes if n.remedy in DISRUPTIVE), key=lambda n: (not n.unhealthy, n.node)
        )
        later = {n.node for n in chosen[facts.max_repairs :]}
        why = f"next run (at most {facts.max_repairs} repairs per run)"
        nodes = [_defer(n, why) if n.node in later else n for n in nodes]
    return Plan(
        max_unhealthy=budget,
        unhealthy=unhealthy,
        short_circuit=short,
        pool_items=tuple(pool_items),
        nodes=tuple(nodes),
        wake_pool=any(i.remedy == Remedy.POOL for i in pool_items),
        start_rollout=any(i.remedy == Remedy.ROLLOUT for n in nodes for i in n.items),
        terminate=tuple(
            vm
            for vm in obs.orphan_vms
            for i in pool_items
            if i.remedy == Remedy.TERMINATE and i.finding.subject == vm.vm_id
        ),
    )


# --- repairing one node in place ---------------------------------------------------------------
@dataclass(frozen=True)
class RepairSteps:
    """The onboarding activities (and the few extra steps) that put a node's findings right, in
    the order they run."""

    forget: tuple[str, ...] = ()  # services whose applied-definition marker is a lie
    stop: tuple[str, ...] = ()  # services whose binary is replaced
    automatic: tuple[str, ...] = ()  # kubelet back to automatic start (WMCB's service)
    copy_payload: bool = False
    configure_kubelet: bool = False
    start_kubelet: bool = False
    hybrid_overlay: bool = False
    cni: bool = False
    kube_proxy: bool = False
    exporter: bool = False
    approve_csrs: bool = False
    repairs: tuple[str, ...] = ()  # what was put right, for the report and the Event


SERVICE_CHECKS = frozenset(
    {
        Check.SERVICE_MISSING,
        Check.SERVICE_STOPPED,
        Check.SERVICE_DISABLED,
        Check.SERVICE_ARGUMENTS,
    }
)


def label(f: Finding) -> str:
    return f"{f.check.value} {f.subject}".strip()


def repair_steps(findings: Iterable[Finding]) -> RepairSteps:
    """What to run for these node-level findings (cluster-level ones are ignored).

    Stopping kubelet or hybrid-overlay-node stops the services that depend on them
    (`Stop-Service -Force`), so those are started again after; WMCB's `initialize-kubelet`
    drops kubelet's CNI flags, so `configure-cni` follows it.
    """
    found = [f for f in findings if f.check in NODE_CHECKS and f.check != Check.UNREACHABLE]

    def has(check: Check, subject: str | None = None) -> bool:
        return any(f.check == check and subject in (None, f.subject) for f in found)

    def about(service: str) -> bool:
        return any(f.check in SERVICE_CHECKS and f.subject == service for f in found)

    kubelet = services.KUBELET_SERVICE
    hybrid, proxy = services.HYBRID_OVERLAY_SERVICE, services.KUBE_PROXY_SERVICE
    exporter = services.WINDOWS_EXPORTER_SERVICE
    binaries = {f.subject.lower() for f in found if f.check == Check.PAYLOAD_FILE}
    stop = tuple(sorted({BINARY_OF[b] for b in binaries if b in BINARY_OF}))
    reinit = has(Check.SERVICE_MISSING, kubelet) or has(Check.SERVICE_ARGUMENTS, kubelet)
    kubelet_down = has(Check.SERVICE_STOPPED, kubelet) or has(Check.SERVICE_DISABLED, kubelet)
    kubelet_down = kubelet_down or kubelet in stop
    hybrid_down = kubelet_down or reinit or hybrid in stop or about(hybrid)
    return RepairSteps(
        forget=tuple(sorted({f.subject for f in found if f.check == Check.SERVICE_ARGUMENTS})),
        stop=stop,
        automatic=(kubelet,) if has(Check.SERVICE_DISABLED, kubelet) and not reinit else (),
        copy_payload=bool(binaries),
        configure_kubelet=reinit,
        start_kubelet=kubelet_down and not reinit,
        hybrid_overlay=hybrid_down or has(Check.HNS),
        cni=has(Check.CNI_CONFIG) or reinit,
        kube_proxy=hybrid_down or has(Check.HNS) or proxy in stop or about(proxy),
        exporter=exporter in stop or about(exporter),
        approve_csrs=has(Check.SERVING_CERTIFICATE),
        repairs=tuple(label(f) for f in found if f.check != Check.DESIRED_STATE),
    )


def still_broken(after: Iterable[Finding]) -> tuple[Finding, ...]:
    """What a re-check after a repair found that matters: the desired-state annotation is
    rewritten by the repair itself, so a difference there does not count."""
    return tuple(f for f in after if f.check != Check.DESIRED_STATE)
