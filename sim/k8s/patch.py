"""PATCH semantics for the SIMULATED Kubernetes API server.

JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch, used by
`sim.k8s.handlers` for PATCH requests. Strategic merge follows Kubernetes: lists listed in a
resource type's `merge_keys` are merged by key (conditions by type, addresses by type,
containers by name, ownerReferences by uid, finalizers as a set); every other list — including
Node `spec.taints`, which Kubernetes declares atomic — is replaced whole. Supports
`$patch: delete|replace`, `$deleteFromPrimitiveList/<field>` and ignores `$setElementOrder/`.
"""

from __future__ import annotations

import copy
from typing import Any

from sim.k8s.errors import ApiError

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# -- JSON patch ----------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    cur = doc
    for p in parts[:-1]:
        try:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, f"doc is missing path: /{'/'.join(parts)}") from exc
    return cur, parts[-1]


def _get(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return doc
    parent, last = _parent(doc, parts)
    try:
        return parent[int(last)] if isinstance(parent, list) else parent[last]
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError(422, f"doc is missing path: /{'/'.join(parts)}") from exc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent, last = _parent(doc, parts)
    try:
        return parent.pop(int(last)) if isinstance(parent, list) else parent.pop(last)
    except (KeyError, IndexError, ValueError) as exc:
        raise ApiError(422, f"unable to remove nonexistent key: /{'/'.join(parts)}") from exc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        idx = len(parent) if last == "-" else int(last)
        if idx > len(parent):
            raise ApiError(422, f"index out of range: /{'/'.join(parts)}")
        parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, f"doc is missing path: /{'/'.join(parts)}")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise ApiError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _get(doc, parts)
            if not parts:
                doc = copy.deepcopy(op.get("value"))
            else:
                parent, last = _parent(doc, parts)
                parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(
                    op.get("value")
                )
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = _remove(doc, src) if kind == "move" else copy.deepcopy(_get(doc, src))
            doc = _add(doc, parts, value)
        elif kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise ApiError(422, f"testing value /{'/'.join(parts)} failed")
        else:
            raise ApiError(422, f"Unexpected kind: {kind}")
    return doc


# -- strategic merge patch -----------------------------------------------------------------
def strategic_merge(target: Any, patch: Any, merge_keys: dict[str, str], path: str = "") -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k == "$patch" or k == "$retainKeys":
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            drop = set(v or [])
            out[field] = [x for x in out.get(field) or [] if x not in drop]
            continue
        sub = f"{path}.{k}" if path else k
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and sub in merge_keys:
            out[k] = _merge_list(out.get(k) or [], v, merge_keys[sub], merge_keys, sub)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v, merge_keys, sub)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = copy.deepcopy(v)
    return out


def _merge_list(
    current: list[Any], patch: list[Any], key: str, merge_keys: dict[str, str], path: str
) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if key == "":  # a set of scalars
        out = list(current)
        for item in patch:
            if item not in out:
                out.append(item)
        return out
    out = [copy.deepcopy(c) for c in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise ApiError(422, f"map: {item!r} does not contain declared merge key: {key}")
        idx = next(
            (i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, item, merge_keys, path))
        else:
            out[idx] = strategic_merge(out[idx], item, merge_keys, path)
    return out


def apply(
    content_type: str,
    current: dict[str, Any],
    body: Any,
    *,
    custom: bool,
    merge_keys: dict[str, str],
) -> dict[str, Any]:
    """Apply a PATCH body of `content_type` to `current`; returns the new object."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == JSON_PATCH:
        result = json_patch(current, body)
    elif ctype == MERGE:
        if not isinstance(body, dict):
            raise ApiError(400, "merge patch body must be a JSON object")
        result = merge_patch(current, body)
    elif ctype == STRATEGIC and not custom:
        if not isinstance(body, dict):
            raise ApiError(400, "strategic merge patch body must be a JSON object")
        result = strategic_merge(current, body, merge_keys)
    else:
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media "
            f"types include: {JSON_PATCH}, {MERGE}" + ("" if custom else f", {STRATEGIC}"),
        )
    if not isinstance(result, dict):
        raise ApiError(422, "patch result is not an object")
    return result
