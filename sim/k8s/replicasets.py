"""The ReplicaSet controller of kube-controller-manager, SIMULATED.

For every apps/v1 ReplicaSet it counts the active pods it controls (controller ownerReference
to its uid, not terminating, not finished) and creates the missing ones from its template
(`generateName: <rs>-`, template labels, controller ownerReference kind ReplicaSet) or deletes
the extra ones, choosing as the real controller ranks them: unscheduled before scheduled,
Pending before Running, not ready before ready, pods on nodes crowded with this set's pods
first, the newest first. Deletion is graceful. Its status follows: `replicas`,
`fullyLabeledReplicas`, `readyReplicas`, `availableReplicas` (ready for `minReadySeconds`),
`observedGeneration`. Not modelled: adopting orphans that match the selector, creation in slow
start batches, the ReplicaFailure condition.

Runs as a `ControlLoop` from `sim.k8s.controllers`.
"""

from __future__ import annotations

import datetime
from collections import Counter

from sim.k8s.api import Api
from sim.k8s.auth import INTERNAL
from sim.k8s.errors import ApiError
from sim.k8s.owners import owned_by, owner_ref, pod_from_template, replicas
from sim.k8s.pods import is_active, is_ready
from sim.k8s.store import Obj

RSS = ("apps", "replicasets")
PODS = ("", "pods")
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _ready_since(pod: Obj) -> float | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            stamp = cond.get("lastTransitionTime") or ""
            try:
                at = datetime.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
            except ValueError:
                return 0.0
            return at.replace(tzinfo=datetime.UTC).timestamp()
    return None


def is_available(pod: Obj, min_ready_seconds: int) -> bool:
    since = _ready_since(pod)
    if since is None:
        return False
    return (
        min_ready_seconds <= 0
        or since + min_ready_seconds <= datetime.datetime.now(datetime.UTC).timestamp()
    )


def deletion_order(pods: list[Obj]) -> list[Obj]:
    """The pods a scale-down deletes first come first (ActivePodsWithRanks)."""
    crowd = Counter((p.get("spec") or {}).get("nodeName") for p in pods)
    newest_first = sorted(
        pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True
    )
    return sorted(
        newest_first,
        key=lambda p: (
            bool((p.get("spec") or {}).get("nodeName")),
            _PHASE_RANK.get((p.get("status") or {}).get("phase", "Pending"), 3),
            is_ready(p),
            -crowd[(p.get("spec") or {}).get("nodeName")],
        ),
    )


class ReplicaSetController:
    def __init__(self, api: Api) -> None:
        self._api = api
        self._pods_rt = api.registry.get("", "v1", "pods")
        self._rs_rt = api.registry.get("apps", "v1", "replicasets")

    def step(self) -> float | None:
        pods_by_owner = owned_by(self._api.store, PODS)
        wait: float | None = None
        for entry in self._api.store.entries(RSS):
            rs = entry.obj
            if rs["metadata"].get("deletionTimestamp"):
                continue
            again = self._sync(rs, pods_by_owner.get(rs["metadata"]["uid"], []))
            if again is not None:
                wait = again if wait is None else min(wait, again)
        return wait

    def _sync(self, rs: Obj, pods: list[Obj]) -> float | None:
        meta, spec = rs["metadata"], rs.get("spec") or {}
        active = [p for p in pods if is_active(p)]
        want = replicas(rs)
        assert self._pods_rt is not None
        if len(active) < want:
            template = spec.get("template") or {}
            for _ in range(want - len(active)):
                pod = pod_from_template(
                    template, f"{meta['name']}-", owner_ref(rs, "ReplicaSet"), {}
                )
                try:
                    self._api.create(self._pods_rt, meta["namespace"], pod, INTERNAL)
                except ApiError:
                    break  # e.g. the namespace is going away
        elif len(active) > want:
            for pod in deletion_order(active)[: len(active) - want]:
                try:
                    self._api.delete(self._pods_rt, meta["namespace"], pod["metadata"]["name"])
                except ApiError:
                    pass
        return self._write_status(rs, pods)

    def _write_status(self, rs: Obj, pods: list[Obj]) -> float | None:
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        active = [p for p in pods if is_active(p)]
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        ready = [p for p in active if is_ready(p)]
        available = [p for p in ready if is_available(p, min_ready)]
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for p in active
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
            ),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        current = rs.get("status") or {}
        if any(current.get(k, 0) != v for k, v in status.items()):
            assert self._rs_rt is not None
            meta = rs["metadata"]
            self._api.update(
                self._rs_rt,
                meta["namespace"],
                meta["name"],
                {**rs, "status": {**current, **status}},
                "status",
            )
        return float(min_ready) if len(available) < len(ready) else None
