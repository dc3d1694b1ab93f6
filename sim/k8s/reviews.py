"""Access and identity reviews of the SIMULATED Kubernetes API server (never stored).

- authorization.k8s.io/v1 SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview
  and LocalSubjectAccessReview: the authorizer's answer for resource or non-resource attributes,
  with the RBAC reason;
- SelfSubjectRulesReview (`kubectl auth can-i --list`): the RBAC rules that apply in a
  namespace (incomplete for kubelets, whose Node authorizer cannot list its rules);
- authentication.k8s.io/v1 SelfSubjectReview (`kubectl auth whoami`) and TokenReview.
Each answers 201 with the request's spec and a status, as kube-apiserver does. Used by
`sim.k8s.handlers` for POSTs to those resources.
"""

from __future__ import annotations

import copy
from typing import Any

from sim.k8s.auth import Authenticator, Identity
from sim.k8s.authz import Authorizer
from sim.k8s.errors import invalid
from sim.k8s.rbac import Attributes
from sim.k8s.store import Obj

AUTHZ = "authorization.k8s.io"
AUTHN = "authentication.k8s.io"
REVIEW_KINDS = {
    "selfsubjectaccessreviews": "SelfSubjectAccessReview",
    "subjectaccessreviews": "SubjectAccessReview",
    "localsubjectaccessreviews": "LocalSubjectAccessReview",
    "selfsubjectrulesreviews": "SelfSubjectRulesReview",
    "selfsubjectreviews": "SelfSubjectReview",
    "tokenreviews": "TokenReview",
}


def _user_info(who: Identity) -> Obj:
    info: Obj = {"username": who.user, "groups": list(who.groups)}
    if who.uid:
        info["uid"] = who.uid
    if who.extra:
        info["extra"] = who.extra
    return info


def _attributes(kind: str, spec: Obj, who: Identity, ns: str) -> Attributes:
    res: Obj = spec.get("resourceAttributes") or {}
    non: Obj = spec.get("nonResourceAttributes") or {}
    if bool(res) == bool(non):
        raise invalid(
            kind,
            AUTHZ,
            "",
            [
                (
                    "spec.resourceAttributes",
                    "FieldValueInvalid",
                    f"Invalid value: {'null' if not res else 'object'}: exactly one of "
                    "nonResourceAttributes or resourceAttributes must be specified",
                )
            ],
        )
    if non:
        return Attributes(
            who, non.get("verb", ""), path=non.get("path", ""), resource_request=False
        )
    res_ns = res.get("namespace", "")
    if kind == "LocalSubjectAccessReview" and res_ns != ns:
        raise invalid(
            kind,
            AUTHZ,
            "",
            [
                (
                    "spec.resourceAttributes.namespace",
                    "FieldValueInvalid",
                    f'Invalid value: "{res_ns}": must match metadata.namespace',
                )
            ],
        )
    return Attributes(
        who,
        res.get("verb", ""),
        res.get("group", ""),
        res.get("resource", ""),
        res.get("subresource", ""),
        res.get("name", ""),
        res_ns,
    )


def _subject(kind: str, spec: Obj) -> Identity:
    user, groups = spec.get("user") or "", tuple(spec.get("groups") or ())
    if not user and not groups:
        raise invalid(
            kind,
            AUTHZ,
            "",
            [
                (
                    "spec.user",
                    "FieldValueInvalid",
                    'Invalid value: "": at least one of user or group must be specified',
                )
            ],
        )
    return Identity(user, groups, spec.get("uid") or "", dict(spec.get("extra") or {}))


def review(
    plural: str, ns: str, body: Any, who: Identity, authz: Authorizer, authn: Authenticator
) -> Obj:
    """The answered review for a POST of `body` to `plural` by `who`."""
    kind = REVIEW_KINDS[plural]
    body = copy.deepcopy(body) if isinstance(body, dict) else {}
    spec: Obj = body.get("spec") or {}
    meta: Obj = {"creationTimestamp": None, **({"namespace": ns} if ns else {})}
    group = AUTHN if plural in ("selfsubjectreviews", "tokenreviews") else AUTHZ
    out: Obj = {"kind": kind, "apiVersion": f"{group}/v1", "metadata": meta}
    if plural == "selfsubjectreviews":
        out["status"] = {"userInfo": _user_info(who)}
        return out
    out["spec"] = spec
    if plural == "tokenreviews":
        found = authn.authenticate_token(spec.get("token") or "")
        out["status"] = (
            {"authenticated": True, "user": _user_info(found)}
            if found
            else {"authenticated": False}
        )
        return out
    if plural == "selfsubjectrulesreviews":
        out["status"] = _rules(authz, who, spec.get("namespace") or "")
        return out
    subject = who if plural == "selfsubjectaccessreviews" else _subject(kind, spec)
    allowed, reason = authz.authorize(_attributes(kind, spec, subject, ns))
    status: Obj = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    out["status"] = status
    return out


def _rules(authz: Authorizer, who: Identity, ns: str) -> Obj:
    rules, errors = authz.rbac.rules_for(who, ns)
    resource_rules, non_resource_rules = [], []
    for r in rules:
        if r.get("nonResourceURLs"):
            non_resource_rules.append(
                {"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
            )
        else:
            keep = ("verbs", "apiGroups", "resources", "resourceNames")
            resource_rules.append({k: r[k] for k in keep if k in r})
    status: Obj = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": bool(errors) or who.node_name is not None,
    }
    if who.node_name is not None:
        errors = ["node authorizer does not support user rule resolution", *errors]
    if errors:
        status["evaluationError"] = ", ".join(errors)
    return status
