"""Object validation for the SIMULATED Kubernetes API server.

Checks names (DNS subdomain / label / path segment), label keys and values, annotation keys and
the CRD spec (CSRs, Secrets and ConfigMaps have their own modules), producing 422 `Invalid`
errors with field causes shaped like the real kube-apiserver's. Used by `sim.k8s.api` on create,
update and patch.
"""

from __future__ import annotations

import re
from typing import Any

from sim.k8s.errors import ApiError, invalid
from sim.k8s.resources import ResourceType

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_PATH_SEGMENT_BAD = re.compile(r"[/%]")

_DNS_LABEL_KINDS = {"Namespace", "Service"}
# any name that is a valid path segment
_PATH_SEGMENT_KINDS = {
    "CertificateSigningRequest",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
}


def _key_errors(field: str, key: str) -> list[tuple[str, str, str]]:
    prefix, _, name = key.rpartition("/")
    errs = []
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        errs.append(
            (
                field,
                "FieldValueInvalid",
                f'Invalid value: "{key}": prefix part must be a DNS-1123 subdomain',
            )
        )
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        errs.append(
            (
                field,
                "FieldValueInvalid",
                f'Invalid value: "{key}": name part must consist of alphanumeric '
                "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                "character (max 63 characters)",
            )
        )
    return errs


def _name_errors(kind: str, name: str) -> list[tuple[str, str, str]]:
    if kind in _PATH_SEGMENT_KINDS:
        ok = name not in (".", "..") and not _PATH_SEGMENT_BAD.search(name)
        rule = "may not contain '/' or '%'"
    elif kind in _DNS_LABEL_KINDS:
        ok = len(name) <= 63 and bool(_DNS_LABEL.match(name))
        rule = (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
            "or '-', and must start and end with an alphanumeric character"
        )
    else:
        ok = len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))
        rule = (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    if ok:
        return []
    return [("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {rule}')]


def validate(
    rt: ResourceType, obj: dict[str, Any], schema_causes: list[tuple[str, str, str]] | None = None
) -> None:
    """Raise 422 Invalid if `obj` (already defaulted) is not acceptable for `rt`.

    `schema_causes`: a custom resource's schema violations (sim.k8s.custom), reported after
    the metadata ones in the same error, as kube-apiserver does.
    """
    meta = obj.get("metadata")
    name = meta.get("name", "") if isinstance(meta, dict) else ""
    if not isinstance(meta, dict):
        raise invalid(rt.kind, rt.group, "", [("metadata", "FieldValueRequired", "Required value")])
    errs: list[tuple[str, str, str]] = []
    if not name:
        errs.append(
            (
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            )
        )
    else:
        errs += _name_errors(rt.kind, name)
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        errs.append(("metadata.labels", "FieldValueInvalid", "must be a map"))
        labels = {}
    for k, v in labels.items():
        errs += _key_errors("metadata.labels", str(k))
        if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
            errs.append(
                (
                    "metadata.labels",
                    "FieldValueInvalid",
                    f'Invalid value: "{v}": a valid label must be an empty string or '
                    "consist of alphanumeric characters, '-', '_' or '.', and must start "
                    "and end with an alphanumeric character (max 63 characters)",
                )
            )
    annotations = meta.get("annotations") or {}
    for k, v in annotations.items() if isinstance(annotations, dict) else ():
        errs += _key_errors("metadata.annotations", str(k))
        if not isinstance(v, str):
            errs.append(("metadata.annotations", "FieldValueInvalid", "values must be strings"))
    if rt.kind == "CustomResourceDefinition":
        errs += _crd_errors(name, obj.get("spec") or {})
    errs += schema_causes or []
    if errs:
        raise invalid(rt.kind, rt.group, name, errs)


def _crd_errors(name: str, spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    names = spec.get("names") or {}
    errs = []
    for field in ("group", "versions"):
        if not spec.get(field):
            errs.append((f"spec.{field}", "FieldValueRequired", "Required value"))
    for field in ("plural", "kind"):
        if not names.get(field):
            errs.append((f"spec.names.{field}", "FieldValueRequired", "Required value"))
    if spec.get("group") and names.get("plural") and name != f"{names['plural']}.{spec['group']}":
        errs.append(
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errs.append(
            (
                "spec.scope",
                "FieldValueNotSupported",
                'Unsupported value: supported values: "Cluster", "Namespaced"',
            )
        )
    return errs


def check_type_meta(rt: ResourceType, obj: Any) -> None:
    """The body must be an object whose apiVersion/kind (if given) match the endpoint (400)."""
    if not isinstance(obj, dict):
        raise ApiError(400, "the body of the request must be a JSON object")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version is not None and api_version != rt.api_version:
        raise ApiError(
            400,
            f"the API version in the data ({api_version}) does not match the "
            f"expected API version ({rt.api_version})",
        )
    if kind is not None and kind != rt.kind:
        raise ApiError(
            400, f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
        )
    obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
    if not isinstance(obj.get("metadata", {}), dict):
        raise ApiError(400, "metadata must be an object")
    obj.setdefault("metadata", {})
