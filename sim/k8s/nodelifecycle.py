"""The node lifecycle controller of kube-controller-manager, SIMULATED.

Every `period` seconds (and on Node events) it looks at each Node:
- Health: the kubelet proves it is alive by renewing its Lease `kube-node-lease/<node>` or by
  posting node status (the Ready condition's lastHeartbeatTime). When neither changed for
  `grace` seconds (`node-monitor-grace-period`, 40 s by default; `startup_grace` for a Node that
  never posted a Ready condition), every kubelet condition (Ready, MemoryPressure, DiskPressure,
  PIDPressure) becomes `Unknown`, reason `NodeStatusUnknown`, message `Kubelet stopped posting
  node status.` (`NodeStatusNeverUpdated` / `Kubelet never posted node status.` for a Node that
  never did), lastHeartbeatTime kept, lastTransitionTime now.
- Taints (TaintNodesByCondition + taint-based eviction): Ready=False gives
  `node.kubernetes.io/not-ready` NoSchedule + NoExecute, Ready=Unknown
  `node.kubernetes.io/unreachable` NoSchedule + NoExecute, a True pressure condition its
  `*-pressure` NoSchedule taint, `spec.unschedulable` `node.kubernetes.io/unschedulable`
  NoSchedule; each with `timeAdded`. Taints whose condition is gone are removed, others kept.
- When a Node stops being Ready, the pods bound to it get their Ready condition set to False
  (MarkPodsNotReady).
- NoExecute taint eviction (the taint eviction controller): a pod on a node with a NoExecute
  taint it does not tolerate is deleted at once; one tolerating it with `tolerationSeconds`
  (the 300 s DefaultTolerationSeconds adds) is deleted once that time since `timeAdded` passed.
  Deletion is graceful: on an unreachable node the pod then stays Terminating, as on a real
  cluster, while its controller creates a replacement elsewhere.

Runs as a `ControlLoop` from `sim.k8s.controllers`.
"""

from __future__ import annotations

import copy
import datetime
import time
from collections.abc import Callable
from typing import Any

from sim.k8s import placement
from sim.k8s.api import Api
from sim.k8s.errors import ApiError
from sim.k8s.pods import NOT_READY, UNREACHABLE, now_iso, set_condition
from sim.k8s.store import Obj

NODES = ("", "nodes")
PODS = ("", "pods")
LEASES = ("coordination.k8s.io", "leases")
LEASE_NAMESPACE = "kube-node-lease"
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
_PRESSURE_TAINTS = {
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
    "NetworkUnavailable": "node.kubernetes.io/network-unavailable",
}
MANAGED_TAINTS = {NOT_READY, UNREACHABLE, placement.UNSCHEDULABLE, *_PRESSURE_TAINTS.values()}


def condition(node: Obj, kind: str) -> Obj | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def ready_status(node: Obj | None) -> str | None:
    """The Ready condition's status ("True", "False", "Unknown"), None without one or node."""
    return ready_status_of(node, "Ready") if node is not None else None


def internal_ip(node: Obj) -> str | None:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return None


def _parse(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        at = datetime.datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return at.replace(tzinfo=datetime.UTC).timestamp()


def desired_taints(node: Obj) -> set[tuple[str, str]]:
    """The (key, effect) taints this controller wants on `node` right now."""
    out: set[tuple[str, str]] = set()
    ready = ready_status(node)
    if ready == "False":
        out |= {(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")}
    elif ready == "Unknown":
        out |= {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
    for kind, key in _PRESSURE_TAINTS.items():
        if ready_status_of(node, kind) == "True":
            out.add((key, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        out.add((placement.UNSCHEDULABLE, "NoSchedule"))
    return out


def ready_status_of(node: Obj, kind: str) -> str | None:
    cond = condition(node, kind)
    return cond.get("status") if cond else None


class NodeLifecycle:
    """One step = one monitoring pass over all Nodes (see the module docstring)."""

    def __init__(
        self,
        api: Api,
        grace: float = 40.0,
        period: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self.grace = grace
        self.startup_grace = grace * 1.5  # 60 s next to 40 s, as the defaults are
        self.period = period
        self._clock = clock
        self._probes: dict[str, tuple[Any, float]] = {}  # node -> (what we heard, when)
        self._ready: dict[str, str | None] = {}  # node -> Ready status at the last pass
        self._nodes_rt = api.registry.get("", "v1", "nodes")
        self._pods_rt = api.registry.get("", "v1", "pods")

    def step(self) -> float:
        now = self._clock()
        names = set()
        for entry in self._api.store.entries(NODES):
            name = entry.obj["metadata"]["name"]
            names.add(name)
            self._check_health(name, entry.obj, now)
            node = self._taint(name)
            if node is None:
                continue
            was, ready = self._ready.get(name), ready_status(node)
            if was == "True" and ready != "True":
                self._mark_pods_not_ready(name)
            self._ready[name] = ready
        for gone in set(self._probes) - names:
            self._probes.pop(gone, None)
            self._ready.pop(gone, None)
        return self._evict_intolerant(names)

    # -- health ---------------------------------------------------------------------------
    def _check_health(self, name: str, node: Obj, now: float) -> None:
        lease = self._api.store.entry(LEASES, LEASE_NAMESPACE, name)
        renewed = (lease.obj.get("spec") or {}).get("renewTime") if lease else None
        ready = condition(node, "Ready")
        heard = (renewed, ready.get("lastHeartbeatTime") if ready else None)
        probe = self._probes.get(name)
        if probe is None or probe[0] != heard:
            self._probes[name] = probe = (heard, now)
        grace = self.grace if ready is not None else self.startup_grace
        if now - probe[1] <= grace:
            return
        if ready is not None and all(
            ready_status_of(node, kind) in (None, "Unknown") for kind in KUBELET_CONDITIONS
        ):
            return
        self._set_unknown(node, never=ready is None)

    def _set_unknown(self, node: Obj, *, never: bool) -> None:
        reason, message = (
            ("NodeStatusNeverUpdated", "Kubelet never posted node status.")
            if never
            else ("NodeStatusUnknown", "Kubelet stopped posting node status.")
        )
        out = copy.deepcopy(node)
        status = out.setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        stamp = now_iso()
        for kind in KUBELET_CONDITIONS:
            cond = next((c for c in conditions if c.get("type") == kind), None)
            if cond is None:
                created = node["metadata"].get("creationTimestamp", stamp)
                conditions.append({"type": kind, "lastHeartbeatTime": created})
                cond = conditions[-1]
            elif cond.get("status") == "Unknown":
                continue
            cond.update(status="Unknown", reason=reason, message=message, lastTransitionTime=stamp)
        assert self._nodes_rt is not None
        self._api.update(self._nodes_rt, "", node["metadata"]["name"], out, "status")

    # -- taints ---------------------------------------------------------------------------
    def _taint(self, name: str) -> Obj | None:
        entry = self._api.store.entry(NODES, "", name)
        if entry is None:
            return None
        node = entry.obj
        want = desired_taints(node)
        taints = (node.get("spec") or {}).get("taints") or []
        kept = [
            t
            for t in taints
            if t.get("key") not in MANAGED_TAINTS or (t.get("key"), t.get("effect")) in want
        ]
        have = {(t.get("key"), t.get("effect")) for t in kept}
        added = [
            {"key": key, "effect": effect, "timeAdded": now_iso()}
            for key, effect in sorted(want - have)
        ]
        if not added and len(kept) == len(taints):
            return node
        out = copy.deepcopy(node)
        out.setdefault("spec", {})["taints"] = kept + added
        assert self._nodes_rt is not None
        return self._api.update(self._nodes_rt, "", name, out)

    # -- pods -----------------------------------------------------------------------------
    def _pods_on(self, names: set[str]) -> list[Obj]:
        return [
            e.obj
            for e in self._api.store.entries(PODS)
            if (e.obj.get("spec") or {}).get("nodeName") in names
        ]

    def _mark_pods_not_ready(self, node: str) -> None:
        assert self._pods_rt is not None
        for pod in self._pods_on({node}):
            status = copy.deepcopy(pod.get("status") or {})
            if not any(c.get("type") == "Ready" for c in status.get("conditions") or []):
                continue
            if set_condition(status, "Ready", "False"):
                meta = pod["metadata"]
                self._api.update(
                    self._pods_rt,
                    meta["namespace"],
                    meta["name"],
                    {**pod, "status": status},
                    "status",
                )

    def _evict_intolerant(self, names: set[str]) -> float:
        """Delete pods whose NoExecute toleration ran out; seconds until the next one does."""
        tainted: dict[str, list[Obj]] = {}
        for name in names:
            entry = self._api.store.entry(NODES, "", name)
            taints = ((entry.obj.get("spec") or {}).get("taints") or []) if entry else []
            no_execute = [t for t in taints if t.get("effect") == "NoExecute"]
            if no_execute:
                tainted[name] = no_execute
        next_due = self.period
        if not tainted:
            return next_due
        wall = time.time()
        assert self._pods_rt is not None
        for pod in self._pods_on(set(tainted)):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            due = _eviction_time(pod, tainted[pod["spec"]["nodeName"]])
            if due is None:
                continue
            if due > wall:
                next_due = min(next_due, due - wall)
                continue
            meta = pod["metadata"]
            try:
                self._api.delete(self._pods_rt, meta["namespace"], meta["name"])
            except ApiError:
                pass  # gone meanwhile
        return max(next_due, 0.05)


def _eviction_time(pod: Obj, taints: list[Obj]) -> float | None:
    """Wall-clock time at which the taint manager deletes `pod`, or None for never."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    due: float | None = None
    for taint in taints:
        tol = placement.tolerates(tolerations, taint)
        if tol is None:
            return 0.0
        seconds = tol.get("tolerationSeconds")
        if seconds is None:
            continue
        added = _parse(taint.get("timeAdded")) or time.time()
        at = added + max(0, int(seconds))
        due = at if due is None else min(due, at)
    return due
