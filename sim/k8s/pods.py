"""What the SIMULATED kube-apiserver does to Pods beyond storing them.

- Defaulting and admission on create (`default_pod`): `terminationGracePeriodSeconds` 30,
  `restartPolicy` Always, `dnsPolicy` ClusterFirst, `schedulerName` default-scheduler, and the
  DefaultTolerationSeconds admission plugin's tolerations (`node.kubernetes.io/not-ready` and
  `node.kubernetes.io/unreachable`, NoExecute, 300 s) unless the pod tolerates those already.
- Graceful deletion (`graceful_delete`): as the pod registry strategy does, a bound, not yet
  finished pod is not removed by DELETE but gets `deletionTimestamp` = now + grace period and
  `deletionGracePeriodSeconds`; the kubelet of its node removes it (grace 0) once its containers
  are stopped (`sim.k8s.kubelet_pods`). An unbound or finished pod, or grace 0, goes at once. A
  second DELETE may only shorten the grace period.
- The `pods/binding` subresource (`bind`): what the scheduler POSTs; sets `spec.nodeName` and
  the PodScheduled condition, 409 if the pod is bound already.

Called by `sim.k8s.api` (create, delete), `sim.k8s.handlers` (binding) and `sim.k8s.scheduler`.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from sim.k8s.errors import ApiError
from sim.k8s.store import Obj

DEFAULT_GRACE_SECONDS = 30
DEFAULT_TOLERATION_SECONDS = 300
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def _iso(at: datetime.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return _iso(datetime.datetime.now(datetime.UTC))


def default_pod(pod: Obj) -> None:
    """Fill the defaults and the DefaultTolerationSeconds tolerations of a new pod."""
    pod["status"] = {"phase": "Pending"}
    spec = pod.setdefault("spec", {})
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    tolerations = spec.get("tolerations") or []
    for key in (NOT_READY, UNREACHABLE):
        covered = any(
            t.get("effect") in (None, "", "NoExecute")
            and (t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"))
            for t in tolerations
        )
        if not covered:
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )
    spec["tolerations"] = tolerations


def _requested_grace(pod: Obj, options: Any) -> int:
    given = options.get("gracePeriodSeconds") if isinstance(options, dict) else None
    if given is not None:
        period = int(given)
    else:
        period = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 0) or 0)
    if not (pod.get("spec") or {}).get("nodeName"):
        return 0  # never scheduled: nothing runs that needs stopping
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    return max(0, period)


def graceful_delete(pod: Obj, options: Any) -> Obj | None:
    """The pod as a graceful DELETE leaves it (unchanged if nothing changes), or None when it
    must be removed right away."""
    period = _requested_grace(pod, options)
    meta = pod["metadata"]
    if period == 0:
        return None
    if meta.get("deletionTimestamp"):
        current = int(meta.get("deletionGracePeriodSeconds") or 0)
        if period >= current:
            return pod  # a grace period can only be shortened
    out = copy.deepcopy(pod)
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=period)
    out["metadata"]["deletionTimestamp"] = _iso(at)
    out["metadata"]["deletionGracePeriodSeconds"] = period
    return out


def set_condition(status: Obj, kind: str, value: str, **extra: str) -> bool:
    """Set pod condition `kind` to `value` (lastTransitionTime moves only on a change);
    True if anything changed."""
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == kind:
            if cond.get("status") == value and all(cond.get(k) == v for k, v in extra.items()):
                return False
            if cond.get("status") != value:
                cond["lastTransitionTime"] = now_iso()
            cond["status"] = value
            for k in ("reason", "message"):
                cond.pop(k, None)
            cond.update(extra)
            return True
    conditions.append(
        {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": now_iso()}
        | extra
    )
    return True


def bind(pod: Obj, body: Any) -> Obj:
    """The pod after a Binding `body` (`target.name` = node), as kube-apiserver assigns it."""
    target = (body.get("target") or {}) if isinstance(body, dict) else {}
    node = target.get("name")
    name = pod["metadata"]["name"]
    if not node or target.get("kind", "Node") != "Node":
        raise ApiError(422, f'Binding "{name}" is invalid: target.name: Required value', "Invalid")
    if pod["metadata"].get("deletionTimestamp"):
        raise ApiError(
            409, f"pod {name} is being deleted, cannot be assigned to a host", "Conflict"
        )
    bound = (pod.get("spec") or {}).get("nodeName")
    if bound:
        raise ApiError(409, f'pod {name} is already assigned to node "{bound}"', "Conflict")
    out = copy.deepcopy(pod)
    out["spec"]["nodeName"] = node
    set_condition(out.setdefault("status", {}), "PodScheduled", "True")
    return out


def is_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def is_active(pod: Obj) -> bool:
    """Counted by its controller: not terminating and not finished (FilterActivePods)."""
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get(
        "phase"
    ) not in ("Succeeded", "Failed")


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference with controller: true, if any."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None
