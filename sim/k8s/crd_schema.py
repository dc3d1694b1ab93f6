"""Structural-schema handling of custom resources in the SIMULATED Kubernetes API server.

What kube-apiserver does to a custom resource with a CRD's `openAPIV3Schema`
(k8s.io/apiextensions-apiserver `pkg/apiserver/schema/{pruning,defaulting,listtype}` and
`pkg/apiserver/validation`, kube-openapi `pkg/validation`), rewritten from their documented
behaviour:

- `prune`: drop fields the schema does not declare (unless `x-kubernetes-preserve-unknown-fields`),
  returning their paths (`spec.foo`, `spec.hosts[0].bar`) for `fieldValidation` Warn/Strict.
  At the root `apiVersion`, `kind` and `metadata` stay.
- `default`: fill `default`s of missing properties (and of `null` non-nullable ones), recursing
  into what was filled; then drop remaining non-nullable nulls.
- `validate`: type (incl. `x-kubernetes-int-or-string`, `nullable`), `enum`, `required`,
  `minimum`/`maximum` (exclusive too), `multipleOf`, `minLength`/`maxLength`, `pattern`,
  `minItems`/`maxItems`/`uniqueItems`, `minProperties`/`maxProperties`, simple `format`s, and
  `x-kubernetes-list-type` set/map uniqueness, as `(field, cause type, message)` triples with the
  real apiserver's wording (`spec.replicas: Invalid value: -1: spec.replicas in body should be
  greater than or equal to 0`).

Not modelled: `allOf`/`anyOf`/`oneOf`/`not`, CEL `x-kubernetes-validations`, validation
ratcheting, checking that a CRD's schema is itself structural. Used by `sim.k8s.custom`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import ipaddress
import json
import re
import uuid
from typing import Any

Schema = dict[str, Any]
Cause = tuple[str, str, str]  # (field, cause type, message body)

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


# -- pruning --------------------------------------------------------------------------------
def prune(obj: dict[str, Any], schema: Schema) -> list[str]:
    """Drop undeclared fields from the resource `obj` in place; returns their paths."""
    dropped: list[str] = []
    _prune(obj, schema, "", dropped, root=True)
    return dropped


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(value: Any, schema: Schema, path: str, dropped: list[str], root: bool = False) -> None:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            if (root or embedded) and key in _ROOT_KEEP:
                continue
            if key in props:
                _prune(value[key], props[key], _join(path, key), dropped)
            elif isinstance(extra, dict):
                _prune(value[key], extra, _join(path, key), dropped)
            elif not preserve and extra is not True:
                del value[key]
                dropped.append(_join(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _prune(item, schema["items"], f"{path}[{i}]", dropped)


# -- defaulting -----------------------------------------------------------------------------
def default(obj: dict[str, Any], schema: Schema) -> None:
    """Apply the schema's defaults to `obj` in place (and drop non-nullable nulls)."""
    _default(obj, schema)
    _drop_nulls(obj, schema)


def _default(value: Any, schema: Schema) -> None:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, prop in props.items():
            if "default" not in prop:
                continue
            if key not in value or (value[key] is None and not prop.get("nullable")):
                value[key] = copy.deepcopy(prop["default"])
        for key, item in value.items():
            if key in props:
                _default(item, props[key])
            elif isinstance(schema.get("additionalProperties"), dict):
                _default(item, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(item, schema["items"])


def _drop_nulls(value: Any, schema: Schema) -> None:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(value):
            sub = props.get(key) or (extra if isinstance(extra, dict) else None)
            if sub is None:
                continue
            if value[key] is None and not sub.get("nullable") and "default" not in sub:
                del value[key]
            else:
                _drop_nulls(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _drop_nulls(item, schema["items"])


# -- Go-style value printing (apimachinery field.Error.ErrorBody) ---------------------------
def go_value(value: Any) -> str:
    """How `field.Error` prints a bad value: %q strings, %v scalars, %#v the rest."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return go_syntax(value)


def _go_float(x: float) -> str:
    if x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    text = repr(x)
    return text.replace("e+0", "e+").replace("e-0", "e-")


def go_syntax(value: Any) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)}:{go_syntax(v)}" for k, v in sorted(value.items()))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_syntax(v) for v in value) + "}"
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}"
    if isinstance(value, float):
        return _go_float(value)
    return json.dumps(value, ensure_ascii=False)


# -- validation -----------------------------------------------------------------------------
def validate(obj: dict[str, Any], schema: Schema) -> list[Cause]:
    """Every schema violation of `obj`, in the apiserver's words."""
    causes: list[Cause] = []
    _validate(obj, schema, "", causes)
    return causes


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _allowed_types(schema: Schema) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    return [schema["type"]] if schema.get("type") else []


def _type_ok(value: Any, allowed: list[str]) -> bool:
    actual = json_type(value)
    if actual in allowed:
        return True
    if actual == "integer" and "number" in allowed:
        return True
    return actual == "number" and "integer" in allowed and float(value).is_integer()


def _in_body(path: str, text: str) -> str:
    return f"{path} in body {text}"


def _validate(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    allowed = _allowed_types(schema)
    if value is None:
        if allowed and not schema.get("nullable"):
            detail = _in_body(path, f'must be of type {",".join(allowed)}: "null"')
            out.append((path, "FieldValueTypeInvalid", f'Invalid value: "null": {detail}'))
        return
    if allowed and not _type_ok(value, allowed):
        actual = json_type(value)
        detail = _in_body(path, f'must be of type {",".join(allowed)}: "{actual}"')
        out.append((path, "FieldValueTypeInvalid", f'Invalid value: "{actual}": {detail}'))
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(
            json.dumps(v if isinstance(v, str) else json.dumps(v)) for v in schema["enum"]
        )
        out.append(
            (
                path,
                "FieldValueNotSupported",
                f"Unsupported value: {go_value(value)}: supported values: {supported}",
            )
        )
    if isinstance(value, str):
        _validate_string(value, schema, path, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, schema, path, out)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, out)
    elif isinstance(value, list):
        _validate_array(value, schema, path, out)


def _invalid(path: str, value: Any, text: str) -> Cause:
    return (path, "FieldValueInvalid", f"Invalid value: {go_value(value)}: {_in_body(path, text)}")


def _validate_string(value: str, schema: Schema, path: str, out: list[Cause]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        limit = schema["maxLength"]
        out.append((path, "FieldValueTooLong", f"Too long: may not be longer than {limit}"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        out.append(_invalid(path, value, f"should be at least {schema['minLength']} chars long"))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        out.append(_invalid(path, value, f"should match '{schema['pattern']}'"))
    fmt = schema.get("format")
    if fmt and fmt in _FORMATS and not _FORMATS[fmt](value):
        detail = _in_body(path, f"must be of type {fmt}: {json.dumps(value)}")
        out.append((path, "FieldValueTypeInvalid", f"Invalid value: {go_value(value)}: {detail}"))


def _validate_number(value: float, schema: Schema, path: str, out: list[Cause]) -> None:
    if "multipleOf" in schema:
        factor = schema["multipleOf"]
        if factor and (value / factor) != int(value / factor):
            out.append(_invalid(path, value, f"should be a multiple of {_num(factor)}"))
    if "maximum" in schema:
        top, exclusive = schema["maximum"], bool(schema.get("exclusiveMaximum"))
        if value > top or (exclusive and value == top):
            word = "less than" if exclusive else "less than or equal to"
            out.append(_invalid(path, value, f"should be {word} {_num(top)}"))
    if "minimum" in schema:
        bottom, exclusive = schema["minimum"], bool(schema.get("exclusiveMinimum"))
        if value < bottom or (exclusive and value == bottom):
            word = "greater than" if exclusive else "greater than or equal to"
            out.append(_invalid(path, value, f"should be {word} {_num(bottom)}"))


def _num(x: float) -> str:
    return _go_float(float(x)) if isinstance(x, float) else str(x)


def _validate_object(value: dict[str, Any], schema: Schema, path: str, out: list[Cause]) -> None:
    for key in schema.get("required") or ():
        if key not in value:
            out.append((_join(path, key), "FieldValueRequired", "Required value"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        out.append(
            (
                path,
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
            )
        )
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        out.append(
            _invalid(path, len(value), f"should have at least {schema['minProperties']} properties")
        )
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in props:
            _validate(item, props[key], _join(path, key), out)
        elif isinstance(extra, dict):
            _validate(item, extra, _join(path, key), out)


def _validate_array(value: list[Any], schema: Schema, path: str, out: list[Cause]) -> None:
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", out)
    if "minItems" in schema and len(value) < schema["minItems"]:
        out.append(_invalid(path, len(value), f"should have at least {schema['minItems']} items"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        out.append(
            (
                path,
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
            )
        )
    if schema.get("uniqueItems") and _has_duplicates(value):
        detail = _in_body(path, "shouldn't contain duplicates")
        out.append((path, "FieldValueInvalid", f'Invalid value: "": {detail}'))
    _validate_list_type(value, schema, path, out)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _has_duplicates(value: list[Any]) -> bool:
    seen = [_canonical(v) for v in value]
    return len(set(seen)) != len(seen)


def _validate_list_type(value: list[Any], schema: Schema, path: str, out: list[Cause]) -> None:
    kind = schema.get("x-kubernetes-list-type")
    seen: set[str] = set()
    for i, item in enumerate(value):
        if kind == "set":
            key: Any = item
        elif kind == "map" and isinstance(item, dict):
            key = {k: item.get(k) for k in schema.get("x-kubernetes-list-map-keys") or ()}
        else:
            return
        text = _canonical(key)
        if text in seen:
            shown = go_value(key) if kind == "set" else go_syntax(key)
            out.append((f"{path}[{i}]", "FieldValueDuplicate", f"Duplicate value: {shown}"))
        seen.add(text)


# -- string formats (the simple ones of kube-openapi's strfmt registry) ---------------------
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$"
)


def _date_time(text: str) -> bool:
    if not _RFC3339.match(text):
        return False
    try:
        datetime.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def _ip(version: int) -> Any:
    def check(text: str) -> bool:
        try:
            return ipaddress.ip_address(text).version == version
        except ValueError:
            return False

    return check


def _cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


_FORMATS = {
    "date-time": _date_time,
    "datetime": _date_time,
    "date": _date,
    "byte": _byte,
    "uuid": _uuid,
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "cidr": _cidr,
    "hostname": lambda t: bool(_HOSTNAME.match(t)),
}
