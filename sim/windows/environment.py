"""Process environment of a SIMULATED Windows Server host, per account.

The variables a process sees on Windows Server 2019/2022 (`$env:ProgramData` in PowerShell,
`%ProgramData%` in cmd.exe), with the values a real host has: machine-wide ones
(`SystemRoot=C:\\Windows`, `ProgramFiles=C:\\Program Files`, ...) and per-account ones
(`USERPROFILE`, `TEMP`, `USERNAME`). SYSTEM (what EC2Launch and the Azure VM agent run scripts
as) has its profile under `C:\\Windows\\system32\\config\\systemprofile` and `USERNAME` =
`<COMPUTERNAME>$`. Keys are lowercase (lookups are case-insensitive, as on Windows). Used by the
PowerShell interpreter and the cmd.exe exec channel (`exec.py`).
"""

from __future__ import annotations

from typing import Any

SYSTEM_ACCOUNT = "SYSTEM"
_MACHINE = {
    "ALLUSERSPROFILE": "C:\\ProgramData",
    "CommonProgramFiles": "C:\\Program Files\\Common Files",
    "CommonProgramFiles(x86)": "C:\\Program Files (x86)\\Common Files",
    "CommonProgramW6432": "C:\\Program Files\\Common Files",
    "ComSpec": "C:\\Windows\\system32\\cmd.exe",
    "DriverData": "C:\\Windows\\System32\\Drivers\\DriverData",
    "NUMBER_OF_PROCESSORS": "2",
    "OS": "Windows_NT",
    "Path": (
        "C:\\Windows\\system32;C:\\Windows;C:\\Windows\\System32\\Wbem;"
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\;C:\\Windows\\System32\\OpenSSH\\"
    ),
    "PATHEXT": ".COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH;.MSC",
    "PROCESSOR_ARCHITECTURE": "AMD64",
    "ProgramData": "C:\\ProgramData",
    "ProgramFiles": "C:\\Program Files",
    "ProgramFiles(x86)": "C:\\Program Files (x86)",
    "ProgramW6432": "C:\\Program Files",
    "PSModulePath": (
        "C:\\Program Files\\WindowsPowerShell\\Modules;"
        "C:\\Windows\\system32\\WindowsPowerShell\\v1.0\\Modules"
    ),
    "PUBLIC": "C:\\Users\\Public",
    "SystemDrive": "C:",
    "SystemRoot": "C:\\Windows",
    "windir": "C:\\Windows",
}


def profile_dir(user: str) -> str:
    """The account's profile directory (`$env:USERPROFILE`, `$HOME`)."""
    if user.upper() == SYSTEM_ACCOUNT:
        return "C:\\Windows\\system32\\config\\systemprofile"
    return f"C:\\Users\\{user}"


def variables(host: Any, user: str) -> dict[str, str]:
    """The environment block a new process of `user` gets on `host` (lowercase keys)."""
    computer = host.hostname.upper()
    profile = profile_dir(user)
    system = user.upper() == SYSTEM_ACCOUNT
    per_user = {
        "APPDATA": f"{profile}\\AppData\\Roaming",
        "COMPUTERNAME": computer,
        "HOMEDRIVE": "C:",
        "HOMEPATH": profile[2:],
        "LOCALAPPDATA": f"{profile}\\AppData\\Local",
        "TEMP": "C:\\Windows\\TEMP" if system else f"{profile}\\AppData\\Local\\Temp",
        "TMP": "C:\\Windows\\TEMP" if system else f"{profile}\\AppData\\Local\\Temp",
        "USERDOMAIN": "WORKGROUP" if system else computer,
        "USERNAME": f"{computer}$" if system else user,
        "USERPROFILE": profile,
    }
    return {k.lower(): v for k, v in {**_MACHINE, **per_user}.items()}


def expand_percent(line: str, env: dict[str, str]) -> str:
    """cmd.exe's `%NAME%` expansion: defined names are replaced, anything else stays as is."""
    out: list[str] = []
    i = 0
    while i < len(line):
        if line[i] == "%":
            end = line.find("%", i + 1)
            if end > i + 1 and line[i + 1 : end].lower() in env:
                out.append(env[line[i + 1 : end].lower()])
                i = end + 1
                continue
        out.append(line[i])
        i += 1
    return "".join(out)
