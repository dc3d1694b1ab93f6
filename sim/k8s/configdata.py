"""Secret and ConfigMap rules of the SIMULATED Kubernetes API server.

As kube-apiserver (v1 conversion, `pkg/registry/core/secret`, `pkg/apis/core/validation`):
- Secret `stringData` is merged into `data` (base64, stringData wins) on every write and never
  stored or returned; `type` defaults to Opaque and cannot change; the built-in types require
  their keys (tls.crt/tls.key, ssh-privatekey, username or password, .dockerconfigjson, ...);
- `data` of a Secret and `binaryData` of a ConfigMap must be base64 (else 400, as the JSON
  decoder answers); keys must match `[-._a-zA-Z0-9]+`; a ConfigMap key may not be in both
  `data` and `binaryData`; the whole payload is at most 1 MiB;
- an object with `immutable: true` refuses changes to data/binaryData/immutable (422 Forbidden
  "field is immutable when `immutable` is set"); its metadata may still change.
Used by `sim.k8s.api` (decode on every write, validation on create and update).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from sim.k8s.errors import ApiError
from sim.k8s.store import Obj

Cause = tuple[str, str, str]
MAX_SIZE = 1024 * 1024
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_REQUIRED_KEYS = {
    "kubernetes.io/tls": (("tls.crt", "tls.key"), True),
    "kubernetes.io/ssh-auth": (("ssh-privatekey",), True),
    "kubernetes.io/basic-auth": (("username", "password"), False),
    "kubernetes.io/dockercfg": ((".dockercfg",), True),
    "kubernetes.io/dockerconfigjson": ((".dockerconfigjson",), True),
}
_IMMUTABLE = "Forbidden: field is immutable when `immutable` is set"


def _bad_base64_at(text: str) -> int | None:
    """Where Go's base64 decoder would stop on `text`, or None if it decodes."""
    try:
        base64.b64decode(text, validate=True)
        return None
    except (binascii.Error, ValueError):
        for i, ch in enumerate(text):
            if not (ch.isalnum() and ch.isascii()) and ch not in "+/=":
                return i
        return len(text.rstrip("=")) // 4 * 4


def decode(kind: str, obj: Obj) -> None:
    """Turn a request body into what the server stores (400 on undecodable bytes)."""
    fields = {"Secret": ("data",), "ConfigMap": ("binaryData",)}.get(kind)
    if fields is None:
        return
    for name in fields:
        values = obj.get(name)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ApiError(
                400, f'{kind} in version "v1" cannot be handled as a {kind}: {name} must be a map'
            )
        for value in values.values():
            at = _bad_base64_at(value) if isinstance(value, str) else 0
            if at is not None:
                raise ApiError(
                    400,
                    f'{kind} in version "v1" cannot be handled as a {kind}: '
                    f"illegal base64 data at input byte {at}",
                )
    if kind == "Secret":
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict) and string_data:
            data = obj.get("data") or {}
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            obj["data"] = data
        obj.setdefault("type", "Opaque")


def _key_causes(field: str, keys: Any) -> list[Cause]:
    causes = []
    for key in keys:
        path = f"{field}[{key}]"
        if not _KEY.match(key):
            causes.append(
                (
                    path,
                    "FieldValueInvalid",
                    f'Invalid value: "{key}": a valid config key must consist of alphanumeric '
                    "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                    "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                )
            )
        elif key in (".", "..") or key.startswith(".."):
            causes.append(
                (path, "FieldValueInvalid", f"Invalid value: \"{key}\": must not start with '..'")
            )
        if len(key) > 253:
            causes.append(
                (
                    path,
                    "FieldValueInvalid",
                    f'Invalid value: "{key}": must be no more than 253 characters',
                )
            )
    return causes


def _size(values: dict[str, Any] | None, encoded: bool) -> int:
    if not values:
        return 0
    return sum(len(base64.b64decode(v)) if encoded else len(v.encode()) for v in values.values())


def validate(kind: str, obj: Obj) -> list[Cause]:
    if kind == "Secret":
        data = obj.get("data") or {}
        causes = _key_causes("data", data)
        required, all_needed = _REQUIRED_KEYS.get(obj.get("type", "Opaque"), ((), True))
        missing = [k for k in required if k not in data]
        if missing and (all_needed or len(missing) == len(required)):
            causes += [(f"data[{k}]", "FieldValueRequired", "Required value") for k in missing]
        if obj.get("type") == "kubernetes.io/service-account-token":
            annotations = obj["metadata"].get("annotations") or {}
            if not annotations.get("kubernetes.io/service-account.name"):
                field = "metadata.annotations[kubernetes.io/service-account.name]"
                causes.append((field, "FieldValueRequired", "Required value"))
        if _size(data, True) > MAX_SIZE:
            causes.append(
                ("data", "FieldValueTooLong", f"Too long: must have at most {MAX_SIZE} bytes")
            )
        return causes
    if kind != "ConfigMap":
        return []
    data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
    causes = _key_causes("data", data) + _key_causes("binaryData", binary)
    for key in data:
        if key in binary:
            msg = f'Invalid value: "{key}": duplicate of key present in binaryData'
            causes.append((f"data[{key}]", "FieldValueInvalid", msg))
    for key in binary:
        if key in data:
            msg = f'Invalid value: "{key}": duplicate of key present in data'
            causes.append((f"binaryData[{key}]", "FieldValueInvalid", msg))
    if _size(data, False) + _size(binary, True) > MAX_SIZE:
        causes.append(("", "FieldValueTooLong", f"Too long: must have at most {MAX_SIZE} bytes"))
    return causes


def validate_update(kind: str, old: Obj, new: Obj) -> list[Cause]:
    causes: list[Cause] = []
    if kind == "Secret" and new.get("type") != old.get("type"):
        msg = f'Invalid value: "{new.get("type")}": field is immutable'
        causes.append(("type", "FieldValueInvalid", msg))
    if kind not in ("Secret", "ConfigMap") or old.get("immutable") is not True:
        return causes
    if new.get("immutable") is not True:
        causes.append(("immutable", "FieldValueForbidden", _IMMUTABLE))
    for field in ("data", "binaryData") if kind == "ConfigMap" else ("data",):
        if (new.get(field) or {}) != (old.get(field) or {}):
            causes.append((field, "FieldValueForbidden", _IMMUTABLE))
    return causes
