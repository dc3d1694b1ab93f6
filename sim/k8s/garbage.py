"""Garbage collection in the SIMULATED cluster: owner cascade and the pod garbage collector.

- `OwnerCascade` (the garbage collector, background propagation): a ReplicaSet or Pod whose
  every ownerReference points at an object that no longer exists is deleted (pods gracefully).
  Only owners of the kinds the twin's controllers create are followed (Deployment, ReplicaSet,
  DaemonSet); foreground deletion and orphaning are not modelled.
- `PodGC` (kube-controller-manager's pod GC, orphaned pods): a pod bound to a Node that does
  not exist is force-deleted (grace 0) once the node has been missing for `quarantine` seconds
  (40 s in the real controller), so pods of a Node the cloud controller removed do not stay
  Terminating for ever.

Both run as `ControlLoop`s from `sim.k8s.controllers`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sim.k8s.api import Api
from sim.k8s.errors import ApiError
from sim.k8s.store import Obj

NODES = ("", "nodes")
PODS = ("", "pods")
OWNER_KINDS = {
    "Deployment": ("apps", "deployments"),
    "ReplicaSet": ("apps", "replicasets"),
    "DaemonSet": ("apps", "daemonsets"),
}
DEPENDENTS = (("apps", "v1", "replicasets"), ("", "v1", "pods"))


class OwnerCascade:
    def __init__(self, api: Api) -> None:
        self._api = api

    def _owner_exists(self, ns: str, ref: Obj) -> bool:
        gp = OWNER_KINDS.get(str(ref.get("kind")))
        if gp is None:
            return True  # an owner kind the twin does not collect for
        entry = self._api.store.entry(gp, ns, str(ref.get("name")))
        return entry is not None and entry.obj["metadata"].get("uid") == ref.get("uid")

    def step(self) -> float | None:
        for group, version, plural in DEPENDENTS:
            rt = self._api.registry.get(group, version, plural)
            assert rt is not None
            for entry in self._api.store.entries((group, plural)):
                meta = entry.obj["metadata"]
                refs = meta.get("ownerReferences") or []
                if not refs or meta.get("deletionTimestamp"):
                    continue
                if any(self._owner_exists(meta["namespace"], r) for r in refs):
                    continue
                try:
                    self._api.delete(rt, meta["namespace"], meta["name"])
                except ApiError:
                    pass
        return None


class PodGC:
    def __init__(
        self, api: Api, quarantine: float = 40.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._api = api
        self.quarantine = quarantine
        self._clock = clock
        self._missing: dict[str, float] = {}  # node name -> when first seen missing

    def step(self) -> float | None:
        now = self._clock()
        pods_rt = self._api.registry.get("", "v1", "pods")
        assert pods_rt is not None
        orphans: dict[str, list[Obj]] = {}
        for entry in self._api.store.entries(PODS):
            node = (entry.obj.get("spec") or {}).get("nodeName")
            if node and self._api.store.entry(NODES, "", node) is None:
                orphans.setdefault(node, []).append(entry.obj)
        self._missing = {n: self._missing.get(n, now) for n in orphans}
        wait: float | None = None
        for node, pods in orphans.items():
            left = self._missing[node] + self.quarantine - now
            if left > 0:
                wait = left if wait is None else min(wait, left)
                continue
            for pod in pods:
                meta = pod["metadata"]
                try:
                    self._api.delete(
                        pods_rt, meta["namespace"], meta["name"], {"gracePeriodSeconds": 0}
                    )
                except ApiError:
                    pass
        return wait
