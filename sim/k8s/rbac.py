"""RBAC for the SIMULATED Kubernetes API server: rbac.authorization.k8s.io/v1 evaluated live.

Reads Role, ClusterRole, RoleBinding and ClusterRoleBinding objects from the store on every
decision, as kube-apiserver's RBAC authorizer does from its informers:
- subjects: User and Group by name; ServiceAccount by namespace/name (a RoleBinding's
  ServiceAccount subject without a namespace means the binding's namespace);
- rules: verbs (`*`), apiGroups (`*`), resources (`*`, `pods`, `pods/status`, `*/status`),
  resourceNames (a request without a name, like list or create, never matches a rule that has
  them), nonResourceURLs (exact, or a prefix ending in `*`);
- a binding whose role is missing denies with the reason `RBAC: role... not found`, and an
  allowed review says which binding allowed it, in the real wording.
ClusterRoles with an aggregationRule get the rules of the ClusterRoles their selectors pick
(what the clusterrole-aggregation controller writes). Used by `sim.k8s.authz`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sim.k8s.auth import Identity
from sim.k8s.selectors import match_label_selector_object
from sim.k8s.store import Obj, Store

GROUP = "rbac.authorization.k8s.io"
ROLES = (GROUP, "roles")
CLUSTER_ROLES = (GROUP, "clusterroles")
ROLE_BINDINGS = (GROUP, "rolebindings")
CLUSTER_ROLE_BINDINGS = (GROUP, "clusterrolebindings")


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as `authorizer.Attributes`."""

    who: Identity
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""
    resource_request: bool = True


def _has(values: list[Any] | None, wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values or ())


def _resource_matches(rule: Obj, attrs: Attributes) -> bool:
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    for res in rule.get("resources") or ():
        if res in ("*", combined):
            return True
        if attrs.subresource and res == f"*/{attrs.subresource}":
            return True
    return False


def _url_matches(rule: Obj, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or ():
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(attrs: Attributes, rule: Obj) -> bool:
    """`rbac.RuleAllows`: does one PolicyRule grant the request?"""
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        return _url_matches(rule, attrs.path)
    if not _has(rule.get("apiGroups"), attrs.group) or not _resource_matches(rule, attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _subject_matches(subject: Obj, who: Identity, binding_ns: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == who.user)
    if kind == "Group":
        return name in who.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return bool(ns) and who.user == f"system:serviceaccount:{ns}:{name}"
    return False


def _describe_subject(subject: Obj, binding_ns: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return f'ServiceAccount "{subject.get("name")}/{ns}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


class Rbac:
    """The RBAC authorizer over the twin's store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def cluster_role_rules(self, role: Obj) -> list[Obj]:
        """A ClusterRole's rules, aggregated from the roles its aggregationRule selects."""
        aggregation = role.get("aggregationRule")
        if not aggregation:
            return list(role.get("rules") or [])
        rules: list[Obj] = []
        for entry in self.store.entries(CLUSTER_ROLES):
            other = entry.obj
            if other is role or other.get("aggregationRule"):
                continue
            labels = other["metadata"].get("labels") or {}
            selectors = aggregation.get("clusterRoleSelectors") or []
            if any(match_label_selector_object(s, labels) for s in selectors):
                rules += [r for r in other.get("rules") or [] if r not in rules]
        return rules

    def _role_rules(self, ref: Obj, binding_ns: str) -> tuple[list[Obj], str]:
        name = ref.get("name", "")
        if ref.get("kind") == "ClusterRole":
            entry = self.store.entry(CLUSTER_ROLES, "", name)
            if entry is None:
                return [], f'clusterrole.{GROUP} "{name}" not found'
            return self.cluster_role_rules(entry.obj), ""
        entry = self.store.entry(ROLES, binding_ns, name)
        if entry is None:
            return [], f'role.{GROUP} "{name}" not found'
        return list(entry.obj.get("rules") or []), ""

    def visit(self, who: Identity, namespace: str) -> Iterator[tuple[str, list[Obj], str]]:
        """(how this grant applies, its rules, error) for every binding that names `who`."""
        for gp, scoped in ((CLUSTER_ROLE_BINDINGS, ""), (ROLE_BINDINGS, namespace)):
            if gp == ROLE_BINDINGS and not namespace:
                continue
            for entry in self.store.entries(gp, scoped):
                binding = entry.obj
                ns = binding["metadata"].get("namespace", "")
                subject = next(
                    (s for s in binding.get("subjects") or [] if _subject_matches(s, who, ns)),
                    None,
                )
                if subject is None:
                    continue
                ref = binding.get("roleRef") or {}
                rules, error = self._role_rules(ref, ns)
                name = binding["metadata"]["name"]
                kind = "ClusterRoleBinding" if gp == CLUSTER_ROLE_BINDINGS else "RoleBinding"
                label = f"{name}/{ns}" if ns else name
                source = (
                    f'{kind} "{label}" of {ref.get("kind")} "{ref.get("name")}" to '
                    + _describe_subject(subject, ns)
                )
                yield source, rules, error

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason) as the RBAC authorizer answers."""
        errors: list[str] = []
        for source, rules, error in self.visit(attrs.who, attrs.namespace):
            if error:
                errors.append(error)
            if any(rule_allows(attrs, r) for r in rules):
                return True, f"RBAC: allowed by {source}"
        if not errors:
            return False, ""
        joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return False, f"RBAC: {joined}"

    def rules_for(self, who: Identity, namespace: str) -> tuple[list[Obj], list[str]]:
        """Every rule that applies to `who` in `namespace` (SelfSubjectRulesReview)."""
        rules: list[Obj] = []
        errors: list[str] = []
        for _source, granted, error in self.visit(who, namespace):
            rules += granted
            if error:
                errors.append(error)
        return rules, errors
