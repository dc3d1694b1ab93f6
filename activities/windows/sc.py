"""`sc.exe` command builders: the Service Control Manager's own tool.

Used where PowerShell's service cmdlets fall short (changing a service's command line,
restart-on-failure actions). Windows requires the `option= value` form, with a space after `=`.
"""

from __future__ import annotations

from collections.abc import Iterable

from activities.windows.powershell import WindowsCommand
from activities.windows.quoting import cmd_quote

SC = "sc.exe"


def _line(*words: str) -> str:
    return " ".join((SC, *words))


def _depend(depends_on: Iterable[str]) -> list[str]:
    deps = tuple(depends_on)
    return ["depend=", cmd_quote("/".join(deps))] if deps else []


def sc_create(
    name: str,
    binary_path: str,
    *,
    depends_on: Iterable[str] = (),
    display_name: str | None = None,
) -> WindowsCommand:
    """Create an automatic-start service running `binary_path` (a full command line)."""
    words = [
        "create",
        cmd_quote(name),
        "binPath=",
        cmd_quote(binary_path),
        "start=",
        "auto",
        *_depend(depends_on),
    ]
    if display_name is not None:
        words += ["DisplayName=", cmd_quote(display_name)]
    return WindowsCommand(_line(*words), display=f"sc create {name}")


def sc_config(
    name: str,
    binary_path: str,
    *,
    depends_on: Iterable[str] = (),
) -> WindowsCommand:
    """Point an existing service at `binary_path`, automatic start, with its dependencies."""
    words = [
        "config",
        cmd_quote(name),
        "binPath=",
        cmd_quote(binary_path),
        "start=",
        "auto",
        *_depend(depends_on),
    ]
    return WindowsCommand(_line(*words), display=f"sc config {name}")


def sc_failure(name: str, reset_s: int, restart_ms: int | Iterable[int]) -> WindowsCommand:
    """Restart the service on failure, after `restart_ms` (one delay per failure, in order)."""
    delays = (restart_ms,) if isinstance(restart_ms, int) else tuple(restart_ms)
    if not delays:
        raise ValueError("sc_failure needs at least one restart delay")
    actions = "/".join(f"restart/{ms}" for ms in delays)
    words = ["failure", cmd_quote(name), "reset=", str(reset_s), "actions=", actions]
    return WindowsCommand(_line(*words), display=f"sc failure {name}")


def sc_description(name: str, text: str) -> WindowsCommand:
    return WindowsCommand(
        _line("description", cmd_quote(name), cmd_quote(text)), display=f"sc description {name}"
    )


def sc_query(name: str) -> WindowsCommand:
    """Prints `STATE : 4 RUNNING` / `1 STOPPED`; exit 1060 if the service does not exist."""
    return WindowsCommand(_line("query", cmd_quote(name)), display=f"sc query {name}")


def sc_start(name: str) -> WindowsCommand:
    return WindowsCommand(_line("start", cmd_quote(name)), display=f"sc start {name}")


def sc_stop(name: str) -> WindowsCommand:
    return WindowsCommand(_line("stop", cmd_quote(name)), display=f"sc stop {name}")


def sc_delete(name: str) -> WindowsCommand:
    return WindowsCommand(_line("delete", cmd_quote(name)), display=f"sc delete {name}")


SERVICE_DOES_NOT_EXIST = 1060
"""`sc.exe` exit status when the named service is not installed."""
