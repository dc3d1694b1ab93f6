"""SIMULATED Microsoft.Network: the seeded virtual network/subnet and network interfaces.

The subnet's address prefix is a loopback range, so the private IP a NIC gets (dynamic: the
lowest free address after the 4 Azure reserves; or a requested static one) is an address a
simulated Windows host can listen on. Used by `sim.cloud.azure.AzureTwin` (routes) and
`sim.cloud.azure_compute` (attach/detach, NIC IP lookup).
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from aiohttp import web

from sim.cloud.azure_arm import ArmError, Operations, invalid, not_found

NS = "Microsoft.Network"


def group_id(sub: str, group: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}"


class Network:
    """Virtual networks, subnets and NICs of one subscription (keys are lowercase ids)."""

    def __init__(self, subscription_id: str, ops: Operations, *, nic_seconds: float = 0.2) -> None:
        self.sub = subscription_id
        self.ops = ops
        self.nic_seconds = nic_seconds
        self.vnets: dict[str, dict[str, Any]] = {}
        self.nics: dict[str, dict[str, Any]] = {}
        self._subnet_used: dict[str, set[str]] = {}  # subnet id (lower) -> allocated IPs

    # -- virtual networks (seeded, read-only through the API) -------------------------------

    def seed_vnet(self, group: str, vnet: str, subnet: str, cidr: str, location: str) -> str:
        """Create vnet + subnet; returns the subnet id."""
        vnet_id = f"{group_id(self.sub, group)}/providers/{NS}/virtualNetworks/{vnet}"
        subnet_id = f"{vnet_id}/subnets/{subnet}"
        self.vnets[vnet_id.lower()] = {
            "id": vnet_id,
            "name": vnet,
            "type": f"{NS}/virtualNetworks",
            "location": location,
            "etag": f'W/"{uuid.uuid4()}"',
            "tags": {},
            "properties": {
                "provisioningState": "Succeeded",
                "resourceGuid": str(uuid.uuid4()),
                "addressSpace": {"addressPrefixes": [cidr]},
                "subnets": [
                    {
                        "id": subnet_id,
                        "name": subnet,
                        "type": f"{NS}/virtualNetworks/subnets",
                        "properties": {"addressPrefix": cidr, "provisioningState": "Succeeded"},
                    }
                ],
            },
        }
        self._subnet_used[subnet_id.lower()] = set()
        return subnet_id

    def get_vnet(self, group: str, name: str) -> dict[str, Any]:
        vnet_id = f"{group_id(self.sub, group)}/providers/{NS}/virtualNetworks/{name}"
        vnet = self.vnets.get(vnet_id.lower())
        if vnet is None:
            raise not_found(f"{NS}/virtualNetworks", name, group)
        return self._with_ip_configs(vnet)

    def get_subnet(self, group: str, vnet: str, name: str) -> dict[str, Any]:
        subnets: list[dict[str, Any]] = self.get_vnet(group, vnet)["properties"]["subnets"]
        for subnet in subnets:
            if subnet["name"].lower() == name.lower():
                return subnet
        raise not_found(f"{NS}/virtualNetworks/{vnet}/subnets", name, group)

    def _with_ip_configs(self, vnet: dict[str, Any]) -> dict[str, Any]:
        out = {**vnet, "properties": {**vnet["properties"], "subnets": []}}
        for subnet in vnet["properties"]["subnets"]:
            configs = [
                {"id": c["id"]}
                for nic in self.nics.values()
                for c in nic["properties"]["ipConfigurations"]
                if c["properties"]["subnet"]["id"].lower() == subnet["id"].lower()
            ]
            props = {**subnet["properties"], "ipConfigurations": configs}
            out["properties"]["subnets"].append({**subnet, "properties": props})
        return out

    def _subnet_by_id(self, subnet_id: str) -> dict[str, Any]:
        for vnet in self.vnets.values():
            subnets: list[dict[str, Any]] = vnet["properties"]["subnets"]
            for subnet in subnets:
                if subnet["id"].lower() == subnet_id.lower():
                    return subnet
        raise ArmError(
            400,
            "InvalidResourceReference",
            f"Resource {subnet_id} referenced by resource was not found. Please make "
            "sure that the referenced resource exists, and that both resources are "
            "in the same region.",
        )

    def _allocate(self, subnet_id: str, requested: str | None) -> str:
        subnet = self._subnet_by_id(subnet_id)
        net = ipaddress.ip_network(subnet["properties"]["addressPrefix"])
        used = self._subnet_used[subnet["id"].lower()]
        if requested:
            if ipaddress.ip_address(requested) not in net:
                raise invalid(
                    f"Private static IP address {requested} does not belong to the "
                    f"range of subnet prefix {net}.",
                    "PrivateIPAddressNotInSubnet",
                )
            if requested in used:
                raise invalid(
                    f"IP configuration is using the private IP address {requested} "
                    "which is already allocated to another resource.",
                    "PrivateIPAddressInUse",
                )
            used.add(requested)
            return requested
        for n, host in enumerate(net.hosts()):
            if n < 3:  # Azure reserves .0 (network), .1 (gateway) and .2-.3 (DNS)
                continue
            if str(host) not in used:
                used.add(str(host))
                return str(host)
        raise invalid(f"Subnet {subnet['name']} has no free addresses.", "SubnetIsFull")

    # -- network interfaces ---------------------------------------------------------------

    def nic_id(self, group: str, name: str) -> str:
        return f"{group_id(self.sub, group)}/providers/{NS}/networkInterfaces/{name}"

    def nic_by_id(self, nic_id: str) -> dict[str, Any] | None:
        return self.nics.get(nic_id.lower())

    def get_nic(self, group: str, name: str) -> dict[str, Any]:
        nic = self.nics.get(self.nic_id(group, name).lower())
        if nic is None:
            raise not_found(f"{NS}/networkInterfaces", name, group)
        return nic

    def list_nics(self, group: str) -> list[dict[str, Any]]:
        prefix = group_id(self.sub, group).lower() + "/"
        return [n for k, n in self.nics.items() if k.startswith(prefix)]

    def private_ip(self, nic_id: str) -> str | None:
        nic = self.nic_by_id(nic_id)
        if nic is None:
            return None
        configs = nic["properties"]["ipConfigurations"]
        primary = next((c for c in configs if c["properties"].get("primary")), configs[0])
        return str(primary["properties"]["privateIPAddress"])

    def put_nic(self, group: str, name: str, location: str, body: dict[str, Any]) -> web.Response:
        nic_id = self.nic_id(group, name)
        existing = self.nics.get(nic_id.lower())
        if existing is not None:  # ARM PUT is an upsert; keep the addresses, update tags
            existing["tags"] = body.get("tags") or existing.get("tags") or {}
            return web.json_response(existing, status=200)
        props = body.get("properties") or {}
        configs_in = props.get("ipConfigurations") or []
        if not configs_in:
            raise invalid(
                "Network interface must have at least one IP configuration.",
                "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
            )
        configs: list[dict[str, Any]] = []
        allocated: list[tuple[str, str]] = []
        try:
            for i, cfg in enumerate(configs_in):
                cprops = cfg.get("properties") or {}
                subnet_id = (cprops.get("subnet") or {}).get("id")
                if not subnet_id:
                    raise invalid(f"IP configuration {cfg.get('name')} must reference a subnet.")
                static = cprops.get("privateIPAllocationMethod", "Dynamic") == "Static"
                ip = self._allocate(subnet_id, cprops.get("privateIPAddress") if static else None)
                allocated.append((subnet_id, ip))
                cname = cfg.get("name") or f"ipconfig{i + 1}"
                configs.append(
                    {
                        "id": f"{nic_id}/ipConfigurations/{cname}",
                        "name": cname,
                        "type": f"{NS}/networkInterfaces/ipConfigurations",
                        "properties": {
                            "provisioningState": "Succeeded",
                            "privateIPAddress": ip,
                            "privateIPAllocationMethod": "Static" if static else "Dynamic",
                            "privateIPAddressVersion": "IPv4",
                            "subnet": {"id": self._subnet_by_id(subnet_id)["id"]},
                            "primary": bool(cprops.get("primary", i == 0)),
                        },
                    }
                )
        except ArmError:
            for subnet_id, ip in allocated:
                self._subnet_used[subnet_id.lower()].discard(ip)
            raise
        nic: dict[str, Any] = {
            "id": nic_id,
            "name": name,
            "type": f"{NS}/networkInterfaces",
            "location": location,
            "tags": body.get("tags") or {},
            "etag": f'W/"{uuid.uuid4()}"',
            "properties": {
                "provisioningState": "Updating",
                "resourceGuid": str(uuid.uuid4()),
                "ipConfigurations": configs,
                "enableAcceleratedNetworking": False,
                "enableIPForwarding": False,
                "nicType": "Standard",
            },
        }
        self.nics[nic_id.lower()] = nic

        async def provisioned() -> None:
            nic["properties"]["provisioningState"] = "Succeeded"

        op = self.ops.start(NS, location, self.nic_seconds, provisioned)
        return self.ops.created(op, nic)

    def delete_nic(self, group: str, name: str) -> web.Response:
        nic = self.nics.get(self.nic_id(group, name).lower())
        if nic is None:
            return web.Response(status=204)  # ARM: deleting what is not there is a no-op
        vm = nic["properties"].get("virtualMachine")
        if vm:
            raise ArmError(
                400,
                "NicInUse",
                f"Network Interface {nic['id']} is used by existing resource "
                f"{vm['id']}. In order to delete the network interface, it must be "
                "dissociated from the resource.",
            )
        nic["properties"]["provisioningState"] = "Deleting"

        async def deleted() -> None:
            self.nics.pop(nic["id"].lower(), None)
            for cfg in nic["properties"]["ipConfigurations"]:
                used = self._subnet_used.get(cfg["properties"]["subnet"]["id"].lower(), set())
                used.discard(cfg["properties"]["privateIPAddress"])

        op = self.ops.start(NS, nic["location"], self.nic_seconds, deleted)
        return self.ops.accepted(op)

    def attach(self, nic_id: str, vm_id: str) -> None:
        nic = self.nic_by_id(nic_id)
        if nic is None:
            raise ArmError(
                400,
                "InvalidResourceReference",
                f"Resource {nic_id} referenced by resource {vm_id} was not found.",
            )
        current = nic["properties"].get("virtualMachine")
        if current and current["id"].lower() != vm_id.lower():
            raise ArmError(
                400,
                "NicInUse",
                f"Network Interface {nic['id']} is used by existing resource {current['id']}.",
            )
        nic["properties"]["virtualMachine"] = {"id": vm_id}
        nic["properties"]["macAddress"] = "00-0D-3A-" + "-".join(
            f"{b:02X}" for b in uuid.uuid5(uuid.NAMESPACE_URL, nic_id).bytes[:3]
        )

    def detach(self, nic_id: str) -> None:
        nic = self.nic_by_id(nic_id)
        if nic is not None:
            nic["properties"].pop("virtualMachine", None)
