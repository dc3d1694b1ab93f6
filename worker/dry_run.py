"""`winfleet upgrade --dry-run`: the plan of a rollout, computed from the cluster, changing nothing.

Reads the pool and its Nodes the way the workflows do (activities/pool_state.py), orders and
batches the nodes with the rollout's own planning functions (workflows/fleet/plan.py), estimates
the time from the pool's replacement time T, and names the PodDisruptionBudgets that would block
a drain now. Pure pieces (`plan_rollout`, `blocking_budgets`, `selects`, `render`) are
table-tested; `dry_run` does the reading.

- Batches: as many nodes at a time as the rollout takes down at once — `maxUnhealthy` resolved
  against the desired replicas (BYOH: the pool's nodes), at least 1; with `maxSurge` (Replace
  only) that many replacements are added at a time; `canary: true` puts one node alone first.
- T: the mean duration of the pool's last completed `OnboardWindowsNode` runs in Temporal
  visibility (`WinfleetPool='<pool>'`), else `DEFAULT_REPLACEMENT_S` (15 minutes); the output
  says which.
- Blocking budgets: PodDisruptionBudgets with `status.disruptionsAllowed` 0 whose selector
  (policy/v1: a null selector selects nothing, `{}` every pod of its namespace) picks a Running
  pod on a planned node that a drain would evict: the pods are listed, skipped (DaemonSet,
  mirror) and left (finished) by the drain's own functions (activities/drain.py), so the plan
  cannot disagree with the drain it predicts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from temporalio.client import Client

from activities import kube
from activities.contracts import Platform
from activities.drain import _finished as drain_leaves_finished
from activities.drain import _pods_on as pods_on
from activities.drain import _skipped as drain_skips
from activities.pool_contracts import NodeView, PoolSpec, UpgradeStrategy
from activities.pool_state import node_view, pool_nodes
from worker import cluster_access
from workflows.fleet import plan
from workflows.fleet.budget import validate_max_unhealthy
from workflows.search_attributes import POOL

JsonObject = dict[str, Any]

DEFAULT_REPLACEMENT_S = 15 * 60.0  # a cloud VM's boot plus onboarding, when nothing was measured
RECENT_ONBOARDINGS = 10  # how many of the pool's last onboardings T averages


@dataclass(frozen=True)
class RolloutPlan:
    pool: str
    target: str
    how: str  # the strategy and what sets the batch size, in words
    order: tuple[str, ...]
    batches: tuple[tuple[str, ...], ...]
    problem: str = ""  # why the rollout could not proceed as planned (the budget's validator)


@dataclass(frozen=True)
class ReplacementTime:
    seconds: float
    source: str  # where the number comes from, in words


@dataclass(frozen=True)
class Blocker:
    budget: str  # namespace/name of the PodDisruptionBudget
    pods: tuple[str, ...]  # "namespace/pod on node"


def plan_rollout(spec: PoolSpec, nodes: Sequence[NodeView], target: str) -> RolloutPlan:
    """The order and batches the rollout of `spec` to `target` would take."""
    order = plan.upgrade_order(nodes, target)
    in_place = spec.platform == Platform.BYOH or spec.upgrade.strategy == UpgradeStrategy.IN_PLACE
    replicas = len(nodes) if spec.platform == Platform.BYOH else spec.replicas
    if not in_place and spec.upgrade.max_surge > 0:
        size = spec.upgrade.max_surge
        how = f"Replace, {size} new node(s) first at a time (maxSurge {size})"
    else:
        size = max(1, spec.max_unhealthy.resolve(replicas))
        how = (
            f"{'InPlace' if in_place else 'Replace'}, {size} node(s) down at a time "
            f"(maxUnhealthy {spec.max_unhealthy} of {replicas} replicas)"
        )
    if spec.upgrade.canary and order:
        batches = ((order[0],), *plan.batches(order[1:], size)) if order[1:] else ((order[0],),)
        how += "; canary: the first node alone, the rollout stops if it fails"
    else:
        batches = plan.batches(order, size)
    mu = spec.max_unhealthy
    problem = validate_max_unhealthy(
        str(mu) if mu.percent else mu.value, replicas, spec.upgrade.max_surge
    )
    return RolloutPlan(spec.name, target, how, order, batches, problem or "")


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a policy/v1 LabelSelector picks a pod with `labels` (null: none; {}: all)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or ()
        if op == "In" and not (key in labels and labels[key] in values):
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # the API server refuses such a selector; select nothing
    return True


def _evictable(pod: JsonObject) -> bool:
    """A pod a drain would have to evict now (DaemonSet, mirror, finished, leaving ones aside)."""
    return (
        (pod.get("status") or {}).get("phase") == "Running"
        and not pod["metadata"].get("deletionTimestamp")
        and not drain_skips(pod)
        and not drain_leaves_finished(pod)
    )


def blocking_budgets(budgets: Sequence[JsonObject], pods: Sequence[JsonObject]) -> list[Blocker]:
    """Budgets that allow no disruption now and select a pod a drain of `pods`' nodes evicts."""
    found = []
    candidates = [p for p in pods if _evictable(p)]
    for pdb in budgets:
        if int((pdb.get("status") or {}).get("disruptionsAllowed") or 0) > 0:
            continue
        meta = pdb["metadata"]
        ns = meta.get("namespace", "")
        selector = (pdb.get("spec") or {}).get("selector")
        hit = [
            f"{ns}/{p['metadata']['name']} on {p['spec'].get('nodeName', '?')}"
            for p in candidates
            if p["metadata"].get("namespace") == ns
            and selects(selector, p["metadata"].get("labels") or {})
        ]
        if hit:
            found.append(Blocker(f"{ns}/{meta['name']}", tuple(sorted(hit))))
    return sorted(found, key=lambda b: b.budget)


def render(rollout: RolloutPlan, t: ReplacementTime, blockers: Sequence[Blocker]) -> list[str]:
    """What `--dry-run` prints."""
    lines = list(
        plan.dry_run_lines(rollout.pool, rollout.target, rollout.order, rollout.batches, t.seconds)
    )
    if rollout.order:
        lines.append(f"strategy: {rollout.how}")
        if rollout.problem:
            lines.append(f"warning: the rollout would wait: {rollout.problem}")
        lines.append(f"replacement time: {plan.format_duration(t.seconds)}, {t.source}")
        if blockers:
            lines.append(
                "PodDisruptionBudgets that would block a drain now (disruptionsAllowed 0):"
            )
            lines += [f"  {b.budget}: {', '.join(b.pods)}" for b in blockers]
        else:
            lines.append("no PodDisruptionBudget would block a drain now")
    lines.append("dry run: nothing was changed")
    return lines


def mean_duration(durations: Sequence[float]) -> float | None:
    return sum(durations) / len(durations) if durations else None


async def replacement_time(temporal: Client, pool: str) -> ReplacementTime:
    """T from the pool's last completed onboardings in Temporal visibility, else the default."""
    query = (
        f"WorkflowType = 'OnboardWindowsNode' AND {POOL.name} = '{pool}' "
        "AND ExecutionStatus = 'Completed'"
    )
    durations = [
        (wf.close_time - wf.start_time).total_seconds()
        async for wf in temporal.list_workflows(query, limit=RECENT_ONBOARDINGS)
        if wf.close_time is not None
    ]
    mean = mean_duration(durations)
    if mean is None:
        return ReplacementTime(
            DEFAULT_REPLACEMENT_S,
            f"the default (no completed onboarding of pool {pool} in Temporal yet)",
        )
    return ReplacementTime(
        mean, f"the mean of the pool's last {len(durations)} completed onboarding(s)"
    )


async def _budgets() -> list[JsonObject]:
    listing = await kube.call_json(
        "list PodDisruptionBudgets",
        k8s.PolicyV1Api(kube.api_client()).list_pod_disruption_budget_for_all_namespaces,
    )
    return [b for b in (listing or {}).get("items") or () if isinstance(b, dict)]


async def dry_run(temporal: Client, pool: str, version: str) -> list[str]:
    """Read the pool, its Nodes, the budgets and T; the lines to print."""
    read = await cluster_access.read(pool)
    spec = read.spec
    assert spec is not None
    target = version or spec.version or read.default_version
    nodes = [node_view(n) for n in await pool_nodes(pool)]
    rollout = plan_rollout(spec, nodes, target)
    t = await replacement_time(temporal, pool)
    pods: list[JsonObject] = []
    if rollout.order:
        for found in await asyncio.gather(*(pods_on(n) for n in rollout.order)):
            pods += found
    blockers = blocking_budgets(await _budgets(), pods) if pods else []
    return render(rollout, t, blockers)
