"""meta.k8s.io/v1 `Table` rendering for the SIMULATED Kubernetes API server.

kubectl asks for server-side printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`);
this renders the columns kube-apiserver's printers (`pkg/printers/internalversion`) produce for
the kinds winfleet touches, priority-1 columns included (what `-o wide` shows): Nodes (STATUS,
ROLES, AGE, VERSION + INTERNAL-IP, EXTERNAL-IP, OS-IMAGE, KERNEL-VERSION, CONTAINER-RUNTIME),
Pods (READY, STATUS, RESTARTS, AGE + IP, NODE, NOMINATED NODE, READINESS GATES), CSRs, Secrets,
ConfigMaps, Namespaces, ServiceAccounts, Leases, RBAC objects, Machines; NAME/AGE for the rest.
AGE is worded as Go's `duration.HumanDuration`. Used by `sim.k8s.handlers` and `sim.k8s.watch`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sim.k8s import custom
from sim.k8s.resources import ResourceType

Obj = dict[str, Any]
Column = tuple[str, int, Callable[[Obj], Any]]  # (name, priority, cell)


def wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def human_duration(seconds: int) -> str:
    if seconds < -1:
        return "<invalid>"
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    minutes, hours = seconds // 60, seconds // 3600
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // 24 // 365, (hours // 24) % 365
    if hours < 24 * 365 * 8 and days:
        return f"{years}y{days}d"
    return f"{years}y"


def _age(obj: Obj) -> str:
    ts = obj["metadata"].get("creationTimestamp")
    if not ts:
        return "<unknown>"
    created = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return human_duration(int((datetime.datetime.now(datetime.UTC) - created).total_seconds()))


def _status(o: Obj) -> Obj:
    return o.get("status") or {}


def _node_status(obj: Obj) -> str:
    ready = next(
        (c for c in _status(obj).get("conditions") or [] if c.get("type") == "Ready"), None
    )
    status = ("Ready" if ready.get("status") == "True" else "NotReady") if ready else "Unknown"
    if (obj.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(obj: Obj) -> str:
    roles = set()
    for key, value in (obj["metadata"].get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _address(kind: str) -> Callable[[Obj], str]:
    def cell(obj: Obj) -> str:
        found = [a["address"] for a in _status(obj).get("addresses") or [] if a.get("type") == kind]
        return found[0] if found else "<none>"

    return cell


def _node_info(field: str) -> Callable[[Obj], str]:
    return lambda o: (_status(o).get("nodeInfo") or {}).get(field) or "<unknown>"


def _pod_ready(obj: Obj) -> str:
    total = len((obj.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in _status(obj).get("containerStatuses") or [] if c.get("ready"))
    return f"{ready}/{total}"


def _pod_status(obj: Obj) -> str:
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = _status(obj)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for c in status.get("containerStatuses") or []:
        state = c.get("state") or {}
        for key in ("waiting", "terminated"):
            if (state.get(key) or {}).get("reason"):
                reason = state[key]["reason"]
    return str(reason)


def _pod_restarts(obj: Obj) -> int:
    return sum(int(c.get("restartCount") or 0) for c in _status(obj).get("containerStatuses") or [])


def _gates(obj: Obj) -> str:
    gates = (obj.get("spec") or {}).get("readinessGates") or []
    if not gates:
        return "<none>"
    conds = {c.get("type"): c.get("status") for c in _status(obj).get("conditions") or []}
    return f"{sum(1 for g in gates if conds.get(g.get('conditionType')) == 'True')}/{len(gates)}"


def _csr_condition(obj: Obj) -> str:
    types = {c.get("type") for c in _status(obj).get("conditions") or []}
    text = "Denied" if "Denied" in types else ("Approved" if "Approved" in types else "Pending")
    if "Failed" in types:
        text += ",Failed"
    return text + (",Issued" if _status(obj).get("certificate") else "")


def _csr_duration(obj: Obj) -> str:
    seconds = (obj.get("spec") or {}).get("expirationSeconds")
    return human_duration(int(seconds)) if seconds else "<none>"


def _subjects(kind: str) -> Callable[[Obj], str]:
    def cell(obj: Obj) -> str:
        names = []
        for s in obj.get("subjects") or []:
            if s.get("kind") == kind:
                ns = s.get("namespace") or obj["metadata"].get("namespace", "")
                names.append(f"{ns}/{s.get('name')}" if kind == "ServiceAccount" else s.get("name"))
        return ", ".join(names)

    return cell


def _spec(field: str, default: str = "") -> Callable[[Obj], Any]:
    return lambda o: (o.get("spec") or {}).get(field) or default


_BINDING: list[Column] = [
    (
        "Role",
        0,
        lambda o: f"{(o.get('roleRef') or {}).get('kind')}/{(o.get('roleRef') or {}).get('name')}",
    ),
    ("Age", 0, _age),
    ("Users", 1, _subjects("User")),
    ("Groups", 1, _subjects("Group")),
    ("ServiceAccounts", 1, _subjects("ServiceAccount")),
]
_ROLE: list[Column] = [("Created At", 0, lambda o: o["metadata"].get("creationTimestamp", ""))]
_COLUMNS: dict[str, list[Column]] = {
    "Node": [
        ("Status", 0, _node_status),
        ("Roles", 0, _node_roles),
        ("Age", 0, _age),
        ("Version", 0, _node_info("kubeletVersion")),
        ("Internal-IP", 1, _address("InternalIP")),
        ("External-IP", 1, _address("ExternalIP")),
        ("OS-Image", 1, _node_info("osImage")),
        ("Kernel-Version", 1, _node_info("kernelVersion")),
        ("Container-Runtime", 1, _node_info("containerRuntimeVersion")),
    ],
    "Pod": [
        ("Ready", 0, _pod_ready),
        ("Status", 0, _pod_status),
        ("Restarts", 0, _pod_restarts),
        ("Age", 0, _age),
        ("IP", 1, lambda o: _status(o).get("podIP") or "<none>"),
        ("Node", 1, _spec("nodeName", "<none>")),
        ("Nominated Node", 1, lambda o: _status(o).get("nominatedNodeName") or "<none>"),
        ("Readiness Gates", 1, _gates),
    ],
    "CertificateSigningRequest": [
        ("Age", 0, _age),
        ("SignerName", 0, _spec("signerName")),
        ("Requestor", 0, _spec("username")),
        ("RequestedDuration", 0, _csr_duration),
        ("Condition", 0, _csr_condition),
    ],
    "Secret": [
        ("Type", 0, lambda o: o.get("type", "")),
        ("Data", 0, lambda o: len(o.get("data") or {})),
        ("Age", 0, _age),
    ],
    "ConfigMap": [
        ("Data", 0, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        ("Age", 0, _age),
    ],
    "Namespace": [("Status", 0, lambda o: _status(o).get("phase", "")), ("Age", 0, _age)],
    "ServiceAccount": [("Secrets", 0, lambda o: len(o.get("secrets") or [])), ("Age", 0, _age)],
    "Lease": [("Holder", 0, _spec("holderIdentity")), ("Age", 0, _age)],
    "Role": _ROLE,
    "ClusterRole": _ROLE,
    "RoleBinding": _BINDING,
    "ClusterRoleBinding": _BINDING,
    "Machine": [("Phase", 0, lambda o: _status(o).get("phase", "")), ("Age", 0, _age)],
}


def _table(definitions: list[Obj], rows: list[tuple[list[Any], Obj]], rv: str) -> Obj:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": definitions,
        "rows": [
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                },
            }
            for cells, meta in rows
        ],
    }


def scale_table(scale: Obj) -> Obj:
    """`kubectl get --subresource=scale`: the Scale columns kube-apiserver serves."""
    rv = scale["metadata"].get("resourceVersion", "")
    return _table(custom.SCALE_COLUMNS, [(custom.scale_cells(scale), scale["metadata"])], rv)


def table(rt: ResourceType, objs: list[Obj], resource_version: str) -> Obj:
    cv = rt.custom_version
    if cv is not None and cv.columns:  # a CRD's additionalPrinterColumns
        rows = [(custom.table_cells(cv, o), o["metadata"]) for o in objs]
        return _table(custom.table_columns(cv), rows, resource_version)
    columns: list[Column] = [
        ("Name", 0, lambda o: o["metadata"]["name"]),
        *_COLUMNS.get(rt.kind, [("Age", 0, _age)]),
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": name,
                "type": "integer" if name in ("Restarts", "Data", "Secrets") else "string",
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": priority,
            }
            for name, priority, _ in columns
        ],
        "rows": [
            {
                "cells": [cell(o) for _, _, cell in columns],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                },
            }
            for o in objs
        ],
    }
