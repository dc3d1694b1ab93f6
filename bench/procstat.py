"""CPU seconds of a process, read from /proc (Linux), for the onboarding benchmark.

`cpu_seconds(pid)` is utime + stime of the process and of its children it has waited for
(`/proc/<pid>/stat` fields 14-17), in seconds. `children(pid)` lists the direct children, e.g.
to find the Temporal dev server the SDK started. Used by `bench/onboard.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (field 3 onward)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of `pid`, in seconds (0 once the process is gone)."""
    try:
        f = _fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(int(x) for x in f[11:15]) / _TICKS


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return ""


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_fields(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
    return found
