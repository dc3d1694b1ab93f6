"""The Host Networking Service (HNS) as winfleet sees it: networks, endpoints, and their JSON.

hybrid-overlay-node creates the overlay networks; winfleet creates one endpoint on the overlay,
`VIPEndpoint`, whose IP is kube-proxy's source VIP, and removes all of them when deconfiguring.
Every script imports `C:\\k\\hns.psm1` first. Pure; used by `activities/network.py` and
`activities/deconfigure.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from activities.errors import RemoteCommandFailed
from activities.windows.powershell import (
    WindowsCommand,
    get_hns_endpoints,
    get_hns_networks,
    import_hns,
    new_hns_endpoint,
    powershell,
    remove_hns_endpoint,
    remove_hns_network,
    to_json,
)

VIP_ENDPOINT = "VIPEndpoint"


@dataclass(frozen=True)
class HnsNetwork:
    name: str
    id: str
    type: str
    subnets: tuple[str, ...]  # address prefixes


@dataclass(frozen=True)
class HnsEndpoint:
    name: str
    id: str
    ip_address: str
    network_id: str
    network_name: str


def list_networks_command() -> WindowsCommand:
    return powershell(import_hns(), to_json(get_hns_networks()), display="get HNS networks")


def list_endpoints_command() -> WindowsCommand:
    return powershell(import_hns(), to_json(get_hns_endpoints()), display="get HNS endpoints")


def create_endpoint_command(network_id: str, name: str = VIP_ENDPOINT) -> WindowsCommand:
    return powershell(
        import_hns(),
        to_json(new_hns_endpoint(network_id, name)),
        display=f"new HNS endpoint {name}",
    )


def remove_endpoint_command(name: str = VIP_ENDPOINT) -> WindowsCommand:
    return powershell(
        import_hns(), remove_hns_endpoint(name), display=f"remove HNS endpoint {name}"
    )


def remove_network_command(name: str) -> WindowsCommand:
    return powershell(import_hns(), remove_hns_network(name), display=f"remove HNS network {name}")


def json_objects(stdout: str, what: str) -> list[dict[str, Any]]:
    """ConvertTo-Json output as a list: nothing, one object (not wrapped), or a list."""
    text = stdout.strip()
    if not text:
        return []
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RemoteCommandFailed(f"{what}: output is not JSON") from exc
    items = doc if isinstance(doc, list) else [doc]
    if not all(isinstance(i, dict) for i in items):
        raise RemoteCommandFailed(f"{what}: output is not a list of objects")
    return items


def parse_networks(stdout: str) -> tuple[HnsNetwork, ...]:
    try:
        return tuple(
            HnsNetwork(
                name=str(n["Name"]),
                id=str(n["Id"]),
                type=str(n.get("Type", "")),
                subnets=tuple(str(s["AddressPrefix"]) for s in n.get("Subnets") or ()),
            )
            for n in json_objects(stdout, "Get-HnsNetwork")
        )
    except (KeyError, TypeError) as exc:
        raise RemoteCommandFailed("Get-HnsNetwork: unexpected network object") from exc


def parse_endpoints(stdout: str) -> tuple[HnsEndpoint, ...]:
    try:
        return tuple(
            HnsEndpoint(
                name=str(e["Name"]),
                id=str(e["Id"]),
                ip_address=str(e["IPAddress"]),
                network_id=str(e.get("VirtualNetwork", "")),
                network_name=str(e.get("VirtualNetworkName", "")),
            )
            for e in json_objects(stdout, "Get-HnsEndpoint")
        )
    except (KeyError, TypeError) as exc:
        raise RemoteCommandFailed("Get-HnsEndpoint: unexpected endpoint object") from exc


def find_network(networks: tuple[HnsNetwork, ...], name: str) -> HnsNetwork | None:
    return next((n for n in networks if n.name == name), None)
