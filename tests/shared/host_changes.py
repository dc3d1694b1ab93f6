"""What a run changed on a simulated Windows host: the commands that write, and a snapshot diff.

`writes(lines)` keeps the command lines of a host's `command_log` that change something (every
PowerShell script is decoded and judged by its cmdlets; read-only ones are dropped).
`snapshot(host)` takes the host's files (by SHA256), services and HNS objects; `changed(a, b)`
names what differs, so a test can say "nothing else changed" and mean it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from windows_lines import script_of

READ_ONLY = {
    "$erroractionpreference",
    "get-ciminstance",
    "get-service",
    "get-filehash",
    "get-hnsnetwork",
    "get-hnsendpoint",
    "test-path",
    "write-output",
    "import-module",
    "get-content",
    "hostname",
    "get-netipaddress",
}


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def is_write(line: str) -> bool:
    words = line.split()
    if not words:
        return False
    program = words[0].lower().removesuffix(".exe")
    if program == "powershell":
        script = script_of(line)
        return any(s.split()[0].lower() not in READ_ONLY for s in _statements(script))
    if program == "sc" and len(words) > 1 and words[1].lower() == "query":
        return False
    return program != "hostname"


def describe(line: str) -> str:
    """A readable form of a logged line (the decoded script for PowerShell)."""
    if line.lower().startswith("powershell"):
        return "; ".join(s for s in _statements(script_of(line)) if not s.startswith("$Error"))
    return line


def writes(lines: list[str]) -> list[str]:
    return [describe(line) for line in lines if is_write(line)]


def snapshot(host: Any) -> dict[str, object]:
    """Files (relative path -> SHA256), services and HNS objects of a simulated host."""
    files = {
        str(p.relative_to(host.root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(host.root.rglob("*"))
        if p.is_file()
    }
    services = {
        s.name: (s.bin_path, s.start_type, s.status, tuple(s.depends_on)) for s in host.scm.all()
    }
    networks = {n["Name"]: n["Subnets"][0]["AddressPrefix"] for n in host.hns_networks.values()}
    endpoints = sorted(e.name for e in host.hns.endpoints.values())
    return {"files": files, "services": services, "networks": networks, "endpoints": endpoints}


def changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """What differs between two snapshots: `file:<path>`, `service:<name>`, `networks`, ..."""
    out: set[str] = set()
    for kind in ("files", "services"):
        a, b = before[kind], after[kind]
        out |= {f"{kind[:-1]}:{k}" for k in set(a) | set(b) if a.get(k) != b.get(k)}
    out |= {k for k in ("networks", "endpoints") if before[k] != after[k]}
    return out
