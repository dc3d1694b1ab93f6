"""Label and field selectors for the SIMULATED Kubernetes API server.

Parses `labelSelector` (=, ==, !=, in, notin, exists, !exists) and `fieldSelector` (=, ==, !=
on metadata.name, metadata.namespace and the fields each kind supports, e.g. Pod spec.nodeName /
status.phase, Event involvedObject.*; others are "field label not supported", 400) query
strings into predicates over stored objects. Also matches policy/v1 `LabelSelector` objects
(matchLabels/matchExpressions), used by PodDisruptionBudgets during eviction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sim.k8s.errors import ApiError

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_META_FIELDS = ("metadata.name", "metadata.namespace")
# The field labels each kind supports (kube-apiserver's field label conversion functions).
FIELDS_BY_KIND = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Node": ("spec.unschedulable",),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "CertificateSigningRequest": ("spec.signerName",),
}
_ALIASES = {"source": "source.component"}


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t.strip() for t in terms if t.strip()]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    m = _SET_RE.match(term)
    if m:
        key, op, raw = m.group(1), m.group(2), m.group(3)
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = term.partition(op)
            key, value = key.strip(), value.strip()
            if not key:
                break
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    else:
        if term.startswith("!"):
            key = term[1:].strip()
            return lambda labels: key not in labels
        if re.fullmatch(r"[A-Za-z0-9._/-]+", term):
            return lambda labels: term in labels
    raise ApiError(400, f"unable to parse requirement: invalid label selector: {term!r}")


def parse_label_selector(text: str | None) -> Predicate | None:
    if not text:
        return None
    terms = [_label_term(t) for t in _split_terms(text)]

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(t(labels) for t in terms)

    return match


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None, kind: str = "") -> Predicate | None:
    if not text:
        return None
    known = {*_META_FIELDS, *FIELDS_BY_KIND.get(kind, ())} if kind else None
    checks: list[tuple[str, bool, str]] = []
    for term in _split_terms(text):
        for op in ("!=", "==", "="):
            if op in term:
                path, _, value = term.partition(op)
                path = path.strip()
                if known is not None and path not in known:
                    raise ApiError(400, f"field label not supported: {path}")
                checks.append((_ALIASES.get(path, path), op == "!=", value.strip()))
                break
        else:
            raise ApiError(400, f"invalid field selector: {term!r}")

    def match(obj: dict[str, Any]) -> bool:
        return all(
            (_field_value(obj, p) != v) if neg else (_field_value(obj, p) == v)
            for p, neg, v in checks
        )

    return match


def match_label_selector_object(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Does a metav1.LabelSelector (matchLabels/matchExpressions) select `labels`?

    An empty selector selects everything (policy/v1 semantics); None selects nothing.
    """
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def request_predicate(
    query: Mapping[str, str], namespaced: bool, ns: str, kind: str = ""
) -> Predicate:
    """The filter a list/watch request asks for: namespace, labelSelector, fieldSelector."""
    label = parse_label_selector(query.get("labelSelector"))
    field = parse_field_selector(query.get("fieldSelector"), kind)

    def match(obj: dict[str, Any]) -> bool:
        if ns and namespaced and obj["metadata"].get("namespace") != ns:
            return False
        return (label is None or label(obj)) and (field is None or field(obj))

    return match
