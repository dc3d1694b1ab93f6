"""Server-side apply in the SIMULATED Kubernetes API server (`application/apply-patch+yaml`).

`apply()` does what structured-merge-diff's `Updater.Apply` does for kube-apiserver:
1. merge the applied configuration into the live object (maps by key, keyed lists by their key,
   sets as sets, everything else replaced);
2. the manager's Apply entry becomes exactly the applied field set; fields it applied last time,
   left out now and owned by no one else are removed from the object;
3. every field the result adds or changes that another manager owns is a conflict: without
   `force` the request fails with 409 Conflict (causes name each field and manager, message as
   the real one), with `force` the other managers lose those fields.
Fields the result removes leave every manager's set. Used by `sim.k8s.api` for PATCH requests
with the apply content type (create-on-apply included).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from sim.k8s.errors import ApiError
from sim.k8s.managedfields import (
    Entry,
    Path,
    compare,
    fields_of,
    list_type,
    now_iso,
    path_string,
    to_json,
)
from sim.k8s.resources import ResourceType
from sim.k8s.store import Obj


def _merge(rt: ResourceType, live: Any, cfg: Any, schema: str) -> Any:
    if isinstance(live, dict) and isinstance(cfg, dict):
        out = dict(live)
        for k, v in cfg.items():
            if v is not None:
                out[k] = _merge(rt, live.get(k), v, f"{schema}.{k}" if schema else k)
        return out
    if isinstance(live, list) and isinstance(cfg, list):
        key = list_type(rt, schema)
        if key and all(isinstance(i, dict) and key in i for i in live + cfg):
            out_list = [copy.deepcopy(i) for i in live]
            for item in cfg:
                idx = next((n for n, i in enumerate(out_list) if i[key] == item[key]), None)
                if idx is None:
                    out_list.append(copy.deepcopy(item))
                else:
                    out_list[idx] = _merge(rt, out_list[idx], item, schema)
            return out_list
        if key == "":
            return [*live, *(i for i in cfg if i not in live)]
    return copy.deepcopy(cfg)


def _remove(obj: Any, path: Path, prune_empty: bool) -> None:
    """Remove the field or list item at `path` (missing paths are ignored)."""
    parents: list[tuple[Any, Any]] = []
    node = obj
    for el in path:
        kind, _, rest = el.partition(":")
        if isinstance(node, dict) and kind == "f" and rest in node:
            parents.append((node, rest))
            node = node[rest]
        elif isinstance(node, list) and kind in ("k", "v"):
            want = json.loads(rest)
            idx = next(
                (
                    n
                    for n, i in enumerate(node)
                    if (kind == "v" and i == want)
                    or (
                        kind == "k"
                        and isinstance(i, dict)
                        and all(i.get(k) == v for k, v in want.items())
                    )
                ),
                None,
            )
            if idx is None:
                return
            parents.append((node, idx))
            node = node[idx]
        else:
            return
    container, where = parents[-1]
    del container[where]
    if prune_empty:  # built-in types serialise an emptied map as absent (omitempty)
        for container, where in reversed(parents[:-1]):
            if isinstance(container[where], dict) and not container[where]:
                del container[where]


def conflict_error(conflicts: list[tuple[Entry, Path]]) -> ApiError:
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {e.describe()}",
            "field": path_string(p),
        }
        for e, p in conflicts
    ]
    if len(conflicts) == 1:
        e, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {e.describe()}: {path_string(p)}"
    else:
        lines: list[str] = []
        for who in sorted({e.describe() for e, _ in conflicts}):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {path_string(p)}" for e, p in conflicts if e.describe() == who]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, message, "Conflict", {"causes": causes})


def apply(
    rt: ResourceType,
    live: Obj | None,
    config: Obj,
    entries: list[Entry],
    manager: str,
    force: bool,
    sub: str = "",
) -> tuple[Obj, list[Obj]]:
    """(the object after applying `config` as `manager`, its new managedFields)."""
    base = copy.deepcopy(live) if live is not None else {}
    merged = _merge(rt, base, config, "")
    applied = set(fields_of(rt, config, sub, maps=False))
    mine = Entry(manager, "Apply", rt.api_version, sub, "", set())
    others = []
    for e in entries:
        if e.key == mine.key:
            mine = e
        else:
            others.append(e)
    last = mine.fields
    mine.fields, mine.api_version = applied, rt.api_version
    owned = set().union(applied, *(e.fields for e in others))
    for path in sorted(last - owned, key=len, reverse=True):
        _remove(merged, path, prune_empty=not rt.custom)
    before = fields_of(rt, live, sub) if live is not None else {}
    changed, removed = compare(before, fields_of(rt, merged, sub))
    conflicts = [(e, p) for e in others for p in sorted(e.fields & changed)]
    if conflicts and not force:
        raise conflict_error(conflicts)
    for e in others:
        e.fields = e.fields - changed - removed
    if changed or removed or live is None or not mine.time:
        mine.time = now_iso()
    return merged, to_json([*others, mine])
