"""The drift probe: one read-only PowerShell run that shows a node's services, files and HNS.

`probe_command` asks, in one `powershell.exe` (one process start per node, not one per
question): the winfleet services as `Win32_Service` sees them (command line, start mode,
state: `Get-Service` in Windows PowerShell 5.1 shows no command line), the SHA256 of the given
files and, when `hns.psm1` is there, the HNS networks and endpoints. Each answer follows a
marker line, so an empty answer (no endpoints) is still told apart; `parse_probe` reads them
back. Also what WMCB's `configure-cni` adds to kubelet's command line, which the check looks
for. Pure; used by activities/drift_check.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from activities.errors import RemoteCommandFailed
from activities.windows import hns, paths
from activities.windows.powershell import (
    WindowsCommand,
    get_hns_endpoints,
    get_hns_networks,
    import_hns,
    powershell,
    to_json,
)
from activities.windows.quoting import ps_quote

MARKER = "##winfleet "
SERVICE_PROPERTIES = ("Name", "PathName", "StartMode", "State")

KUBELET_CNI_FLAGS = (
    "--network-plugin=cni",
    f"--cni-bin-dir={paths.CNI_DIR}",
    f"--cni-conf-dir={paths.CNI_CONFIG_DIR}",
)
"""What `wmcb configure-cni` adds to kubelet's command line (kubelet's CNI flags)."""


@dataclass(frozen=True)
class ServiceInfo:
    """A service as `Win32_Service` shows it."""

    name: str
    path_name: str  # the full command line
    start_mode: str  # Auto | Manual | Disabled
    state: str  # Running | Stopped | ...

    @property
    def running(self) -> bool:
        return self.state == "Running"


@dataclass(frozen=True)
class Probe:
    services: dict[str, ServiceInfo] = field(default_factory=dict)  # by lowercase name
    hashes: dict[str, str] = field(default_factory=dict)  # lowercase path -> lowercase sha256
    networks: tuple[hns.HnsNetwork, ...] = ()
    endpoints: tuple[hns.HnsEndpoint, ...] = ()
    hns_read: bool = False


def _marker(section: str) -> str:
    return f"Write-Output {ps_quote(MARKER + section)}"


def services_filter(names: tuple[str, ...]) -> str:
    """WQL: `Name='a' OR Name='b'` (names are winfleet's own, never user input)."""
    return " OR ".join(f"Name='{n}'" for n in names)


def probe_command(
    service_names: tuple[str, ...], files: tuple[paths.WindowsPath, ...], *, with_hns: bool
) -> WindowsCommand:
    """The probe script; `files` must exist (Get-FileHash stops at a missing one)."""
    statements = [
        _marker("services"),
        to_json(
            f"Get-CimInstance -ClassName Win32_Service -Filter "
            f"{ps_quote(services_filter(service_names))}"
            f" | Select-Object -Property {','.join(SERVICE_PROPERTIES)}"
        ),
    ]
    if files:
        statements += [_marker("hashes"), file_hashes(files)]
    if with_hns:
        statements += [
            import_hns(),
            _marker("networks"),
            to_json(get_hns_networks()),
            _marker("endpoints"),
            to_json(get_hns_endpoints()),
        ]
    return powershell(*statements, display="drift probe (services, file hashes, HNS)")


def file_hashes(files: Sequence[paths.WindowsPath]) -> str:
    """One Get-FileHash for all `files` (each must exist), as JSON objects with Hash and Path."""
    return to_json(
        "Get-FileHash -Path "
        + ",".join(ps_quote(f) for f in files)
        + " -Algorithm SHA256 | Select-Object -Property Hash,Path"
    )


def parse_file_hashes(stdout: str, what: str) -> dict[str, str]:
    """Lowercase path -> lowercase SHA-256 hex, from what `file_hashes` printed."""
    try:
        return {
            str(h["Path"]).lower(): str(h["Hash"]).lower() for h in hns.json_objects(stdout, what)
        }
    except KeyError as exc:
        raise RemoteCommandFailed(f"{what}: an object lacks {exc}") from exc


def _sections(stdout: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        text = line.strip()
        if text.startswith(MARKER):
            current = out.setdefault(text[len(MARKER) :], [])
        elif current is not None and text:
            current.append(text)
    return {k: "\n".join(v) for k, v in out.items()}


def parse_probe(stdout: str, *, with_hns: bool) -> Probe:
    """What `probe_command` printed; RemoteCommandFailed when a section is missing or garbled."""
    sections = _sections(stdout)
    if "services" not in sections:
        raise RemoteCommandFailed("drift probe printed no services section")
    try:
        services = {
            str(s["Name"]).lower(): ServiceInfo(
                name=str(s["Name"]),
                path_name=str(s.get("PathName") or ""),
                start_mode=str(s.get("StartMode") or ""),
                state=str(s.get("State") or ""),
            )
            for s in hns.json_objects(sections["services"], "drift probe: services")
        }
        hashes = parse_file_hashes(sections.get("hashes", ""), "drift probe: file hashes")
    except KeyError as exc:
        raise RemoteCommandFailed(f"drift probe: an object lacks {exc}") from exc
    if not with_hns:
        return Probe(services=services, hashes=hashes)
    if "networks" not in sections or "endpoints" not in sections:
        raise RemoteCommandFailed("drift probe printed no HNS sections")
    return Probe(
        services=services,
        hashes=hashes,
        networks=hns.parse_networks(sections["networks"]),
        endpoints=hns.parse_endpoints(sections["endpoints"]),
        hns_read=True,
    )
