"""SIMULATED Microsoft.Network: virtual networks, subnets and network interfaces.

VNets and subnets are created, read, listed and deleted as ARM does (PUT answers 201 Updating
with `Azure-AsyncOperation`; a VNet PUT's `subnets` are authoritative; subnet prefixes must lie
inside the VNet's address space and not overlap; a subnet or VNet whose addresses NICs use
cannot be deleted: `InUseSubnetCannotBeDeleted`). A NIC must reference an existing subnet
(`InvalidResourceReference`, 400). A NIC's private IP is dynamic (the lowest free address after
the 4 Azure reserves) or a requested static one; a VM's host listens on it, so subnets whose VMs
should be reachable use loopback prefixes (the twin's default subnet does). Used by
`sim.cloud.azure.AzureTwin` (routes) and `sim.cloud.azure_compute` (attach/detach, NIC IP).
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

    # -- virtual networks and subnets -----------------------------------------------------

    def vnet_id(self, group: str, name: str) -> str:
        return f"{group_id(self.sub, group)}/providers/{NS}/virtualNetworks/{name}"

    def seed_vnet(self, group: str, vnet: str, subnet: str, cidr: str, location: str) -> str:
        """Create vnet + subnet at start-up (as an admin would have); returns the subnet id."""
        vnet_id = self.vnet_id(group, vnet)
        self.vnets[vnet_id.lower()] = self._new_vnet(vnet_id, vnet, location, [cidr], {})
        self._add_subnet(self.vnets[vnet_id.lower()], subnet, cidr)
        self.vnets[vnet_id.lower()]["properties"]["provisioningState"] = "Succeeded"
        return f"{vnet_id}/subnets/{subnet}"

    def _new_vnet(
        self, vnet_id: str, name: str, location: str, prefixes: list[str], tags: dict[str, str]
    ) -> dict[str, Any]:
        return {
            "id": vnet_id,
            "name": name,
            "type": f"{NS}/virtualNetworks",
            "location": location,
            "etag": f'W/"{uuid.uuid4()}"',
            "tags": tags,
            "properties": {
                "provisioningState": "Updating",
                "resourceGuid": str(uuid.uuid4()),
                "addressSpace": {"addressPrefixes": prefixes},
                "subnets": [],
                "virtualNetworkPeerings": [],
                "enableDdosProtection": False,
            },
        }

    def _vnet(self, group: str, name: str) -> dict[str, Any]:
        vnet = self.vnets.get(self.vnet_id(group, name).lower())
        if vnet is None:
            raise not_found(f"{NS}/virtualNetworks", name, group)
        return vnet

    def get_vnet(self, group: str, name: str) -> dict[str, Any]:
        return self._with_ip_configs(self._vnet(group, name))

    def list_vnets(self, group: str) -> list[dict[str, Any]]:
        prefix = group_id(self.sub, group).lower() + "/"
        return [self._with_ip_configs(v) for k, v in self.vnets.items() if k.startswith(prefix)]

    def get_subnet(self, group: str, vnet: str, name: str) -> dict[str, Any]:
        subnets: list[dict[str, Any]] = self.get_vnet(group, vnet)["properties"]["subnets"]
        for subnet in subnets:
            if subnet["name"].lower() == name.lower():
                return subnet
        raise not_found(f"{NS}/virtualNetworks/{vnet}/subnets", name, group)

    def list_subnets(self, group: str, vnet: str) -> list[dict[str, Any]]:
        subnets: list[dict[str, Any]] = self.get_vnet(group, vnet)["properties"]["subnets"]
        return subnets

    def _with_ip_configs(self, vnet: dict[str, Any]) -> dict[str, Any]:
        out = {**vnet, "properties": {**vnet["properties"], "subnets": []}}
        for subnet in vnet["properties"]["subnets"]:
            configs = [{"id": c} for c in self._users(subnet["id"])]
            props = {**subnet["properties"]}
            if configs:
                props["ipConfigurations"] = configs
            out["properties"]["subnets"].append({**subnet, "properties": props})
        return out

    def _users(self, subnet_id: str) -> list[str]:
        """The NIC IP configurations in a subnet."""
        return [
            c["id"]
            for nic in self.nics.values()
            for c in nic["properties"]["ipConfigurations"]
            if c["properties"]["subnet"]["id"].lower() == subnet_id.lower()
        ]

    def _check_prefix(self, vnet: dict[str, Any], name: str, prefix: str, owner: str) -> Any:
        try:
            net = ipaddress.ip_network(prefix)
        except ValueError:
            raise invalid(
                f"Address prefix {prefix} of resource {owner} is not formatted correctly. It "
                "should follow CIDR notation, for example 10.0.0.0/24.",
                "InvalidAddressPrefixFormat",
            ) from None
        spaces = [
            ipaddress.ip_network(p) for p in vnet["properties"]["addressSpace"]["addressPrefixes"]
        ]
        if not any(net.version == s.version and net.subnet_of(s) for s in spaces):  # type: ignore[arg-type]
            raise invalid(
                f"Subnet '{name}' is not valid because its IP address range is outside the IP "
                f"address range of virtual network '{vnet['name']}'.",
                "NetcfgSubnetRangeOutsideVnet",
            )
        for other in vnet["properties"]["subnets"]:
            if other["name"].lower() == name.lower():
                continue
            if net.overlaps(ipaddress.ip_network(other["properties"]["addressPrefix"])):
                raise invalid(
                    f"Subnet '{name}' is not valid in virtual network '{vnet['name']}' because "
                    f"its IP address range overlaps with that of an existing subnet "
                    f"'{other['name']}'.",
                    "NetcfgSubnetRangesOverlap",
                )
        return net

    def _add_subnet(self, vnet: dict[str, Any], name: str, prefix: str) -> dict[str, Any]:
        subnet_id = f"{vnet['id']}/subnets/{name}"
        subnet = {
            "id": subnet_id,
            "name": name,
            "type": f"{NS}/virtualNetworks/subnets",
            "etag": f'W/"{uuid.uuid4()}"',
            "properties": {
                "addressPrefix": prefix,
                "provisioningState": "Succeeded",
                "privateEndpointNetworkPolicies": "Disabled",
                "privateLinkServiceNetworkPolicies": "Enabled",
            },
        }
        vnet["properties"]["subnets"].append(subnet)
        self._subnet_used.setdefault(subnet_id.lower(), set())
        return subnet

    def _refuse_in_use(self, subnet: dict[str, Any]) -> None:
        users = self._users(subnet["id"])
        if users:
            raise invalid(
                f"Subnet {subnet['name']} is in use by {users[0]} and cannot be deleted. In order "
                "to delete the subnet, delete all the resources within the subnet. See "
                "aka.ms/deletesubnet.",
                "InUseSubnetCannotBeDeleted",
            )

    def _provisioning(self, resource: dict[str, Any], location: str, status: int) -> web.Response:
        resource["properties"]["provisioningState"] = "Updating"

        async def provisioned() -> None:
            resource["properties"]["provisioningState"] = "Succeeded"

        op = self.ops.start(NS, location, self.nic_seconds, provisioned)
        return self.ops.created(op, resource, status=status)

    def put_vnet(self, group: str, name: str, location: str, body: dict[str, Any]) -> web.Response:
        vnet_id = self.vnet_id(group, name)
        props = body.get("properties") or {}
        prefixes = list((props.get("addressSpace") or {}).get("addressPrefixes") or [])
        for prefix in prefixes:
            try:
                ipaddress.ip_network(prefix)
            except ValueError:
                raise invalid(
                    f"Address prefix {prefix} of resource {vnet_id} is not formatted correctly. "
                    "It should follow CIDR notation, for example 10.0.0.0/24.",
                    "InvalidAddressPrefixFormat",
                ) from None
        existing = self.vnets.get(vnet_id.lower())
        vnet = self._new_vnet(vnet_id, name, location, prefixes, body.get("tags") or {})
        old_subnets = {s["name"]: s for s in (existing or vnet)["properties"]["subnets"]}
        if existing is not None:
            vnet["properties"]["resourceGuid"] = existing["properties"]["resourceGuid"]
        wanted = {
            (sub.get("name") or ""): ((sub.get("properties") or {}).get("addressPrefix") or "")
            for sub in props.get("subnets") or []
        }
        for old_name, old in old_subnets.items():
            if old_name not in wanted:
                self._refuse_in_use(old)
        for sub_name, prefix in wanted.items():
            self._check_prefix(vnet, sub_name, prefix, f"{vnet_id}/subnets/{sub_name}")
            old = old_subnets.get(sub_name)
            if old is not None and old["properties"]["addressPrefix"] != prefix:
                self._refuse_in_use(old)
            self._add_subnet(vnet, sub_name, prefix)
        for old_name, old in old_subnets.items():
            if old_name not in wanted:
                self._subnet_used.pop(old["id"].lower(), None)
        self.vnets[vnet_id.lower()] = vnet
        return self._provisioning(vnet, location, 200 if existing is not None else 201)

    def delete_vnet(self, group: str, name: str) -> web.Response:
        vnet = self.vnets.get(self.vnet_id(group, name).lower())
        if vnet is None:
            return web.Response(status=204)
        for subnet in vnet["properties"]["subnets"]:
            self._refuse_in_use(subnet)

        async def deleted() -> None:
            self.vnets.pop(vnet["id"].lower(), None)
            for subnet in vnet["properties"]["subnets"]:
                self._subnet_used.pop(subnet["id"].lower(), None)

        op = self.ops.start(NS, vnet["location"], self.nic_seconds, deleted)
        return self.ops.accepted(op)

    def put_subnet(
        self, group: str, vnet_name: str, name: str, body: dict[str, Any]
    ) -> web.Response:
        vnet = self._vnet(group, vnet_name)
        prefix = str((body.get("properties") or {}).get("addressPrefix") or "")
        subnet_id = f"{vnet['id']}/subnets/{name}"
        self._check_prefix(vnet, name, prefix, subnet_id)
        existing = next((s for s in vnet["properties"]["subnets"] if s["name"] == name), None)
        if existing is not None:
            if existing["properties"]["addressPrefix"] != prefix:
                self._refuse_in_use(existing)
            existing["properties"]["addressPrefix"] = prefix
            subnet = existing
        else:
            subnet = self._add_subnet(vnet, name, prefix)
        return self._provisioning(subnet, vnet["location"], 200 if existing else 201)

    def delete_subnet(self, group: str, vnet_name: str, name: str) -> web.Response:
        vnet = self._vnet(group, vnet_name)
        subnet = next((s for s in vnet["properties"]["subnets"] if s["name"] == name), None)
        if subnet is None:
            return web.Response(status=204)
        self._refuse_in_use(subnet)

        async def deleted() -> None:
            vnet["properties"]["subnets"] = [
                s for s in vnet["properties"]["subnets"] if s["id"] != subnet["id"]
            ]
            self._subnet_used.pop(subnet["id"].lower(), None)

        op = self.ops.start(NS, vnet["location"], self.nic_seconds, deleted)
        return self.ops.accepted(op)

    def _subnet_by_id(self, subnet_id: str, referrer: str) -> dict[str, Any]:
        for vnet in self.vnets.values():
            subnets: list[dict[str, Any]] = vnet["properties"]["subnets"]
            for subnet in subnets:
                if subnet["id"].lower() == subnet_id.lower():
                    return subnet
        raise ArmError(
            400,
            "InvalidResourceReference",
            f"Resource {subnet_id} referenced by resource {referrer} was not found. Please make "
            "sure that the referenced resource exists, and that both resources are in the same "
            "region.",
        )

    def prefix_length(self, address: str) -> int:
        """The prefix length of the subnet that holds `address` (24 if none does)."""
        ip = ipaddress.ip_address(address)
        for vnet in self.vnets.values():
            for subnet in vnet["properties"]["subnets"]:
                net = ipaddress.ip_network(subnet["properties"]["addressPrefix"])
                if ip in net:
                    return net.prefixlen
        return 24

    def _allocate(self, subnet_id: str, requested: str | None, referrer: str) -> str:
        subnet = self._subnet_by_id(subnet_id, referrer)
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
                requested = cprops.get("privateIPAddress") if static else None
                ip = self._allocate(subnet_id, requested, nic_id)
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
                            "subnet": {"id": self._subnet_by_id(subnet_id, nic_id)["id"]},
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
