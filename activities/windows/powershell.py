"""PowerShell statement builders and the `WindowsCommand` every remote step runs.

A statement builder returns one PowerShell statement (str) with its arguments quoted by
`ps_quote`; `powershell(...)` joins statements into one `powershell.exe -EncodedCommand` line
for cmd.exe. Only the cmdlets and forms listed in `sim/README.md` ("The Windows vocabulary") are
emitted, so whatever runs against the twin also runs on Windows Server.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

from activities.windows.paths import HNS_MODULE, WindowsPath
from activities.windows.quoting import ps_quote

POWERSHELL = "powershell.exe -NoLogo -NoProfile -NonInteractive"
# `-File` runs a script file, which the machine's execution policy may refuse: lift it.
POWERSHELL_SCRIPT = (
    "powershell.exe -ExecutionPolicy Unrestricted -NoLogo -NoProfile -NonInteractive"
)
STOP_ON_ERROR = "$ErrorActionPreference = 'Stop'"
CMD_LINE_MAX = 8191  # cmd.exe's limit; Windows OpenSSH runs exec requests through cmd.exe


@dataclass(frozen=True)
class WindowsCommand:
    """One cmd.exe command line and how to talk about it.

    `line` may carry sensitive values and is never logged; `display` is a short, secret-free
    description for logs, span attributes and error messages. When `success_line` is set, the
    command only counts as successful if its stdout contains that text.
    """

    line: str
    display: str
    success_line: str | None = None


def powershell(*statements: str, display: str) -> WindowsCommand:
    """One `powershell.exe -EncodedCommand` line running `statements` in order; an error stops it.

    The script travels as base64 of its UTF-16LE text, so nothing in it — quotes of any kind,
    `%VAR%`, `&`, `^`, newlines — reaches cmd.exe's or the argument splitter's parsing: only
    PowerShell's own parser sees it, where builders quote every value with `ps_quote`.
    """
    script = "; ".join((STOP_ON_ERROR, *statements))
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    line = f"{POWERSHELL} -EncodedCommand {encoded}"
    if len(line) > CMD_LINE_MAX:
        raise ValueError(
            f"{display}: the encoded command is {len(line)} characters, more than cmd.exe's "
            f"{CMD_LINE_MAX}; split it into several commands"
        )
    return WindowsCommand(line=line, display=display)


def to_json(statement: str) -> str:
    """`statement`'s output as compact JSON (a single object is not wrapped in a list)."""
    return f"{statement} | ConvertTo-Json -Compress -Depth 5"


# --- files -----------------------------------------------------------------------------------
def get_file_hash(path: WindowsPath) -> str:
    return f"Get-FileHash -Path {ps_quote(path)} -Algorithm SHA256"


def test_path(path: WindowsPath) -> str:
    return f"Test-Path -Path {ps_quote(path)}"


def new_directory(path: WindowsPath) -> str:
    """Create a directory (and its parents); no error if it exists."""
    return f"New-Item -ItemType Directory -Path {ps_quote(path)} -Force"


def remove_item(path: WindowsPath, *, recurse: bool = False) -> str:
    """Remove a file or directory. Windows errors on a missing path: `test_path` first."""
    return f"Remove-Item -Path {ps_quote(path)}{' -Recurse' if recurse else ''} -Force"


def copy_item(source: WindowsPath, destination: WindowsPath) -> str:
    """Copy one file, replacing `destination` if it exists."""
    return f"Copy-Item -Path {ps_quote(source)} -Destination {ps_quote(destination)} -Force"


def run_script_file(path: WindowsPath) -> str:
    """Run a `.ps1` file in a child powershell.exe; its exit code lands in `$LASTEXITCODE`.

    A failing native program does not stop a script, even with `STOP_ON_ERROR`: follow this
    with `exit_with_last_exit_code()`.
    """
    return f"{POWERSHELL_SCRIPT} -File {ps_quote(path)}"


def exit_with_last_exit_code() -> str:
    """End the script with the exit code of the last native program it ran."""
    return "exit $LASTEXITCODE"


def get_content(path: WindowsPath) -> str:
    return f"Get-Content -Path {ps_quote(path)} -Raw"


def set_content(path: WindowsPath, value: str) -> str:
    return f"Set-Content -Path {ps_quote(path)} -Value {ps_quote(value)}"


# --- services --------------------------------------------------------------------------------
def get_service(name: str) -> str:
    return f"Get-Service -Name {ps_quote(name)}"


def new_service(
    name: str,
    binary_path_name: str,
    display_name: str,
    description: str,
    depends_on: Iterable[str] = (),
) -> str:
    """Create an automatic-start service; errors if it exists (`get_service` first)."""
    deps = tuple(depends_on)
    parts = [
        f"New-Service -Name {ps_quote(name)}",
        f"-BinaryPathName {ps_quote(binary_path_name)}",
        f"-DisplayName {ps_quote(display_name)}",
        f"-Description {ps_quote(description)}",
        "-StartupType Automatic",
    ]
    if deps:
        parts.append("-DependsOn " + ",".join(ps_quote(d) for d in deps))
    return " ".join(parts)


def start_service(name: str) -> str:
    """Start a service; a running one is left alone."""
    return f"Start-Service -Name {ps_quote(name)}"


def stop_service(name: str) -> str:
    """Stop a service (and the services that depend on it)."""
    return f"Stop-Service -Name {ps_quote(name)} -Force"


def restart_service(name: str) -> str:
    return f"Restart-Service -Name {ps_quote(name)} -Force"


# --- the machine -----------------------------------------------------------------------------
def get_os() -> str:
    """Win32_OperatingSystem: `Caption`, `Version` (e.g. `10.0.17763`), `BuildNumber`."""
    return "Get-CimInstance -ClassName Win32_OperatingSystem"


def hostname() -> str:
    return "hostname"


def rename_computer(name: str) -> str:
    """Rename the host; takes effect after `restart_computer`."""
    return f"Rename-Computer -NewName {ps_quote(name)} -Force"


def restart_computer() -> str:
    """Reboot now; the SSH connection drops."""
    return "Restart-Computer -Force"


# --- HNS (needs `import_hns()` earlier in the same script) -----------------------------------
def import_hns() -> str:
    return f"Import-Module {ps_quote(HNS_MODULE)}"


def get_hns_networks() -> str:
    return "Get-HnsNetwork"


def get_hns_endpoints() -> str:
    return "Get-HnsEndpoint"


def new_hns_endpoint(network_id: str, name: str) -> str:
    return f"New-HnsEndpoint -NetworkId {ps_quote(network_id)} -Name {ps_quote(name)}"


def remove_hns_network(name: str) -> str:
    """Remove the HNS network(s) called `name`; nothing happens if there is none."""
    return (
        "Get-HnsNetwork | Where-Object -Property Name -EQ -Value "
        f"{ps_quote(name)} | Remove-HnsNetwork"
    )


def remove_hns_endpoint(name: str) -> str:
    """Remove the HNS endpoint(s) called `name`; nothing happens if there is none."""
    return (
        "Get-HnsEndpoint | Where-Object -Property Name -EQ -Value "
        f"{ps_quote(name)} | Remove-HnsEndpoint"
    )


# --- OpenSSH Server and the first-boot script ------------------------------------------------
# Windows Server images on AWS and Azure lack the OpenSSH Server; it is a Feature on Demand.
OPENSSH_SERVER = "OpenSSH.Server~~~~0.0.1.0"
SSHD = "sshd"
# Well-known SIDs: the account names differ on non-English images, the SIDs do not.
ADMINISTRATORS_SID = "S-1-5-32-544"
SYSTEM_SID = "S-1-5-18"


def add_windows_capability(name: str) -> str:
    """Install a Feature on Demand (no-op if installed), e.g. `OPENSSH_SERVER`."""
    return f"Add-WindowsCapability -Online -Name {ps_quote(name)}"


def set_service_startup_type(name: str, startup_type: str) -> str:
    """`Automatic`, `Manual` or `Disabled`; takes effect at the next boot."""
    if startup_type not in ("Automatic", "Manual", "Disabled"):
        raise ValueError(f"not a service startup type: {startup_type!r}")
    return f"Set-Service -Name {ps_quote(name)} -StartupType {startup_type}"


def new_firewall_rule(display_name: str, port: int) -> str:
    """Allow inbound TCP on `port`. A rule with the same display name may exist already: Windows
    keeps both, so running the script twice does no harm."""
    return (
        f"New-NetFirewallRule -DisplayName {ps_quote(display_name)} -Direction Inbound "
        f"-Action Allow -Protocol TCP -LocalPort {int(port)}"
    )


def list_acl(path: WindowsPath) -> str:
    """icacls: print the ACL of `path` (one `<principal>:<flags>(<rights>)` per line)."""
    return f"icacls.exe {ps_quote(path)}"


def grant_full_control_only(path: WindowsPath, *sids: str, inherit: bool = False) -> str:
    """icacls: drop inherited ACEs and leave full control for `sids` alone (by SID, so it works
    on any display language). What sshd requires of `administrators_authorized_keys`; with
    `inherit`, for a directory: files and folders in it get the same (`(OI)(CI)`).

    icacls is a native program: a failure does not stop the script, even with
    `STOP_ON_ERROR`; follow with `exit_with_last_exit_code()`.
    """
    if not sids:
        raise ValueError("grant_full_control_only needs at least one SID")
    rights = "(OI)(CI)F" if inherit else "F"
    grants = " ".join(f"/grant {ps_quote(f'*{sid}:{rights}')}" for sid in sids)
    return f"icacls.exe {ps_quote(path)} /inheritance:r {grants}"
