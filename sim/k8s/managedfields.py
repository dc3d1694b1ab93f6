"""Field ownership (`metadata.managedFields`) in the SIMULATED Kubernetes API server.

A field set is a set of paths; a path is a tuple of fieldsV1 keys (`f:data`, `k:{"type":"Ready"}`
for an item of a list keyed by `type`, `v:"x"` for an item of a set, as structured-merge-diff
writes them). `fields_of` lists an object's owned paths (leaves, list items, atomic lists), with
kube-apiserver's never-managed metadata stripped; `encode`/`decode` convert to and from fieldsV1.
List types come from the resource type's strategic-merge keys (`ResourceType.merge_keys`,
"" = set): keyed lists are maps, other lists are atomic, as SMD derives them from OpenAPI.

`track_update` records a non-apply write (create, update, merge/strategic/JSON patch) as the
real field manager does: the writer (operation Update, per apiVersion and subresource) takes
every field it added or changed from everyone, removed fields leave every set, the entry's time
moves only when the writer took fields, entries are sorted (operation, time, manager). A request
may replace managedFields directly; `[{}]` clears them. Server-side apply is `sim.k8s.apply`.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from sim.k8s.resources import ResourceType
from sim.k8s.store import Obj

Path = tuple[str, ...]
ITEM = object()  # the value recorded for a list-item path (the item itself is a member)
MAP = object()  # the value recorded for a map field a write created (Update entries own it)
# Fields typed as maps (map[string]...): a write that creates one owns the map itself too.
_MAP_FIELDS = {
    "metadata.labels",
    "metadata.annotations",
    "data",
    "binaryData",
    "spec.nodeSelector",
    "status.capacity",
    "status.allocatable",
}
_STRIPPED = {
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata", "f:name"),
    ("f:metadata", "f:namespace"),
    ("f:metadata", "f:creationTimestamp"),
    ("f:metadata", "f:selfLink"),
    ("f:metadata", "f:uid"),
    ("f:metadata", "f:generation"),
    ("f:metadata", "f:managedFields"),
    ("f:metadata", "f:resourceVersion"),
}
MAX_UPDATE_MANAGERS = 10


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_type(rt: ResourceType, schema_path: str) -> str | None:
    """The key of a keyed list, "" for a set, None for an atomic list."""
    return rt.merge_keys.get(schema_path)


def _key_element(key: str, item: Any) -> str:
    return "k:" + json.dumps({key: item[key]}, separators=(",", ":"))


def _walk(rt: ResourceType, value: Any, path: Path, schema: str, out: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value:
        if schema in _MAP_FIELDS and not rt.custom:
            out[path] = MAP
        for k, v in value.items():
            if v is not None:
                _walk(rt, v, (*path, f"f:{k}"), f"{schema}.{k}" if schema else k, out)
        return
    if isinstance(value, list) and value:
        key = list_type(rt, schema)
        if key and all(isinstance(i, dict) and key in i for i in value):
            for item in value:
                item_path = (*path, _key_element(key, item))
                out[item_path] = ITEM
                for k, v in item.items():
                    if v is not None:
                        _walk(rt, v, (*item_path, f"f:{k}"), f"{schema}.{k}", out)
            return
        if key == "" and all(not isinstance(i, (dict, list)) for i in value):
            for item in value:
                out[(*path, "v:" + json.dumps(item))] = ITEM
            return
    out[path] = value


def fields_of(rt: ResourceType, obj: Obj, sub: str = "", maps: bool = True) -> dict[Path, Any]:
    """path -> value for every field of `obj` a manager can own (through subresource `sub`);
    `maps=False` leaves out the map fields themselves, as an applied configuration's set does."""
    out: dict[Path, Any] = {}
    _walk(rt, obj, (), "", out)
    if not maps:
        out = {p: v for p, v in out.items() if v is not MAP}
    for p in _STRIPPED:
        out.pop(p, None)
    out.pop(("f:metadata",), None)
    if sub in ("status", "approval"):  # a status writer owns only what it may change
        return {p: v for p, v in out.items() if p[:1] == ("f:status",)}
    if rt.has_status or rt.kind == "CertificateSigningRequest":
        return {p: v for p, v in out.items() if p[:1] != ("f:status",)}
    return out


def encode(paths: set[Path]) -> Obj:
    """fieldsV1 for a set of paths (`.` marks a member that also has children)."""
    root: Obj = {}
    for path in sorted(paths):
        node = root
        for el in path:
            node = node.setdefault(el, {})
        node.setdefault("", True)  # member marker, rewritten below
    return _finish(root)


def _finish(node: Obj) -> Obj:
    member = node.pop("", False)
    out = {k: _finish(v) for k, v in sorted(node.items())}
    if member and out:
        out = {".": {}, **out}
    return out


def decode(fields: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(fields, dict):
        return out
    for k, v in fields.items():
        if k == ".":
            out.add(prefix)
        elif isinstance(v, dict) and v:
            out |= decode(v, (*prefix, k))
        else:
            out.add((*prefix, k))
    return out


def path_string(path: Path) -> str:
    """`.metadata.labels.x`, `.status.conditions[type="Ready"]`, `.metadata.finalizers[="f"]`."""
    parts = []
    for el in path:
        kind, _, rest = el.partition(":")
        if kind == "f":
            parts.append("." + rest)
        elif kind == "k":
            keys = json.loads(rest)
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]")
        else:
            parts.append(f"[={rest}]")
    return "".join(parts)


@dataclass
class Entry:
    manager: str
    operation: str  # Apply | Update
    api_version: str
    subresource: str
    time: str
    fields: set[Path]

    @property
    def key(self) -> tuple[str, str, str, str]:
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def describe(self) -> str:
        """How a conflict names this manager (`printManager`)."""
        if self.operation == "Update":
            return f'"{self.manager}" using {self.api_version}'
        return f'"{self.manager}"'

    def to_json(self) -> Obj:
        out: Obj = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode(self.fields),
        }
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def entries_of(managed: Any) -> list[Entry]:
    out = []
    for m in managed if isinstance(managed, list) else []:
        if isinstance(m, dict) and m.get("manager") is not None:
            out.append(
                Entry(
                    str(m.get("manager")),
                    str(m.get("operation", "Update")),
                    str(m.get("apiVersion", "")),
                    str(m.get("subresource", "")),
                    str(m.get("time", "")),
                    decode(m.get("fieldsV1")),
                )
            )
    return out


def to_json(entries: list[Entry]) -> list[Obj]:
    kept = [e for e in entries if e.fields]
    updates = sorted((e for e in kept if e.operation == "Update"), key=lambda e: e.time)
    if len(updates) > MAX_UPDATE_MANAGERS:  # capManagers: fold the oldest into one entry
        old = updates[: len(updates) - MAX_UPDATE_MANAGERS + 1]
        folded = Entry("ancient-changes", "Update", old[-1].api_version, "", old[-1].time, set())
        for e in old:
            folded.fields |= e.fields
            kept.remove(e)
        kept.append(folded)
    kept.sort(key=lambda e: (e.operation, e.time, e.manager, e.api_version, e.subresource))
    return [e.to_json() for e in kept]


def base_entries(old: Obj | None, new: Obj) -> list[Entry]:
    """The entries a write starts from: the request's own when it sets them, else the live ones."""
    sent = (new.get("metadata") or {}).get("managedFields")
    if isinstance(sent, list) and sent == [{}]:
        return []
    given = entries_of(sent)
    if given and any(e.fields for e in given):
        return given
    return entries_of(((old or {}).get("metadata") or {}).get("managedFields"))


def compare(old: dict[Path, Any], new: dict[Path, Any]) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) between two field maps."""
    markers = (ITEM, MAP)
    changed = {p for p, v in new.items() if p not in old or (v not in markers and old[p] != v)}
    return changed, set(old) - set(new)


def track_update(
    rt: ResourceType, sub: str, old: Obj | None, new: Obj, manager: str, entries: list[Entry]
) -> list[Obj]:
    """managedFields after `manager` wrote `new` over `old` without apply."""
    before = fields_of(rt, old, sub) if old is not None else {}
    changed, removed = compare(before, fields_of(rt, new, sub))
    mine = Entry(manager, "Update", rt.api_version, sub, "", set())
    kept = []
    for e in entries:
        e.fields = e.fields - changed - removed
        if e.key == mine.key:
            mine = e
        else:
            kept.append(e)
    if changed:
        mine.fields |= changed
        mine.time = now_iso()
    return to_json([*kept, mine])
