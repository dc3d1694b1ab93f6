"""The Windows services winfleet runs on a node, in dependency order, and how to ensure them.

WMCO's `RequiredServices`, 4.6-era: WMCB creates `kubelet`; winfleet creates `hybrid-overlay-node`
(depends on kubelet) and `kube-proxy` (depends on hybrid-overlay-node). Each is described as
`OpenShift managed <name>` and restarts on failure. containerd is out of scope for this flow and
windows_exporter is independent of the others.

`ensure_service_commands` turns what the host reported (the service, and whether the definition
winfleet last applied is the current one) into the commands that bring it to `spec`: create or
reconfigure, restart-on-failure actions, then start. Pure; `activities/network.py` runs it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass

from activities.errors import RemoteCommandFailed
from activities.windows import paths
from activities.windows.cni import OVERLAY_NETWORK, network_cidr
from activities.windows.powershell import (
    WindowsCommand,
    get_service,
    new_service,
    powershell,
    restart_service,
    start_service,
    to_json,
)
from activities.windows.sc import sc_config, sc_description, sc_failure

KUBELET_SERVICE = "kubelet"
HYBRID_OVERLAY_SERVICE = "hybrid-overlay-node"
KUBE_PROXY_SERVICE = "kube-proxy"
WINDOWS_EXPORTER_SERVICE = "windows_exporter"

SERVICE_ORDER: tuple[str, ...] = (KUBELET_SERVICE, HYBRID_OVERLAY_SERVICE, KUBE_PROXY_SERVICE)
"""Dependency order: start left to right, stop and remove right to left."""

WINDOWS_EXPORTER = paths.win_join(paths.K_DIR, "windows_exporter.exe")
WINDOWS_EXPORTER_COLLECTORS = "cpu,cs,logical_disk,net,os,service,system,textfile,container,memory"

FAILURE_RESET_SECONDS = 5  # WMCO: forget earlier failures after 5 s of running
FAILURE_RESTART_MS = 1000  # WMCO: restart a crashed service after 1 s

HYBRID_OVERLAY_LOG = paths.WindowsPath(r"C:\var\log\hybrid-overlay\hybrid-overlay.log")
KUBE_PROXY_LOG_DIR = paths.WindowsPath(r"C:\var\log\kube-proxy")
KUBELET_STATE_DIR = paths.WindowsPath(r"C:\var\lib\kubelet")
"""kubelet's --cert-dir lives here (WMCB): its client and serving certificates."""

_NOT_FOUND = "Cannot find any service with service name"
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_STATUS_CODES = {1: "Stopped", 2: "StartPending", 3: "StopPending", 4: "Running"}
_START_TYPE_CODES = {2: "Automatic", 3: "Manual", 4: "Disabled"}


@dataclass(frozen=True)
class ServiceSpec:
    """A Windows service as winfleet defines it."""

    name: str
    binary_path_name: str  # the full command line the Service Control Manager runs
    display_name: str
    description: str
    depends_on: tuple[str, ...] = ()
    restart_on_failure: bool = True

    def definition(self) -> bytes:
        """Canonical bytes of the definition, kept on the host to tell whether it changed."""
        text = "\n".join(
            (
                self.binary_path_name,
                self.display_name,
                self.description,
                "/".join(self.depends_on),
                str(self.restart_on_failure),
            )
        )
        return (text + "\n").encode()


@dataclass(frozen=True)
class ServiceState:
    """What `Get-Service` reports about an installed service."""

    name: str
    status: str  # Running | Stopped | ...
    start_type: str  # Automatic | Manual | Disabled

    @property
    def running(self) -> bool:
        return self.status == "Running"


@dataclass(frozen=True)
class ServicePlan:
    """The commands that bring a service to its spec; both parts empty when it already is."""

    configure: tuple[WindowsCommand, ...]  # create/reconfigure; record the definition after
    start: WindowsCommand | None  # start (or restart after reconfiguring) the service


def definition_marker(name: str) -> paths.WindowsPath:
    r"""Where the host keeps the definition winfleet last applied: `C:\k\<name>.service`."""
    return paths.win_join(paths.K_DIR, f"{name}.service")


def _node(node_name: str) -> str:
    if len(node_name) > 253 or not _DNS_SUBDOMAIN.fullmatch(node_name):
        raise ValueError(f"not a Kubernetes node name: {node_name!r}")
    return node_name


def _spec(name: str, command_line: str, depends_on: tuple[str, ...]) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        binary_path_name=command_line,
        display_name=name,
        description=f"OpenShift managed {name}",
        depends_on=depends_on,
    )


def hybrid_overlay_service(
    node_name: str, kubeconfig: paths.WindowsPath = paths.KUBECONFIG
) -> ServiceSpec:
    """hybrid-overlay-node: creates the HNS networks once the node has its overlay subnet."""
    words = (
        paths.HYBRID_OVERLAY,
        "--node",
        _node(node_name),
        "--k8s-kubeconfig",
        kubeconfig,
        "--windows-service",
        "--logfile",
        HYBRID_OVERLAY_LOG,
    )
    return _spec(HYBRID_OVERLAY_SERVICE, " ".join(words), (KUBELET_SERVICE,))


def kube_proxy_service(node_name: str, node_subnet: str, source_vip: str) -> ServiceSpec:
    """kube-proxy in kernelspace mode on the overlay network, sourcing from the VIP endpoint."""
    subnet = network_cidr(node_subnet, "node subnet")
    vip = str(ipaddress.ip_address(source_vip))
    words = (
        paths.KUBE_PROXY,
        "--windows-service",
        "--proxy-mode=kernelspace",
        "--feature-gates=WinOverlay=true,WinDSR=true",
        f"--hostname-override={_node(node_name)}",
        f"--kubeconfig={paths.KUBECONFIG}",
        f"--cluster-cidr={subnet}",
        f"--network-name={OVERLAY_NETWORK}",
        f"--source-vip={vip}",
        "--enable-dsr=true",
        f"--log-dir={KUBE_PROXY_LOG_DIR}",
        "--logtostderr=false",
    )
    return _spec(KUBE_PROXY_SERVICE, " ".join(words), (HYBRID_OVERLAY_SERVICE,))


def windows_exporter_service() -> ServiceSpec:
    """windows_exporter (metrics on :9182): optional, independent of the other services."""
    line = f"{WINDOWS_EXPORTER} --collectors.enabled {WINDOWS_EXPORTER_COLLECTORS}"
    return _spec(WINDOWS_EXPORTER_SERVICE, line, ())


# --- check --------------------------------------------------------------------------------------
def query_service_command(name: str) -> WindowsCommand:
    """`Get-Service` as JSON; parse the result with `parse_service_state`."""
    return powershell(to_json(get_service(name)), display=f"get service {name}")


def parse_service_state(
    name: str, exit_status: int, stdout: str, stderr: str
) -> ServiceState | None:
    """The service's state, or None when it is not installed; anything else is a failure."""
    if exit_status != 0:
        if _NOT_FOUND in stderr:
            return None
        raise RemoteCommandFailed(
            f"Get-Service {name} failed (exit {exit_status}): {stderr.strip()[-300:]}"
        )
    try:
        doc = json.loads(stdout)
        status, start_type = doc["Status"], doc["StartType"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RemoteCommandFailed(f"Get-Service {name} printed no service object") from exc
    return ServiceState(
        name=name,
        status=_STATUS_CODES.get(status, str(status)) if isinstance(status, int) else status,
        start_type=(
            _START_TYPE_CODES.get(start_type, str(start_type))
            if isinstance(start_type, int)
            else start_type
        ),
    )


# --- act ----------------------------------------------------------------------------------------
def ensure_service_commands(
    spec: ServiceSpec, observed: ServiceState | None, definition_current: bool
) -> ServicePlan:
    """What to run so the service matches `spec` and runs.

    `observed` is None when the service is not installed; `definition_current` says whether the
    host's definition marker holds `spec.definition()`. After running `configure` (if any) the
    caller records the definition, then runs `start`.
    """
    configure: list[WindowsCommand] = []
    if observed is None:
        create = new_service(
            spec.name, spec.binary_path_name, spec.display_name, spec.description, spec.depends_on
        )
        configure.append(powershell(create, display=f"create service {spec.name}"))
    elif not definition_current or observed.start_type != "Automatic":
        configure.append(sc_config(spec.name, spec.binary_path_name, depends_on=spec.depends_on))
        configure.append(sc_description(spec.name, spec.description))
    if configure and spec.restart_on_failure:
        configure.append(sc_failure(spec.name, FAILURE_RESET_SECONDS, FAILURE_RESTART_MS))

    start: WindowsCommand | None = None
    if observed is not None and observed.running and configure:
        start = powershell(restart_service(spec.name), display=f"restart service {spec.name}")
    elif observed is None or not observed.running:
        start = powershell(start_service(spec.name), display=f"start service {spec.name}")
    return ServicePlan(configure=tuple(configure), start=start)
