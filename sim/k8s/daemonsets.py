"""The DaemonSet controller of kube-controller-manager, SIMULATED.

For every apps/v1 DaemonSet and every Node: the daemon pod it would create (template, plus the
tolerations the real controller adds: not-ready/unreachable NoExecute without time limit,
disk/memory/pid-pressure and unschedulable NoSchedule, network-unavailable for hostNetwork pods,
and a required node affinity `matchFields metadata.name In [<node>]`) should run there if the
node matches its nodeSelector/affinity and it tolerates the node's NoSchedule and NoExecute
taints; a running one may stay while it tolerates the NoExecute ones. Missing pods are created
(`generateName: <ds>-`, label `controller-revision-hash`, controller ownerReference kind
DaemonSet, which is how `kubectl drain` recognises them) and bound by the scheduler; pods on
nodes they may no longer run on, and duplicates, are deleted. RollingUpdate (the default)
replaces pods of an older template one node at a time (`maxUnavailable` 1); OnDelete leaves
them. Status: desired/current/misscheduled/ready/available/updated counts and
`observedGeneration`. Not modelled: ControllerRevision objects, maxSurge.

Runs as a `ControlLoop` from `sim.k8s.controllers`.
"""

from __future__ import annotations

import copy

from sim.k8s import placement
from sim.k8s.api import Api
from sim.k8s.auth import INTERNAL
from sim.k8s.errors import ApiError
from sim.k8s.owners import owned_by, owner_ref, pod_from_template, template_hash
from sim.k8s.pods import NOT_READY, UNREACHABLE, is_active, is_ready
from sim.k8s.store import Obj

DAEMONSETS = ("apps", "daemonsets")
NODES = ("", "nodes")
PODS = ("", "pods")
REVISION_LABEL = "controller-revision-hash"
_DAEMON_TOLERATIONS = [
    {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"},
    {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": placement.UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
]
_HOST_NETWORK_TOLERATION = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def daemon_pod(ds: Obj, node: str) -> Obj:
    """The pod `ds` would create for `node`."""
    template = (ds.get("spec") or {}).get("template") or {}
    pod = pod_from_template(
        template,
        f"{ds['metadata']['name']}-",
        owner_ref(ds, "DaemonSet"),
        {REVISION_LABEL: template_hash(template)},
    )
    spec = pod["spec"]
    tolerations = spec.setdefault("tolerations", [])
    extra = [*_DAEMON_TOLERATIONS]
    if spec.get("hostNetwork"):
        extra.append(_HOST_NETWORK_TOLERATION)
    for tol in extra:
        if not any(
            t.get("key") == tol["key"] and t.get("effect") == tol["effect"] for t in tolerations
        ):
            tolerations.append(dict(tol))
    affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
    }
    return pod


def _may_continue(pod: Obj, node: Obj) -> bool:
    """A running daemon pod stays while it tolerates the node's NoExecute taints."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    return all(
        placement.tolerates(tolerations, t)
        for t in (node.get("spec") or {}).get("taints") or []
        if t.get("effect") == "NoExecute"
    )


class DaemonSetController:
    def __init__(self, api: Api) -> None:
        self._api = api
        self._pods_rt = api.registry.get("", "v1", "pods")
        self._ds_rt = api.registry.get("apps", "v1", "daemonsets")

    def step(self) -> float | None:
        nodes = [e.obj for e in self._api.store.entries(NODES)]
        pods = owned_by(self._api.store, PODS)
        for entry in self._api.store.entries(DAEMONSETS):
            ds = entry.obj
            if not ds["metadata"].get("deletionTimestamp"):
                self._sync(ds, nodes, pods.get(ds["metadata"]["uid"], []))
        return None

    def _sync(self, ds: Obj, nodes: list[Obj], pods: list[Obj]) -> None:
        ns = ds["metadata"]["namespace"]
        current = template_hash((ds.get("spec") or {}).get("template") or {})
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            if is_active(pod):
                target = _target_node(pod)
                by_node.setdefault(target, []).append(pod)
        desired = scheduled = misscheduled = ready = updated = 0
        doomed: list[Obj] = []
        outdated: list[Obj] = []
        for node in nodes:
            name = node["metadata"]["name"]
            here = by_node.pop(name, [])
            probe = daemon_pod(ds, name)
            fits = placement.unfit_reason(probe, node) is None
            stays = placement.matches_node(probe, node) and _may_continue(probe, node)
            if fits or (here and stays):
                desired += 1
                if not here:
                    self._create(ns, probe)
                    continue
                scheduled += 1
                keep, *extra = sorted(
                    here, key=lambda p: p["metadata"].get("creationTimestamp", "")
                )
                doomed.extend(extra)
                ready += is_ready(keep)
                if (keep["metadata"].get("labels") or {}).get(REVISION_LABEL) == current:
                    updated += 1
                else:
                    outdated.append(keep)
            elif here:
                misscheduled += 1
                doomed.extend(here)
        for leftovers in by_node.values():  # pods for nodes that are gone
            doomed.extend(leftovers)
        strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate" and outdated and ready == scheduled:
            doomed.append(outdated[0])  # one at a time: maxUnavailable 1
        for pod in doomed:
            try:
                self._api.delete(self._pods_rt, ns, pod["metadata"]["name"])  # type: ignore[arg-type]
            except ApiError:
                pass
        self._write_status(
            ds,
            {
                "desiredNumberScheduled": desired,
                "currentNumberScheduled": scheduled,
                "numberMisscheduled": misscheduled,
                "numberReady": ready,
                "numberAvailable": ready,
                "numberUnavailable": desired - ready,
                "updatedNumberScheduled": updated,
                "observedGeneration": ds["metadata"].get("generation", 1),
            },
        )

    def _create(self, ns: str, pod: Obj) -> None:
        assert self._pods_rt is not None
        try:
            self._api.create(self._pods_rt, ns, pod, INTERNAL)
        except ApiError:
            pass

    def _write_status(self, ds: Obj, status: Obj) -> None:
        current = ds.get("status") or {}
        if all(current.get(k, 0) == v for k, v in status.items()):
            return
        assert self._ds_rt is not None
        meta = ds["metadata"]
        self._api.update(
            self._ds_rt,
            meta["namespace"],
            meta["name"],
            {**copy.deepcopy(ds), "status": {**current, **status}},
            "status",
        )


def _target_node(pod: Obj) -> str:
    """The node a daemon pod is for: where it is bound, else its affinity's node name."""
    bound = (pod.get("spec") or {}).get("nodeName")
    if bound:
        return str(bound)
    terms = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution", {}
    ).get("nodeSelectorTerms") or []
    for term in terms:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return str(field["values"][0])
    return ""
