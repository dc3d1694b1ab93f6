"""Windows path <-> local path mapping for a SIMULATED host's disk.

A simulated host keeps its `C:\\` drive in `<root>/C/`. Used by the PowerShell cmdlets, sc.exe,
WMCB, the SFTP server and the simulated Kubernetes components. Paths are case-insensitive on
Windows; the twin keeps the case the product wrote and resolves lookups case-insensitively
component by component, so `C:\\K\\kubelet.exe` finds `C:\\k\\kubelet.exe`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_DRIVE = re.compile(r"^/?([A-Za-z]):(?:[\\/]|$)")


class PathError(ValueError):
    """A path that is not an absolute drive path, or that escapes the host's disk."""


def split_windows(path: str) -> tuple[str, list[str]]:
    """`C:\\k\\x` / `/C:/k/x` / `c:/k/x` -> ("C", ["k", "x"]).

    `..` is resolved but never climbs above the drive root (PathError instead).
    """
    m = _DRIVE.match(path)
    if not m:
        raise PathError(f"'{path}' is not an absolute Windows path")
    parts: list[str] = []
    for part in re.split(r"[\\/]+", path[m.end() :]):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathError(f"'{path}' escapes the drive root")
            parts.pop()
            continue
        parts.append(part)
    return m.group(1).upper(), parts


def to_local(root: Path, path: str) -> Path:
    """The local file behind a Windows path (existing components matched case-insensitively)."""
    drive, parts = split_windows(path)
    current = root / drive
    for part in parts:
        candidate = current / part
        if not candidate.exists() and current.is_dir():
            lowered = part.lower()
            for entry in os.listdir(current):
                if entry.lower() == lowered:
                    candidate = current / entry
                    break
        current = candidate
    return current


def to_windows(root: Path, local: Path) -> str:
    """`<root>/C/k/x` -> `C:\\k\\x` (raises PathError outside the host's disk)."""
    try:
        rel = Path(os.path.abspath(local)).relative_to(os.path.abspath(root))
    except ValueError as exc:
        raise PathError(f"{local} is outside the host's disk") from exc
    if not rel.parts:
        raise PathError("the host root is not a drive")
    drive, rest = rel.parts[0], rel.parts[1:]
    return f"{drive}:\\" + "\\".join(rest)


def same_path(a: str, b: str) -> bool:
    """Windows path equality (case-insensitive, either separator)."""
    try:
        return split_windows(a)[0] == split_windows(b)[0] and [
            p.lower() for p in split_windows(a)[1]
        ] == [p.lower() for p in split_windows(b)[1]]
    except PathError:
        return False
