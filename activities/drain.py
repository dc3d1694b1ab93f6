"""Cordon and drain a Windows node the way Cluster API and `kubectl drain` do.

`cordon_node` marks the Node unschedulable and records which winfleet run did it
(`winfleet.io/cordoned-by`), so only winfleet's own cordons are ever lifted (`uncordon_node`,
`finalize_node`); a node someone else cordoned stays cordoned. `drain_node` evicts the node's
pods through the Eviction API, honouring PodDisruptionBudgets: DaemonSet and mirror pods are
skipped, finished pods deleted, blocked evictions retried every few seconds and the blocking
budgets named (heartbeat details, a `DrainBlocked` event on the Node, the error). After
`timeout_s` it fails (`DrainTimedOut`, permanent: the caller decides) or, with `force`, deletes
the remaining pods. Called by `DecommissionWindowsNode` (upgrade, scale-down, repair).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

from temporalio import activity

from activities import cache, events, kube
from activities.contracts import CORDONED_BY_ANNOTATION
from activities.errors import DrainTimedOut, InvalidRequest, boundary
from activities.node import (
    OS_LABEL,
    WRITE_ATTEMPTS,
    JsonObject,
    call_json,
    get_node,
    is_ready,
)

RETRY_EVERY_S = 5.0  # as kubectl drain retries a blocked eviction
MERGE_PATCH = "application/merge-patch+json"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DRAIN_BLOCKED = "DrainBlocked"


@dataclass(frozen=True)
class CordonInput:
    node_name: str
    holder: str  # the run that cordons ("<workflow id> <run id>")


@dataclass(frozen=True)
class DrainInput:
    node_name: str
    timeout_s: float
    force: bool = False  # after timeout_s: delete the pods the budgets still protect


@dataclass(frozen=True)
class DrainResult:
    evicted: tuple[str, ...] = ()  # namespace/name
    skipped: tuple[str, ...] = ()  # DaemonSet / mirror pods
    forced: tuple[str, ...] = ()  # deleted past the budget after the timeout


def _windows(node: JsonObject) -> None:
    label = (node["metadata"].get("labels") or {}).get(OS_LABEL)
    if label != "windows":
        raise InvalidRequest(
            f"node {node['metadata']['name']} is labelled {OS_LABEL}={label!r}; winfleet "
            "cordons and drains only Windows nodes"
        )


@activity.defn(name="cordon_node")
@boundary
async def cordon_node(inp: CordonInput) -> bool:
    """Mark the Node unschedulable; True if this run's cordon is in place (False: no Node).

    A node that is already cordoned by someone else is left as it is (and not marked ours).
    The Node is read from the API, not the worker's cache: a cordon judged "already ours" on a
    stale copy would let a drain start on a schedulable node.
    """
    for _ in range(WRITE_ATTEMPTS):
        node = await get_node(inp.node_name, fresh=True)
        if node is None:
            return False
        _windows(node)
        notes = node["metadata"].get("annotations") or {}
        if (node.get("spec") or {}).get("unschedulable"):
            return notes.get(CORDONED_BY_ANNOTATION) == inp.holder
        try:
            cordoned = await call_json(
                f"cordon node {inp.node_name}",
                kube.core().patch_node,
                inp.node_name,
                {
                    "metadata": {
                        "annotations": {CORDONED_BY_ANNOTATION: inp.holder},
                        "resourceVersion": node["metadata"]["resourceVersion"],
                    },
                    "spec": {"unschedulable": True},
                },
                _content_type=MERGE_PATCH,
            )
        except kube.Conflict:
            continue  # the Node changed since it was read (status, a taint, a cordon): again
        cache.observe_node(cordoned)
        return True
    raise kube.Conflict(
        f"cordon node {inp.node_name}: still conflicting after {WRITE_ATTEMPTS} tries"
    )


@activity.defn(name="uncordon_node")
@boundary
async def uncordon_node(inp: CordonInput) -> bool:
    """Lift a cordon winfleet set (any winfleet run's); someone else's stays. True if lifted.
    Read from the API (as `cordon_node`): a cordon set a moment ago must not be missed."""
    node = await get_node(inp.node_name, fresh=True)
    if node is None:
        return False
    notes = node["metadata"].get("annotations") or {}
    if CORDONED_BY_ANNOTATION not in notes:
        return False
    _windows(node)
    uncordoned = await call_json(
        f"uncordon node {inp.node_name}",
        kube.core().patch_node,
        inp.node_name,
        {
            "metadata": {"annotations": {CORDONED_BY_ANNOTATION: None}},
            "spec": {"unschedulable": False},
        },
        _content_type=MERGE_PATCH,
    )
    cache.observe_node(uncordoned)
    return True


def _ref(pod: JsonObject) -> str:
    return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"


def _skipped(pod: JsonObject) -> bool:
    meta = pod["metadata"]
    if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
        return True
    return any(
        o.get("controller") and o.get("kind") == "DaemonSet"
        for o in meta.get("ownerReferences") or ()
    )


def _finished(pod: JsonObject) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


async def _pods_on(node_name: str) -> list[JsonObject]:
    listing = await kube.call_json(
        f"list pods on node {node_name}",
        kube.core().list_pod_for_all_namespaces,
        field_selector=f"spec.nodeName={node_name}",
    )
    return [p for p in (listing or {}).get("items") or () if isinstance(p, dict)]


def _blocking_budget(exc: kube.TooManyRequests) -> str:
    """The budget a refused eviction names (the API server's cause message), if it does."""
    for cause in exc.causes:
        if cause.get("reason") == "DisruptionBudget":
            words = str(cause.get("message", "")).split()
            if len(words) > 3 and words[:3] == ["The", "disruption", "budget"]:
                return words[3]
    return ""


async def _evict(pod: JsonObject) -> str | None:
    """Ask for the pod's eviction; None if done (or gone), else what blocks it."""
    meta = pod["metadata"]
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace", "")},
    }
    try:
        await kube.call_json(
            f"evict pod {_ref(pod)}",
            kube.core().create_namespaced_pod_eviction,
            meta["name"],
            meta.get("namespace", ""),
            body,
        )
    except kube.NotFound:
        return None
    except kube.TooManyRequests as exc:
        budget = _blocking_budget(exc)
        return f"PodDisruptionBudget {meta.get('namespace')}/{budget}" if budget else exc.message
    return None


async def _delete(pod: JsonObject) -> None:
    meta = pod["metadata"]
    try:
        await kube.call_json(
            f"delete pod {_ref(pod)}",
            kube.core().delete_namespaced_pod,
            meta["name"],
            meta.get("namespace", ""),
        )
    except kube.NotFound:
        pass


@activity.defn(name="drain_node")
@boundary
async def drain_node(inp: DrainInput) -> DrainResult:
    """Evict every pod that must leave the node; return when they are gone."""
    deadline = time.monotonic() + inp.timeout_s
    evicted: set[str] = set()
    forced: set[str] = set()
    skipped: set[str] = set()
    reported = False
    while True:
        node = await get_node(inp.node_name)
        if node is None:
            break
        _windows(node)
        reachable = is_ready(node)
        blocked: dict[str, str] = {}
        waiting = 0
        for pod in await _pods_on(inp.node_name):
            ref = _ref(pod)
            if _skipped(pod):
                skipped.add(ref)
                continue
            if pod["metadata"].get("deletionTimestamp"):
                # Leaving. On an unreachable node nothing will finish it: count it as gone,
                # as Cluster API does.
                waiting += 1 if reachable else 0
                continue
            if _finished(pod):
                await _delete(pod)
                continue
            if time.monotonic() >= deadline and inp.force:
                await _delete(pod)
                forced.add(ref)
                waiting += 1
                continue
            problem = await _evict(pod)
            if problem is None:
                evicted.add(ref)
                waiting += 1
            else:
                blocked[ref] = problem
        if not blocked and not waiting:
            break
        activity.heartbeat({"blocked": blocked, "leaving": waiting})
        if blocked and not reported:
            reported = True
            await _record_blocked(inp.node_name, node, blocked)
        if time.monotonic() >= deadline and blocked and not inp.force:
            raise DrainTimedOut(
                f"drain of node {inp.node_name} still blocked after {inp.timeout_s:.0f}s: "
                + "; ".join(f"{pod} by {why}" for pod, why in sorted(blocked.items()))
                + ". Free the budget (scale the workload up) or drain with force"
            )
        await asyncio.sleep(RETRY_EVERY_S if blocked else 1.0)
    activity.logger.info(
        "drained %s: %d evicted, %d forced, %d skipped",
        inp.node_name,
        len(evicted),
        len(forced),
        len(skipped),
    )
    return DrainResult(
        evicted=tuple(sorted(evicted)), skipped=tuple(sorted(skipped)), forced=tuple(sorted(forced))
    )


async def _record_blocked(node_name: str, node: JsonObject, blocked: dict[str, str]) -> None:
    budgets = sorted(set(blocked.values()))
    await events.record_event(
        reason=DRAIN_BLOCKED,
        message=(
            f"draining node {node_name} is blocked: "
            + "; ".join(f"{pod} by {why}" for pod, why in sorted(blocked.items()))
        ),
        involved={
            "apiVersion": "v1",
            "kind": "Node",
            "name": node_name,
            "uid": node["metadata"].get("uid", ""),
        },
        type_="Warning",
        name=f"{node_name}.drainblocked.{_slug(budgets)}",
    )


def _slug(parts: list[str]) -> str:
    """A stable, DNS-safe key for an event name (Python's hash() differs per process)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
