"""PodDisruptionBudgets in the SIMULATED Kubernetes API server: eviction and budget status.

`evict()` implements the pods/eviction subresource: a Running pod selected by a policy/v1
PodDisruptionBudget may only be evicted while the budget allows a disruption; otherwise the
request fails with 429 TooManyRequests (cause DisruptionBudget), as kube-apiserver does.
`refresh_statuses()` is the stand-in disruption controller: it keeps each budget's status
(expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed) current. Used by
`sim.k8s.handlers` and `sim.k8s.controllers`.

A pod is healthy when it is Running, not terminating and not marked not Ready (a pod with no
Ready condition at all, as tests write by hand, counts as ready). Pending, finished and
terminating pods are evicted without looking at budgets; a Running pod that is not ready may be
evicted while the budget has its desired healthy pods (unhealthyPodEvictionPolicy
IfHealthyBudget). With `maxUnavailable` or a percentage `minAvailable`, expectedPods is the
scale of the pods' controllers (a Deployment's replicas for pods of its ReplicaSets, a
ReplicaSet's own), as the disruption controller reads it; pods without such a controller count
as themselves.
"""

from __future__ import annotations

from typing import Any

from sim.k8s.api import Api
from sim.k8s.errors import ApiError
from sim.k8s.owners import replicas
from sim.k8s.pods import controller_of
from sim.k8s.selectors import match_label_selector_object
from sim.k8s.store import Obj, Store

PDBS = ("policy", "poddisruptionbudgets")
PODS = ("", "pods")
RSS = ("apps", "replicasets")
DEPLOYMENTS = ("apps", "deployments")


def _selects(pdb: Obj, pod: Obj) -> bool:
    selector = (pdb.get("spec") or {}).get("selector")
    return match_label_selector_object(selector, pod["metadata"].get("labels") or {})


def _healthy(pod: Obj) -> bool:
    status = pod.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return (
        status.get("phase") == "Running"
        and not pod["metadata"].get("deletionTimestamp")
        and (ready is None or ready.get("status") == "True")
    )


def _exempt(pod: Obj) -> bool:
    """Evicted without a budget check: pending, finished or already terminating."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Pending", "Succeeded", "Failed") or bool(
        pod["metadata"].get("deletionTimestamp")
    )


def _expected_scale(store: Store, ns: str, pods: list[Obj]) -> int:
    """Sum of the scales of the controllers of `pods` (each counted once)."""
    scales: dict[str, int] = {}
    loose = 0
    for pod in pods:
        ref = controller_of(pod)
        owner = None
        if ref is not None and ref.get("kind") == "ReplicaSet":
            rs = store.entry(RSS, ns, str(ref.get("name")))
            owner = rs.obj if rs is not None else None
            parent = controller_of(owner) if owner is not None else None
            if parent is not None and parent.get("kind") == "Deployment":
                deploy = store.entry(DEPLOYMENTS, ns, str(parent.get("name")))
                owner = deploy.obj if deploy is not None else owner
        if owner is None:
            loose += 1
        else:
            scales[owner["metadata"]["uid"]] = replicas(owner)
    return sum(scales.values()) + loose


def budget_status(store: Store, ns: str, pdb: Obj) -> dict[str, Any]:
    """What the disruption controller would write into `pdb`'s status right now."""
    spec = pdb.get("spec") or {}
    selected = [e.obj for e in store.entries(PODS, ns) if _selects(pdb, e.obj)]
    by_scale = "maxUnavailable" in spec or str(spec.get("minAvailable", "")).endswith("%")
    expected = _expected_scale(store, ns, selected) if by_scale else len(selected)
    healthy = sum(1 for p in selected if _healthy(p))

    def resolve(value: Any) -> int:
        if isinstance(value, str) and value.endswith("%"):
            return -(-int(value[:-1]) * expected // 100)  # rounded up, as Kubernetes does
        return int(value)

    if "minAvailable" in spec:
        desired = resolve(spec["minAvailable"])
    elif "maxUnavailable" in spec:
        desired = max(0, expected - resolve(spec["maxUnavailable"]))
    else:
        desired = expected
    return {
        "observedGeneration": pdb["metadata"].get("generation", 1),
        "expectedPods": expected,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "disruptionsAllowed": max(0, healthy - desired),
    }


def evict(api: Api, ns: str, name: str, body: Any) -> None:
    """Delete pod `ns/name` unless that would break its disruption budget (429)."""
    pods_rt = api.registry.get("", "v1", "pods")
    assert pods_rt is not None
    entry = api.store.entry(PODS, ns, name)
    if entry is None:
        raise ApiError(
            404, f'pods "{name}" not found', "NotFound", {"name": name, "group": "", "kind": "pods"}
        )
    pod = entry.obj
    if not _exempt(pod):
        pdbs = [e.obj for e in api.store.entries(PDBS, ns) if _selects(e.obj, pod)]
        if len(pdbs) > 1:
            raise ApiError(
                500,
                "This pod has more than one PodDisruptionBudget, which the "
                "eviction subresource does not support.",
            )
        if pdbs:
            pdb_name = pdbs[0]["metadata"]["name"]
            status = budget_status(api.store, ns, pdbs[0])
            if _healthy(pod):
                refused = status["disruptionsAllowed"] <= 0
            else:  # IfHealthyBudget: an unready pod may go while the budget is met
                refused = status["currentHealthy"] < status["desiredHealthy"]
            if refused:
                raise ApiError(
                    429,
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    "TooManyRequests",
                    {
                        "causes": [
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {pdb_name} needs "
                                f"{status['desiredHealthy']} healthy pods and has "
                                f"{status['currentHealthy']} currently",
                            }
                        ]
                    },
                )
    options = body.get("deleteOptions") if isinstance(body, dict) else None
    api.delete(pods_rt, ns, name, options)


def refresh_statuses(api: Api, ns: str) -> None:
    """Recompute the status of every budget in `ns` (no write when nothing changed)."""
    rt = api.registry.get("policy", "v1", "poddisruptionbudgets")
    assert rt is not None
    for entry in api.store.entries(PDBS, ns):
        status = budget_status(api.store, ns, entry.obj)
        current = entry.obj.get("status") or {}
        if any(current.get(k) != v for k, v in status.items()):
            name = entry.obj["metadata"]["name"]
            api.update(rt, ns, name, {**entry.obj, "status": {**current, **status}}, "status")
