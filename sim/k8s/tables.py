"""meta.k8s.io/v1 `Table` rendering for the SIMULATED Kubernetes API server.

kubectl asks for server-side printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`);
this renders the columns kubectl users expect for the kinds winfleet touches (Nodes, CSRs, Pods,
Machines) and NAME/AGE for the rest. Used by `sim.k8s.handlers` for get and list.
"""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp import web

from sim.k8s import custom
from sim.k8s.resources import ResourceType

Obj = dict[str, Any]


def wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def _age(obj: Obj) -> str:
    ts = obj["metadata"].get("creationTimestamp")
    if not ts:
        return "<unknown>"
    created = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    secs = int((datetime.datetime.now(datetime.UTC) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{max(secs, 0)}s"


def _node_status(obj: Obj) -> str:
    ready = next(
        (c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    status = (
        "Ready" if ready and ready.get("status") == "True" else ("NotReady" if ready else "Unknown")
    )
    if (obj.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(obj: Obj) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(
        k[len(prefix) :] for k in obj["metadata"].get("labels") or {} if k.startswith(prefix)
    )
    return ",".join(roles) or "<none>"


def _csr_condition(obj: Obj) -> str:
    status = obj.get("status") or {}
    conds = [c.get("type", "") for c in status.get("conditions") or []]
    text = ",".join(conds) or "Pending"
    return text + (",Issued" if status.get("certificate") else "")


_COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "Node": [
        ("Status", _node_status),
        ("Roles", _node_roles),
        ("Age", _age),
        (
            "Version",
            lambda o: ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""),
        ),
    ],
    "CertificateSigningRequest": [
        ("Age", _age),
        ("SignerName", lambda o: (o.get("spec") or {}).get("signerName", "")),
        ("Requestor", lambda o: (o.get("spec") or {}).get("username", "")),
        ("Condition", _csr_condition),
    ],
    "Pod": [("Status", lambda o: (o.get("status") or {}).get("phase", "")), ("Age", _age)],
    "Machine": [("Phase", lambda o: (o.get("status") or {}).get("phase", "")), ("Age", _age)],
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
    columns = [("Name", lambda o: o["metadata"]["name"]), *_COLUMNS.get(rt.kind, [("Age", _age)])]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": name,
                "type": "string",
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": 0,
            }
            for name, _ in columns
        ],
        "rows": [
            {
                "cells": [fn(o) for _, fn in columns],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                },
            }
            for o in objs
        ],
    }
