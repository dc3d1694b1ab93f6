"""Custom resources as kube-apiserver serves them, for the SIMULATED Kubernetes API server.

A CRD version becomes a `CustomVersion`: its structural schema, its `additionalPrinterColumns`
and its scale subresource paths. `sim.k8s.api` calls in here on every write of a custom
resource (`decode`: prune per `fieldValidation` and default; `schema_causes`: validate), for the
scale subresource (`scale_of`, `apply_scale`) and when a CRD changes (`Store` objects are pruned
and defaulted again, as reads from etcd would be); `sim.k8s.tables` renders the printer columns
(`table_columns`, `table_cells`) and the Scale table. Schema rules themselves are in
`sim.k8s.crd_schema`.
"""

from __future__ import annotations

import copy
import datetime
import re
from dataclasses import dataclass
from typing import Any

from sim.k8s import crd_schema
from sim.k8s.errors import ApiError, invalid

Obj = dict[str, Any]
FIELD_VALIDATION = ("Ignore", "Warn", "Strict")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    json_path: str
    format: str = ""
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ScalePaths:
    spec_replicas: str  # ".spec.replicas"
    status_replicas: str
    label_selector: str = ""


@dataclass(frozen=True)
class CustomVersion:
    """What one served version of a CRD tells the server about its objects."""

    kind: str
    version: str
    schema: crd_schema.Schema | None
    columns: tuple[Column, ...] = ()
    scale: ScalePaths | None = None


def from_crd_version(kind: str, v: Obj) -> CustomVersion:
    schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or None
    columns = tuple(
        Column(
            name=c["name"],
            type=c.get("type", "string"),
            json_path=c.get("jsonPath", ""),
            format=c.get("format", ""),
            description=c.get("description", ""),
            priority=int(c.get("priority", 0)),
        )
        for c in v.get("additionalPrinterColumns") or ()
    )
    scale_doc = (v.get("subresources") or {}).get("scale")
    scale = None
    if isinstance(scale_doc, dict):
        scale = ScalePaths(
            scale_doc.get("specReplicasPath", ""),
            scale_doc.get("statusReplicasPath", ""),
            scale_doc.get("labelSelectorPath", ""),
        )
    return CustomVersion(kind, v["name"], schema, columns, scale)


# -- writes -------------------------------------------------------------------------------
def decode(cv: CustomVersion, obj: Obj, field_validation: str, warnings: list[str]) -> None:
    """What decoding a request body does: prune unknown fields (per `fieldValidation`), default."""
    if cv.schema is None:
        return
    if field_validation and field_validation not in FIELD_VALIDATION:
        raise ApiError(
            400,
            f"fieldValidation must be one of {', '.join(FIELD_VALIDATION)}, "
            f"got {field_validation!r}",
        )
    dropped = crd_schema.prune(obj, cv.schema)
    unknown = [f'unknown field "{path}"' for path in dropped]
    if unknown and field_validation == "Strict":
        raise ApiError(
            400,
            f'{cv.kind} in version "{cv.version}" cannot be handled as a {cv.kind}: '
            f"strict decoding error: {', '.join(unknown)}",
        )
    if field_validation in ("", "Warn"):
        warnings.extend(unknown)
    crd_schema.default(obj, cv.schema)


def schema_causes(cv: CustomVersion, obj: Obj) -> list[crd_schema.Cause]:
    return crd_schema.validate(obj, cv.schema) if cv.schema is not None else []


def reread(cv: CustomVersion, obj: Obj) -> None:
    """Prune and default a stored object again (a CRD changed; reads from etcd would)."""
    if cv.schema is not None:
        crd_schema.prune(obj, cv.schema)
        crd_schema.default(obj, cv.schema)


# -- simple JSONPath (the forms CRD columns and scale paths use) ------------------------------
_STEP = re.compile(
    r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]"
)


def find(obj: Any, path: str) -> list[Any]:
    """Values at a JSONPath like `.status.replicas`, `.a[0].b`, `.c[?(@.type=="Ready")].status`."""
    current = [obj]
    pos = 0
    path = path.strip().removeprefix("{").removesuffix("}").removeprefix("$")
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            return []
        pos = m.end()
        key, index, fkey, fval = m.groups()
        nxt: list[Any] = []
        for value in current:
            if key is not None and isinstance(value, dict) and key in value:
                nxt.append(value[key])
            elif index is not None and isinstance(value, list) and int(index) < len(value):
                nxt.append(value[int(index)])
            elif fkey is not None and isinstance(value, list):
                nxt.extend(v for v in value if isinstance(v, dict) and str(v.get(fkey)) == fval)
        current = nxt
    return current


def _set_path(obj: Obj, path: str, value: Any) -> None:
    keys = [k for k in path.strip().lstrip(".").split(".") if k]
    cur = obj
    for key in keys[:-1]:
        nxt = cur.get(key)
        if not isinstance(nxt, dict):
            nxt = cur[key] = {}
        cur = nxt
    cur[keys[-1]] = value


# -- scale subresource (autoscaling/v1 Scale) ------------------------------------------------
def scale_of(cv: CustomVersion, obj: Obj) -> Obj:
    """The autoscaling/v1 Scale view of a custom resource."""
    assert cv.scale is not None
    meta = obj["metadata"]
    spec = find(obj, cv.scale.spec_replicas)
    status = find(obj, cv.scale.status_replicas)
    scale: Obj = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": spec[0] if spec and isinstance(spec[0], int) else 0},
        "status": {"replicas": status[0] if status and isinstance(status[0], int) else 0},
    }
    if cv.scale.label_selector:
        selector = find(obj, cv.scale.label_selector)
        if selector and isinstance(selector[0], str):
            scale["status"]["selector"] = selector[0]
    return scale


def apply_scale(cv: CustomVersion, obj: Obj, scale: Any) -> Obj:
    """The custom resource with `scale.spec.replicas` written to its spec replicas path."""
    assert cv.scale is not None
    if not isinstance(scale, dict) or scale.get("kind", "Scale") != "Scale":
        raise ApiError(400, "the body of the request must be an autoscaling/v1 Scale")
    name = obj["metadata"]["name"]
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise ApiError(
            400,
            f'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal '
            f"{crd_schema.json_type(replicas)} into Go struct field ScaleSpec.spec.replicas "
            "of type int32",
        )
    if replicas < 0:
        raise invalid(
            "Scale",
            "autoscaling",
            name,
            [
                (
                    "spec.replicas",
                    "FieldValueInvalid",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            ],
        )
    out = copy.deepcopy(obj)
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    if rv:
        out["metadata"]["resourceVersion"] = rv  # a stale one fails like any update
    else:
        out["metadata"].pop("resourceVersion", None)
    _set_path(out, cv.scale.spec_replicas, replicas)
    return out


# -- tables -----------------------------------------------------------------------------------
def human_duration(seconds: float) -> str:
    """apimachinery `duration.HumanDuration`: how kubectl shows ages."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" + (f"{s % 60}s" if s % 60 else "")
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" + (f"{minutes % 60}m" if minutes % 60 else "")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" + (f"{hours % 24}h" if hours % 24 else "")
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        return f"{days // 365}y" + (f"{days % 365}d" if days % 365 else "")
    return f"{hours // 24 // 365}y"


def _age(ts: Any) -> str | None:
    if not isinstance(ts, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return human_duration((datetime.datetime.now(datetime.UTC) - when).total_seconds())


def _cell(column: Column, obj: Obj) -> Any:
    found = find(obj, column.json_path)
    if not found or found[0] is None:
        return None
    value = found[0]
    if column.type == "date":
        return _age(value)
    if column.type == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return int(value) if float(value).is_integer() else None
    if column.type == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if column.type == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, (dict, list)):
        return crd_schema.go_syntax(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table_columns(cv: CustomVersion) -> list[Obj]:
    name = {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace.",
        "priority": 0,
    }
    return [name] + [
        {
            "name": c.name,
            "type": c.type,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        }
        for c in cv.columns
    ]


def table_cells(cv: CustomVersion, obj: Obj) -> list[Any]:
    return [obj["metadata"]["name"], *(_cell(c, obj) for c in cv.columns)]


SCALE_COLUMNS = [
    {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
    {"name": "DesiredReplicas", "type": "integer", "format": "", "description": "", "priority": 0},
    {
        "name": "AvailableReplicas",
        "type": "integer",
        "format": "",
        "description": "",
        "priority": 0,
    },
]


def scale_cells(scale: Obj) -> list[Any]:
    return [scale["metadata"]["name"], scale["spec"]["replicas"], scale["status"]["replicas"]]
