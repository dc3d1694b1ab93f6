"""Service, HNS and system cmdlets of the SIMULATED PowerShell.

Get/New/Set/Start/Stop/Restart-Service (over the host's `ServiceManager`), the `hns.psm1`
cmdlets (only after `Import-Module ...\\hns.psm1` in the same script), Get-CimInstance
Win32_OperatingSystem and Win32_Service (`-Filter "Name='a' OR Name='b'"`), Rename-Computer,
Restart-Computer and `hostname`.
Registered into `pwsh.CMDLETS`; used by `pwsh.run_script`.
"""

from __future__ import annotations

import re
from typing import Any

from sim.windows.hns import HnsError
from sim.windows.pwsh import CmdletError, Context, cmdlet
from sim.windows.services import Service, ServiceError


def _service_obj(svc: Service) -> dict[str, Any]:
    return {
        "Name": svc.name,
        "DisplayName": svc.display_name or svc.name,
        "Status": svc.status,
        "StartType": svc.start_type,
    }


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@cmdlet("Get-Service", values=("Name",), positional=("Name",))
def get_service(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    manager = ctx.host.scm
    if "Name" not in p:
        return [_service_obj(s) for s in manager.all()]
    out = []
    for name in _names(p["Name"]):
        svc = manager.find(name)
        if svc is None:
            raise CmdletError(f"Cannot find any service with service name '{name}'.")
        out.append(_service_obj(svc))
    return out


@cmdlet(
    "New-Service",
    values=("Name", "BinaryPathName", "DisplayName", "Description", "StartupType", "DependsOn"),
    positional=("Name", "BinaryPathName"),
    required=("Name", "BinaryPathName"),
)
def new_service(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    start_type = str(p.get("StartupType", "Automatic")).capitalize()
    if start_type not in ("Automatic", "Manual", "Disabled"):
        raise CmdletError(f"Cannot bind parameter 'StartupType' to the value '{start_type}'.")
    name = str(p["Name"])
    try:
        svc = ctx.host.scm.create(
            name,
            str(p["BinaryPathName"]),
            start_type=start_type,
            display_name=str(p.get("DisplayName") or name),
            description=str(p.get("Description") or ""),
            depends_on=_names(p["DependsOn"]) if p.get("DependsOn") else [],
        )
    except ServiceError as exc:
        raise CmdletError(
            f"Service '{name} ({name})' cannot be created due to the following error: {exc}"
        ) from exc
    return [_service_obj(svc)]


def _lookup(ctx: Context, name: str) -> Service:
    svc: Service | None = ctx.host.scm.find(name)
    if svc is None:
        raise CmdletError(f"Cannot find any service with service name '{name}'.")
    return svc


def _start(ctx: Context, svc: Service) -> None:
    if svc.status == "Running":
        return
    try:
        ctx.host.scm.start(svc.name)
    except ServiceError as exc:
        raise CmdletError(
            f"Service '{svc.display_name or svc.name} ({svc.name})' cannot be started due to the "
            f"following error: Cannot start service {svc.name} on computer '.'. {exc}"
        ) from exc


def _stop(ctx: Context, svc: Service, force: bool) -> None:
    if svc.status != "Running":
        return
    if ctx.host.scm.dependents(svc.name) and not force:
        raise CmdletError(
            f"Cannot stop service '{svc.display_name or svc.name} ({svc.name})' because it has "
            "dependent services. It can only be stopped if the Force flag is set."
        )
    ctx.host.scm.stop(svc.name, force=True)


@cmdlet("Start-Service", values=("Name",), positional=("Name",), required=("Name",))
def start_service(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    for name in _names(p["Name"]):
        _start(ctx, _lookup(ctx, name))
    return []


@cmdlet(
    "Stop-Service", values=("Name",), switches=("Force",), positional=("Name",), required=("Name",)
)
def stop_service(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    for name in _names(p["Name"]):
        _stop(ctx, _lookup(ctx, name), bool(p.get("Force")))
    return []


_START_MODES = {"automatic": "Automatic", "manual": "Manual", "disabled": "Disabled"}


@cmdlet(
    "Set-Service",
    values=("Name", "StartupType", "Status", "DisplayName", "Description"),
    switches=("PassThru",),
    positional=("Name",),
    required=("Name",),
)
def set_service(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    name = str(p["Name"])
    svc = ctx.host.scm.find(name)
    if svc is None:
        raise CmdletError(f"Service {name} was not found on computer '.'.")
    fields: dict[str, Any] = {}
    if "StartupType" in p:
        mode = _START_MODES.get(str(p["StartupType"]).lower())
        if mode is None:
            raise CmdletError(
                "Cannot bind parameter 'StartupType'. Cannot convert value "
                f'"{p["StartupType"]}" to type "System.ServiceProcess.ServiceStartMode". Error: '
                f'"Unable to match the identifier name {p["StartupType"]} to a valid enumerator '
                "name. Specify one of the following enumerator names and try again: Boot, "
                'System, Automatic, Manual, Disabled"'
            )
        fields["start_type"] = mode
    if "DisplayName" in p:
        fields["display_name"] = str(p["DisplayName"])
    if "Description" in p:
        fields["description"] = str(p["Description"])
    if fields:
        ctx.host.scm.configure(svc.name, **fields)
    status = str(p.get("Status", "")).lower()
    if status == "running":
        _start(ctx, svc)
    elif status == "stopped":
        _stop(ctx, svc, force=False)
    elif status:
        raise CmdletError(f"sim: Set-Service -Status {p['Status']} is not modelled")
    return [_service_obj(svc)] if p.get("PassThru") else []


@cmdlet(
    "Restart-Service",
    values=("Name",),
    switches=("Force",),
    positional=("Name",),
    required=("Name",),
)
def restart_service(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    for name in _names(p["Name"]):
        svc = _lookup(ctx, name)
        _stop(ctx, svc, bool(p.get("Force")))
        _start(ctx, svc)
    return []


_WQL_NAME = re.compile(r"^\s*Name\s*=\s*'([^']*)'\s*$", re.IGNORECASE)
_CIM_START_MODES = {"Automatic": "Auto", "Manual": "Manual", "Disabled": "Disabled"}  # StartMode


def _wql_names(text: str) -> list[str]:
    """The names of a `Name='a' OR Name='b'` filter (the only WQL form modelled)."""
    names = []
    for term in re.split(r"\s+OR\s+", text, flags=re.IGNORECASE):
        match = _WQL_NAME.match(term)
        if match is None:
            raise CmdletError("Invalid query")
        names.append(match[1])
    return names


def _win32_service(svc: Service, pid: int) -> dict[str, Any]:
    running = svc.status == "Running"
    return {
        "Name": svc.name,
        "DisplayName": svc.display_name or svc.name,
        "Description": svc.description,
        "PathName": svc.bin_path,
        "StartMode": _CIM_START_MODES.get(svc.start_type, svc.start_type),
        "State": svc.status,
        "Started": running,
        "Status": "OK",
        "ServiceType": "Own Process",
        "StartName": "LocalSystem",
        "ProcessId": pid if running else 0,
        "ExitCode": 0,
        "DelayedAutoStart": False,
    }


def _services_cim(ctx: Context, wql: str | None) -> list[Any]:
    wanted = {n.lower() for n in _wql_names(wql)} if wql is not None else None
    return [
        _win32_service(svc, 1000 + 4 * i)
        for i, svc in enumerate(ctx.host.scm.all())
        if wanted is None or svc.name.lower() in wanted
    ]


@cmdlet(
    "Get-CimInstance",
    values=("ClassName", "Filter"),
    positional=("ClassName",),
    required=("ClassName",),
)
def get_cim_instance(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    cls = str(p["ClassName"]).lower()
    if cls == "win32_service":
        return _services_cim(ctx, str(p["Filter"]) if "Filter" in p else None)
    if cls != "win32_operatingsystem" or "Filter" in p:
        raise CmdletError(f'Invalid class "{p["ClassName"]}"')
    build = ctx.host.os_build.split(".")
    release = {"14393": "2016", "20348": "2022"}.get(build[2] if len(build) > 2 else "", "2019")
    return [
        {
            "Caption": f"Microsoft Windows Server {release} Datacenter",
            "Version": ".".join(build[:3]),
            "BuildNumber": build[2] if len(build) > 2 else "",
        }
    ]


@cmdlet(
    "Rename-Computer",
    values=("NewName",),
    switches=("Force", "Restart"),
    positional=("NewName",),
    required=("NewName",),
)
def rename_computer(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    ctx.host.pending_hostname = str(p["NewName"])
    if p.get("Restart"):
        ctx.host.request_reboot()
    return []


@cmdlet("Restart-Computer", switches=("Force",))
def restart_computer(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    ctx.host.request_reboot()
    return []


@cmdlet("hostname")
def hostname(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    return [ctx.host.hostname]


# ---- hns.psm1 -------------------------------------------------------------------------------
@cmdlet("Get-HnsNetwork", values=("Id",), module="hns")
def get_hns_network(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    nets = ctx.host.hns.networks.values()
    return [n.as_object() for n in nets if "Id" not in p or n.id == str(p["Id"]).upper()]


@cmdlet("Get-HnsEndpoint", values=("Id",), module="hns")
def get_hns_endpoint(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    eps = ctx.host.hns.endpoints.values()
    return [e.as_object() for e in eps if "Id" not in p or e.id == str(p["Id"]).upper()]


@cmdlet(
    "New-HnsEndpoint",
    values=("NetworkId", "Name", "IPAddress"),
    required=("NetworkId",),
    module="hns",
)
def new_hns_endpoint(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    try:
        ep = ctx.host.hns.create_endpoint(str(p["NetworkId"]).upper(), str(p.get("Name", "")))
    except HnsError as exc:
        raise CmdletError(str(exc)) from exc
    return [ep.as_object()]


def _ids(data: list[Any] | None, p: dict[str, Any]) -> list[str]:
    items = list(data or [])
    if "InputObject" in p:
        items += p["InputObject"] if isinstance(p["InputObject"], list) else [p["InputObject"]]
    out = []
    for obj in items:
        if not isinstance(obj, dict) or "Id" not in obj:
            raise CmdletError("The input object is not an HNS object.")
        out.append(str(obj["Id"]).upper())
    return out


@cmdlet("Remove-HnsNetwork", values=("InputObject",), module="hns")
def remove_hns_network(ctx: Context, p: dict[str, Any], data: list[Any] | None) -> list[Any]:
    for net_id in _ids(data, p):
        try:
            ctx.host.hns.remove_network(net_id)
        except HnsError as exc:
            raise CmdletError(str(exc)) from exc
    return []


@cmdlet("Remove-HnsEndpoint", values=("InputObject",), module="hns")
def remove_hns_endpoint(ctx: Context, p: dict[str, Any], data: list[Any] | None) -> list[Any]:
    for ep_id in _ids(data, p):
        try:
            ctx.host.hns.remove_endpoint(ep_id)
        except HnsError as exc:
            raise CmdletError(str(exc)) from exc
    return []
