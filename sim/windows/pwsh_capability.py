"""Feature-on-Demand cmdlets of the SIMULATED PowerShell: Get- and Add-WindowsCapability.

Knows the two OpenSSH capabilities (`openssh.py`): the client is installed on every image, the
server only where the image or a script installed it. `-Online` is required (offline images are
not modelled); `-Name` takes wildcards on Get. Installing the server needs no reboot
(`RestartNeeded : False`). Registered into `pwsh.CMDLETS`; used by `pwsh.run_script`.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from sim.windows import openssh
from sim.windows.pwsh import CmdletError, Context, cmdlet

_SIZES = {openssh.CLIENT: (1240653, 5300763), openssh.SERVER: (1290075, 10592604)}


def _online(cmdlet_name: str, p: dict[str, Any]) -> None:
    if not p.get("Online"):
        raise CmdletError(
            "Parameter set cannot be resolved using the specified named parameters. "
            f"(the simulated host models only {cmdlet_name} -Online)"
        )


def _state(ctx: Context, name: str) -> str:
    if name == openssh.CLIENT or openssh.server_installed(ctx.host):
        return "Installed"
    return "NotPresent"


def _capability(ctx: Context, name: str) -> dict[str, Any]:
    display, description = openssh.CAPABILITIES[name]
    download, install = _SIZES[name]
    return {
        "Name": name,
        "State": _state(ctx, name),
        "DisplayName": display,
        "Description": description,
        "DownloadSize": download,
        "InstallSize": install,
    }


@cmdlet(
    "Get-WindowsCapability",
    values=("Name", "Source", "LogPath", "LogLevel"),
    switches=("Online", "LimitAccess"),
)
def get_windows_capability(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    _online("Get-WindowsCapability", p)
    pattern = str(p.get("Name", "*")).lower()
    names = [n for n in openssh.CAPABILITIES if fnmatch.fnmatchcase(n.lower(), pattern)]
    if "Name" not in p:
        return [{"Name": n, "State": _state(ctx, n)} for n in names]
    return [_capability(ctx, n) for n in names]


@cmdlet(
    "Add-WindowsCapability",
    values=("Name", "Source", "LogPath", "LogLevel"),
    switches=("Online", "LimitAccess"),
    required=("Name",),
)
def add_windows_capability(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    _online("Add-WindowsCapability", p)
    name = str(p["Name"])
    known = {n.lower(): n for n in openssh.CAPABILITIES}
    if name.lower() not in known:
        raise CmdletError("Add-WindowsCapability failed. Error code = 0x800f0954")
    if known[name.lower()] == openssh.SERVER:
        openssh.install_server(ctx.host)
    return [{"Path": None, "Online": True, "RestartNeeded": False}]
