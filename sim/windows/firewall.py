"""Windows Defender Firewall rules of a SIMULATED host (persisted in `firewall.json`).

Rules are kept as `New-NetFirewallRule` creates them (`Name` is a `{GUID}` unless given; a
duplicate `Name` is refused, a duplicate `DisplayName` is not, as on Windows) and survive reboots
and VM stop/start. The twin does not filter traffic by them: they are recorded for tests and
`Get-NetFirewallRule`. Used by `pwsh_network.py` and `openssh.py` (the rule the OpenSSH Server
capability adds).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class FirewallError(Exception):
    """A rule Windows would refuse."""


class Firewall:
    def __init__(self, state_file: Path) -> None:
        self._file = state_file
        self.rules: list[dict[str, Any]] = (
            json.loads(state_file.read_text()) if state_file.exists() else []
        )

    def add(self, rule: dict[str, Any]) -> dict[str, Any]:
        if any(r["Name"].lower() == str(rule["Name"]).lower() for r in self.rules):
            raise FirewallError("Cannot create a file when that file already exists.")
        self.rules.append(rule)
        self._file.parent.mkdir(parents=True, exist_ok=True)
        self._file.write_text(json.dumps(self.rules, indent=1))
        return rule
