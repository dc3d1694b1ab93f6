"""A stand-in for kube-scheduler in the SIMULATED cluster.

Each step takes every pending pod (no `spec.nodeName`, not terminating, `schedulerName`
default-scheduler), filters the Nodes as the scheduler's plugins do (`sim.k8s.placement`:
taints and tolerations, `spec.unschedulable`, nodeSelector and required node affinity) and binds
the pod through the `pods/binding` semantics (`Api.bind`) to the fitting node with the fewest
pods (ties by name): a crude stand-in for the scoring plugins that spreads replicas. A pod no
node fits gets `PodScheduled=False`, reason `Unschedulable`, and a message in the scheduler's
words (`0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) had untolerated taint
{os: Windows}.`); it is retried whenever a Node or a pod changes. The scheduler itself does not
look at the Ready condition: the node lifecycle controller's not-ready/unreachable taints keep
pods off unhealthy nodes, as on a real cluster.

Runs as a `ControlLoop` from `sim.k8s.controllers`.
"""

from __future__ import annotations

import copy
from collections import Counter

from sim.k8s import placement
from sim.k8s.api import Api
from sim.k8s.errors import ApiError
from sim.k8s.pods import set_condition
from sim.k8s.store import Obj

NODES = ("", "nodes")
PODS = ("", "pods")
SCHEDULER_NAME = "default-scheduler"


def _pending(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and not pod["metadata"].get("deletionTimestamp")
        and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
        and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
    )


def unschedulable_message(total: int, reasons: Counter[str]) -> str:
    parts = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    return (
        f"0/{total} nodes are available: {parts}. preemption: 0/{total} nodes are available: "
        f"{total} Preemption is not helpful for scheduling."
        if parts
        else f"0/{total} nodes are available."
    )


class Scheduler:
    def __init__(self, api: Api) -> None:
        self._api = api
        self._pods_rt = api.registry.get("", "v1", "pods")

    def step(self) -> float | None:
        store = self._api.store
        pods = [e.obj for e in store.entries(PODS)]
        pending = [p for p in pods if _pending(p)]
        if not pending:
            return None
        nodes = [e.obj for e in store.entries(NODES)]
        load = Counter(
            (p.get("spec") or {}).get("nodeName")
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
        )
        pending.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""))
        for pod in pending:
            reasons: Counter[str] = Counter()
            best: Obj | None = None
            for node in nodes:
                why = placement.unfit_reason(pod, node)
                if why is not None:
                    reasons[why] += 1
                elif best is None or (load[node["metadata"]["name"]], node["metadata"]["name"]) < (
                    load[best["metadata"]["name"]],
                    best["metadata"]["name"],
                ):
                    best = node
            meta = pod["metadata"]
            if best is None:
                self._unschedulable(pod, unschedulable_message(len(nodes), reasons))
                continue
            name = best["metadata"]["name"]
            try:
                self._api.bind(meta["namespace"], meta["name"], {"target": {"name": name}})
            except ApiError:
                continue  # deleted or bound by someone else meanwhile
            load[name] += 1
        return None

    def _unschedulable(self, pod: Obj, message: str) -> None:
        status = copy.deepcopy(pod.get("status") or {})
        if set_condition(status, "PodScheduled", "False", reason="Unschedulable", message=message):
            meta = pod["metadata"]
            assert self._pods_rt is not None
            self._api.update(
                self._pods_rt, meta["namespace"], meta["name"], {**pod, "status": status}, "status"
            )
