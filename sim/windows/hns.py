"""Host Networking Service state of a SIMULATED Windows host.

HNS networks and endpoints as `hns.psm1` shows them (`Get-HnsNetwork`, `Get-HnsEndpoint`,
`New-HnsEndpoint`, `Remove-Hns*`). Persistent networks (the hybrid-overlay base network) survive
a reboot and a process restart (saved as JSON); the others, and every endpoint on them, are lost
at reboot, as users of Windows nodes keep discovering. Used by the PowerShell cmdlets, the
simulated hybrid-overlay (creates the networks) and kube-proxy (checks its network and VIP).
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path


class HnsError(Exception):
    """An HNS call that Windows would refuse."""


@dataclass
class HnsNetwork:
    name: str
    id: str
    type: str
    address_prefix: str
    gateway: str
    persistent: bool = False

    def as_object(self) -> dict[str, object]:
        return {
            "Name": self.name,
            "Id": self.id,
            "Type": self.type,
            "Subnets": [{"AddressPrefix": self.address_prefix, "GatewayAddress": self.gateway}],
        }


@dataclass
class HnsEndpoint:
    name: str
    id: str
    ip: str
    network_id: str
    network_name: str

    def as_object(self) -> dict[str, object]:
        return {
            "Name": self.name,
            "Id": self.id,
            "IPAddress": self.ip,
            "VirtualNetwork": self.network_id,
            "VirtualNetworkName": self.network_name,
        }


class HnsState:
    """One host's HNS networks and endpoints."""

    def __init__(self, state_file: Path) -> None:
        self._file = state_file
        self.networks: dict[str, HnsNetwork] = {}
        self.endpoints: dict[str, HnsEndpoint] = {}
        if state_file.exists():
            for raw in json.loads(state_file.read_text()):
                net = HnsNetwork(**raw)
                self.networks[net.id] = net

    def _save(self) -> None:
        keep = [asdict(n) for n in self.networks.values() if n.persistent]
        self._file.parent.mkdir(parents=True, exist_ok=True)
        self._file.write_text(json.dumps(keep))

    def network_named(self, name: str) -> HnsNetwork | None:
        return next((n for n in self.networks.values() if n.name == name), None)

    def create_network(
        self, name: str, net_type: str, prefix: str, gateway: str, persistent: bool = False
    ) -> HnsNetwork:
        existing = self.network_named(name)
        if existing is not None:
            return existing
        net = HnsNetwork(name, str(uuid.uuid4()).upper(), net_type, prefix, gateway, persistent)
        self.networks[net.id] = net
        self._save()
        return net

    def remove_network(self, net_id: str) -> None:
        net = self.networks.pop(net_id, None)
        if net is None:
            raise HnsError(f"Network {net_id} not found")
        for ep_id in [e.id for e in self.endpoints.values() if e.network_id == net_id]:
            del self.endpoints[ep_id]
        self._save()

    def create_endpoint(self, network_id: str, name: str) -> HnsEndpoint:
        net = self.networks.get(network_id)
        if net is None:
            raise HnsError(f"Network {network_id} not found")
        used = {e.ip for e in self.endpoints.values() if e.network_id == network_id}
        used.add(net.gateway)
        subnet = ipaddress.ip_network(net.address_prefix, strict=False)
        for ip in subnet.hosts():
            if str(ip) not in used:
                ep = HnsEndpoint(name, str(uuid.uuid4()).upper(), str(ip), net.id, net.name)
                self.endpoints[ep.id] = ep
                return ep
        raise HnsError(f"No free address in {net.address_prefix}")

    def remove_endpoint(self, ep_id: str) -> None:
        if self.endpoints.pop(ep_id, None) is None:
            raise HnsError(f"Endpoint {ep_id} not found")

    def endpoint_ips(self, network_id: str) -> set[str]:
        return {e.ip for e in self.endpoints.values() if e.network_id == network_id}

    def reboot(self) -> None:
        """Non-persistent networks and all endpoints vanish."""
        self.networks = {k: n for k, n in self.networks.items() if n.persistent}
        self.endpoints = {}
        self._save()
