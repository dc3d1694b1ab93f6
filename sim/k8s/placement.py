"""Which node may run which pod, as kube-scheduler's filter plugins decide (SIMULATED cluster).

- TaintToleration: every NoSchedule/NoExecute taint of the node must be tolerated (a toleration
  matches by key (empty key + Exists = all), operator Equal (value) or Exists, and effect
  (empty = all)); PreferNoSchedule never blocks.
- NodeUnschedulable: `spec.unschedulable` blocks unless the pod tolerates
  `node.kubernetes.io/unschedulable:NoSchedule` (DaemonSet pods do).
- NodeAffinity: `nodeSelector` labels, and required node affinity terms (matchExpressions on
  labels with In/NotIn/Exists/DoesNotExist/Gt/Lt, matchFields on `metadata.name`); terms are
  ORed, expressions ANDed.

`unfit_reason(pod, node)` gives the scheduler's per-node failure text or None. Used by
`sim.k8s.scheduler`, `sim.k8s.daemonsets` and `sim.k8s.nodelifecycle` (NoExecute eviction).
"""

from __future__ import annotations

from typing import Any

from sim.k8s.store import Obj

UNSCHEDULABLE = "node.kubernetes.io/unschedulable"


def tolerates(tolerations: list[Obj], taint: Obj) -> Obj | None:
    """The first toleration that tolerates `taint`, or None."""
    for tol in tolerations:
        effect = tol.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = tol.get("key") or ""
        operator = tol.get("operator") or "Equal"
        if not key:
            if operator == "Exists":
                return tol
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (tol.get("value") or "") == (taint.get("value") or ""):
            return tol
    return None


def untolerated_taint(pod: Obj, node: Obj) -> Obj | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return dict(taint)
    return None


def _expression_matches(expr: Obj, value: str | None) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            number, bound = int(value), int(values[0])
        except ValueError:
            return False
        return number > bound if op == "Gt" else number < bound
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    exprs = term.get("matchExpressions") or []
    field_exprs = term.get("matchFields") or []
    if not exprs and not field_exprs:
        return False  # an empty term matches nothing
    return all(_expression_matches(e, labels.get(e.get("key"))) for e in exprs) and all(
        _expression_matches(e, fields.get(e.get("key"))) for e in field_exprs
    )


def matches_node(pod: Obj, node: Obj) -> bool:
    """nodeSelector and required node affinity."""
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required: Any = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if required:
        return any(_term_matches(t, node) for t in required)
    return True


def unfit_reason(pod: Obj, node: Obj) -> str | None:
    """Why `pod` cannot go to `node` (the scheduler's wording), or None if it fits."""
    if not matches_node(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    unschedulable = {"key": UNSCHEDULABLE, "effect": "NoSchedule"}
    if (node.get("spec") or {}).get("unschedulable") and not tolerates(tolerations, unschedulable):
        return "node(s) were unschedulable"
    taint = untolerated_taint(pod, node)
    if taint is not None:
        value = taint.get("value") or ""
        return f"node(s) had untolerated taint {{{taint.get('key')}: {value}}}"
    return None
