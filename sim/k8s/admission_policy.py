"""ValidatingAdmissionPolicy of the SIMULATED kube-apiserver (admissionregistration.k8s.io/v1).

What the real `ValidatingAdmissionPolicy` admission plugin does, evaluated live from the store
on every create, update (patch, apply, subresource writes) and delete, after the built-in
validating plugins: for each policy whose `matchConstraints` match the request
(`resourceRules` by group/version/resource[/subresource]/operation/scope/resourceNames,
`excludeResourceRules`, `namespaceSelector`, `objectSelector`) and each binding of it
(`spec.policyName`) whose `matchResources` match too, the `matchConditions` are evaluated (all
true, or the policy does not apply), then the `variables` and every `validations[]` CEL
expression over `object`, `oldObject` (null on create / delete), `request` (userInfo, operation,
name, namespace, resource, subResource, kind, dryRun), `namespaceObject`, `params` (null) and
`variables`. A validation that is false denies when the binding's `validationActions` include
`Deny`; an expression that errors is denied under `failurePolicy: Fail` (the default) and
ignored under `Ignore`. The first denial answers as the real plugin words it:
`<resource>[.<group>] "<name>" is forbidden: ValidatingAdmissionPolicy '<p>' with binding '<b>'
denied request: <message>`, code 422 (reason Invalid) unless the validation names a `reason`
(Forbidden 403, Unauthorized 401, RequestEntityTooLarge 413).

CEL is evaluated by `celpy` (cel-python): the standard CEL language and macros. Kubernetes'
extension libraries (strings beyond the standard ones, lists, quantity, url, ip/cidr,
`authorizer`), type checking at policy creation, cost limits, `paramKind`/`paramRef`,
`auditAnnotations`, and the Warn/Audit actions' warning headers and audit annotations are not
modelled (see sim/README.md). Called through `sim.k8s.api.Api.admission` (wired by
`sim.k8s.server.KubeTwin`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes

from sim.k8s.auth import Identity
from sim.k8s.errors import ApiError
from sim.k8s.selectors import match_label_selector_object
from sim.k8s.store import Obj, Store

GROUP = "admissionregistration.k8s.io"
POLICIES = (GROUP, "validatingadmissionpolicies")
BINDINGS = (GROUP, "validatingadmissionpolicybindings")
_REASON_CODES = {
    "Invalid": 422,
    "Forbidden": 403,
    "Unauthorized": 401,
    "RequestEntityTooLarge": 413,
}
_ENV = celpy.Environment()

# A namespace's labels, for namespaceSelector and `namespaceObject` (name -> object or None).
NamespaceLookup = Callable[[str], Obj | None]


@dataclass(frozen=True)
class Request:
    """The admission attributes a policy sees (`request` in CEL)."""

    who: Identity
    operation: str  # CREATE, UPDATE, DELETE
    group: str
    version: str
    resource: str
    subresource: str
    kind: str
    namespace: str
    name: str
    namespaced: bool
    dry_run: bool = False

    def as_cel(self) -> Obj:
        return {
            "uid": "",
            "kind": {"group": self.group, "version": self.version, "kind": self.kind},
            "resource": {"group": self.group, "version": self.version, "resource": self.resource},
            "subResource": self.subresource,
            "requestKind": {"group": self.group, "version": self.version, "kind": self.kind},
            "requestResource": {
                "group": self.group,
                "version": self.version,
                "resource": self.resource,
            },
            "requestSubResource": self.subresource,
            "name": self.name,
            "namespace": self.namespace,
            "operation": self.operation,
            "userInfo": {
                "username": self.who.user,
                "uid": self.who.uid,
                "groups": list(self.who.groups),
                "extra": dict(self.who.extra),
            },
            "dryRun": self.dry_run,
        }


class CelError(Exception):
    """An expression that does not compile or does not evaluate (to the type it must)."""


@lru_cache(maxsize=512)
def _program(expression: str) -> Any:
    try:
        return _ENV.program(_ENV.compile(expression))
    except celpy.CELParseError as exc:
        raise CelError(f"compilation failed: {str(exc).splitlines()[0]}") from None


def compile_errors(expression: str) -> str:
    """Why `expression` does not compile ("" when it does): for create-time validation."""
    try:
        _program(expression)
    except CelError as exc:
        return str(exc)
    return ""


def evaluate(expression: str, activation: Obj) -> Any:
    try:
        return _program(expression).evaluate(activation)
    except celpy.CELEvalError as exc:
        raise CelError(str(exc.args[0] if exc.args else exc)) from None


def _bool(expression: str, activation: Obj) -> bool:
    value = evaluate(expression, activation)
    if not isinstance(value, bool | celtypes.BoolType):
        raise CelError(f"expected bool, got {type(value).__name__}")
    return bool(value)


# -- matching ------------------------------------------------------------------------------
def _listed(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in values or value in values)  # type: ignore[operator]


def _resource_listed(resources: list[str] | None, resource: str, sub: str) -> bool:
    for entry in resources or ():
        res, _, entry_sub = entry.partition("/")
        if entry == "*" and not sub:
            return True
        if res in ("*", resource) and (entry_sub == sub or (entry_sub == "*" and sub)):
            return True
    return False


def _rule_matches(rule: Obj, req: Request) -> bool:
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and req.namespaced) or (scope == "Namespaced" and not req.namespaced):
        return False
    names = rule.get("resourceNames") or []
    return (
        _listed(rule.get("operations"), req.operation)
        and _listed(rule.get("apiGroups"), req.group)
        and _listed(rule.get("apiVersions"), req.version)
        and _resource_listed(rule.get("resources"), req.resource, req.subresource)
        and (not names or req.name in names)
    )


def _labels(obj: Obj | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def _resources_match(
    match: Obj | None,
    req: Request,
    old: Obj | None,
    new: Obj | None,
    namespace_of: NamespaceLookup,
    *,
    rules_required: bool,
) -> bool:
    """`matchConstraints` (policy) / `matchResources` (binding) against the request."""
    match = match or {}
    rules = match.get("resourceRules")
    if rules is not None or rules_required:
        if not any(_rule_matches(r, req) for r in rules or ()):
            return False
    if any(_rule_matches(r, req) for r in match.get("excludeResourceRules") or ()):
        return False
    object_selector = match.get("objectSelector")
    if object_selector is not None and not any(
        match_label_selector_object(object_selector, _labels(o)) for o in (old, new) if o
    ):
        return False
    ns_selector = match.get("namespaceSelector")
    if ns_selector is not None:
        if req.resource == "namespaces" and not req.subresource:
            labels = _labels(new or old)
        elif req.namespaced:
            labels = _labels(namespace_of(req.namespace))
        else:
            return True  # other cluster-scoped resources are never skipped by it
        return match_label_selector_object(ns_selector, labels)
    return True


# -- the plugin ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Denial:
    policy: str
    binding: str
    message: str
    reason: str = "Invalid"


class AdmissionPolicies:
    """Evaluates the stored ValidatingAdmissionPolicies and bindings for each request."""

    def __init__(self, store: Store, namespace_of: NamespaceLookup) -> None:
        self.store = store
        self._namespace_of = namespace_of

    def admit(self, req: Request, old: Obj | None, new: Obj | None) -> None:
        """Raise the real denial if a bound policy refuses the request."""
        policies = self.store.entries(POLICIES)
        if not policies:
            return
        bindings = [e.obj for e in self.store.entries(BINDINGS)]
        for entry in policies:
            policy = entry.obj
            spec = policy.get("spec") or {}
            if not _resources_match(
                spec.get("matchConstraints"),
                req,
                old,
                new,
                self._namespace_of,
                rules_required=True,
            ):
                continue
            name = policy["metadata"]["name"]
            for binding in bindings:
                bspec = binding.get("spec") or {}
                if bspec.get("policyName") != name:
                    continue
                if not _resources_match(
                    bspec.get("matchResources"),
                    req,
                    old,
                    new,
                    self._namespace_of,
                    rules_required=False,
                ):
                    continue
                denial = self._decide(policy, binding, req, old, new)
                if denial is not None and "Deny" in (bspec.get("validationActions") or ()):
                    raise _denied(req, denial)

    def _decide(
        self, policy: Obj, binding: Obj, req: Request, old: Obj | None, new: Obj | None
    ) -> Denial | None:
        spec = policy.get("spec") or {}
        fail = (spec.get("failurePolicy") or "Fail") == "Fail"
        p, b = policy["metadata"]["name"], binding["metadata"]["name"]
        ns_obj = self._namespace_of(req.namespace) if req.namespaced else None
        activation: Obj = {
            "object": new,
            "oldObject": old,
            "request": req.as_cel(),
            "params": None,
            "namespaceObject": ns_obj,
        }
        cel = celpy.json_to_cel(activation)
        for condition in spec.get("matchConditions") or ():
            try:
                if not _bool(condition.get("expression", ""), cel):
                    return None
            except CelError as exc:
                if not fail:
                    return None
                why = f"failed to evaluate matchCondition {condition.get('name', '')!r}: {exc}"
                return Denial(p, b, why)
        cel["variables"] = self._variables(spec, cel)
        for validation in spec.get("validations") or ():
            expression = validation.get("expression", "")
            try:
                if _bool(expression, cel):
                    continue
            except CelError as exc:
                if not fail:
                    continue
                return Denial(p, b, f"expression '{expression}' resulted in error: {exc}")
            return Denial(p, b, _message(validation, cel), validation.get("reason") or "Invalid")
        return None

    @staticmethod
    def _variables(spec: Obj, cel: Any) -> Any:
        """`variables.<name>`, in order (a later one may use an earlier); one that errors is
        left out, so the expressions that use it error in turn."""
        values: dict[str, Any] = {}
        for variable in spec.get("variables") or ():
            cel["variables"] = celtypes.MapType(values)
            try:
                values[celtypes.StringType(variable["name"])] = evaluate(
                    variable.get("expression", ""), cel
                )
            except CelError:
                continue
        return celtypes.MapType(values)


def _message(validation: Obj, cel: Any) -> str:
    expression = validation.get("messageExpression")
    if expression:
        try:
            value = evaluate(expression, cel)
            if isinstance(value, str) and value.strip():
                return str(value)
        except CelError:
            pass
    return str(validation.get("message") or f"failed expression: {validation.get('expression')}")


def _denied(req: Request, denial: Denial) -> ApiError:
    message = (
        f"ValidatingAdmissionPolicy '{denial.policy}' with binding '{denial.binding}' denied "
        f"request: {denial.message}"
    )
    qualified = f"{req.resource}.{req.group}" if req.group else req.resource
    what = f'{qualified} "{req.name}"' if req.name else qualified
    return ApiError(
        _REASON_CODES.get(denial.reason, 422),
        f"{what} is forbidden: {message}",
        denial.reason,
        {
            "name": req.name,
            "group": req.group,
            "kind": req.resource,
            "causes": [{"message": message}],
        },
    )


def validate_policy(obj: Obj) -> list[tuple[str, str, str]]:
    """Create/update validation of a policy: expressions compile, required fields are set."""
    spec = obj.get("spec") or {}
    causes: list[tuple[str, str, str]] = []
    if not (spec.get("matchConstraints") or {}).get("resourceRules"):
        causes.append(
            ("spec.matchConstraints.resourceRules", "FieldValueRequired", "Required value")
        )
    if not spec.get("validations") and not spec.get("auditAnnotations"):
        causes.append(
            (
                "spec.validations",
                "FieldValueRequired",
                "Required value: validations or auditAnnotations must contain at least one item",
            )
        )
    policy = spec.get("failurePolicy")
    if policy is not None and policy not in ("Fail", "Ignore"):
        msg = f'Unsupported value: "{policy}": supported values: "Fail", "Ignore"'
        causes.append(("spec.failurePolicy", "FieldValueNotSupported", msg))
    for field, items in (
        ("spec.validations", spec.get("validations")),
        ("spec.matchConditions", spec.get("matchConditions")),
        ("spec.variables", spec.get("variables")),
    ):
        for i, item in enumerate(items or ()):
            expression = (item or {}).get("expression", "")
            problem = compile_errors(expression) if expression else "Required value"
            if problem:
                causes.append(
                    (
                        f"{field}[{i}].expression",
                        "FieldValueInvalid",
                        f"Invalid value: {expression!r}: {problem}",
                    )
                )
    return causes


def validate_binding(obj: Obj) -> list[tuple[str, str, str]]:
    spec = obj.get("spec") or {}
    causes: list[tuple[str, str, str]] = []
    if not spec.get("policyName"):
        causes.append(("spec.policyName", "FieldValueRequired", "Required value"))
    actions = spec.get("validationActions") or []
    if not actions:
        causes.append(("spec.validationActions", "FieldValueRequired", "Required value"))
    for i, action in enumerate(actions):
        if action not in ("Deny", "Warn", "Audit"):
            msg = f'Unsupported value: "{action}": supported values: "Audit", "Deny", "Warn"'
            causes.append((f"spec.validationActions[{i}]", "FieldValueNotSupported", msg))
    return causes
