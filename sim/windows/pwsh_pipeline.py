"""Pipeline cmdlets of the SIMULATED PowerShell: Select-Object, Where-Object, ConvertTo-Json,
Out-Null, Write-Output.

ConvertTo-Json behaves like Windows PowerShell 5.1: one input object is emitted on its own (not
wrapped in a list), several become a JSON array, nesting deeper than `-Depth` (default 2) is
flattened to the `@{k=v}` string form. Registered into `pwsh.CMDLETS`; used by `pwsh.run_script`.
"""

from __future__ import annotations

import json
from typing import Any

from sim.windows.pwsh import CmdletError, Context, _short, cmdlet


def _prop(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key.lower() == name.lower():
                return key, value
    raise CmdletError(f'Property "{name}" cannot be found.')


@cmdlet("Select-Object", values=("ExpandProperty", "First", "Property"), positional=("Property",))
def select_object(ctx: Context, p: dict[str, Any], data: list[Any] | None) -> list[Any]:
    items = list(data or [])
    if "First" in p:
        items = items[: int(p["First"])]
    if "ExpandProperty" in p:
        out: list[Any] = []
        for obj in items:
            value = _prop(obj, str(p["ExpandProperty"]))[1]
            out.extend(value if isinstance(value, list) else [value])
        return out
    if "Property" in p:
        names = p["Property"] if isinstance(p["Property"], list) else [p["Property"]]
        return [dict(_prop(obj, str(n)) for n in names) for obj in items]
    return items


@cmdlet(
    "Where-Object",
    values=("Property", "Value"),
    switches=("EQ", "NE"),
    positional=("Property", "Value"),
    required=("Property",),
)
def where_object(ctx: Context, p: dict[str, Any], data: list[Any] | None) -> list[Any]:
    if p.get("EQ") == p.get("NE"):
        raise CmdletError("Specify exactly one comparison operator (-EQ or -NE).")
    want = "" if p.get("Value") is None else str(p.get("Value")).lower()
    out = []
    for obj in data or []:
        try:
            value = _prop(obj, str(p["Property"]))[1]
        except CmdletError:
            value = None
        equal = ("" if value is None else str(value).lower()) == want
        if equal == bool(p.get("EQ")):
            out.append(obj)
    return out


def _to_json(value: Any, depth_left: int) -> Any:
    if isinstance(value, dict):
        if depth_left < 0:
            return _short(value)
        return {k: _to_json(v, depth_left - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v, depth_left) for v in value]
    return value


@cmdlet("ConvertTo-Json", values=("Depth", "InputObject"), switches=("Compress",))
def convert_to_json(ctx: Context, p: dict[str, Any], data: list[Any] | None) -> list[Any]:
    items = list(data or [])
    if "InputObject" in p:
        items = [p["InputObject"]]
    if not items:
        return []
    depth = int(p.get("Depth", 2))
    if depth < 0 or depth > 100:
        raise CmdletError("Cannot validate argument on parameter 'Depth'.")
    doc = _to_json(items[0] if len(items) == 1 else items, depth)
    if p.get("Compress"):
        return [json.dumps(doc, separators=(",", ":"))]
    return [json.dumps(doc, indent=4).replace("\n", "\r\n")]


@cmdlet("Out-Null", values=("InputObject",))
def out_null(ctx: Context, p: dict[str, Any], data: list[Any] | None) -> list[Any]:
    return []


@cmdlet("Write-Output", values=("InputObject",), positional=("InputObject",))
def write_output(ctx: Context, p: dict[str, Any], data: list[Any] | None) -> list[Any]:
    value = p.get("InputObject")
    return value if isinstance(value, list) else [value]
