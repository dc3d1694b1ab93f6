"""SIMULATED Microsoft.Compute: virtual machines with Azure's validation and lifecycle.

A PUT validates like Azure does for a Windows VM (computer name at most 15 characters, admin
password required and complex, NICs must exist and be free, user data and custom data must be
base64), attaches the NICs and answers 201 Creating; after `provision_seconds` the VM is
Succeeded and `on_ready(vm, private_ip, custom_data)` fires (the twin boots a simulated host
there, with the decoded custom data in `C:\\AzureData\\CustomData.bin`). As on Azure, neither
`userData` nor `customData` is ever run on a Windows VM: `userData` is only kept (GET
`$expand=userData`); a VM extension (`azure_extensions`) runs scripts. `powerOff`, `deallocate`,
`start` and `restart` (POST, 202 + `Azure-AsyncOperation`) move the power state shown in
`$expand=instanceView` (`PowerState/stopping` -> `stopped`, `deallocating` -> `deallocated`,
`starting` -> `running`) and fire `on_power(vm, action)` when done (the twin stops, starts or
reboots the host; the NIC, hence the private IP, stays). DELETE answers 202; when done the NICs
are detached (or deleted, with deleteOption Delete) and `on_deleted(vm, private_ip)` fires.
Used by `sim.cloud.azure.AzureTwin`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sim.cloud.azure_arm import ArmError, Operations, invalid, not_found, now_iso
from sim.cloud.azure_network import Network, group_id
from sim.cloud.hosts import windows_build

NS = "Microsoft.Compute"
_BAD_COMPUTER_NAME = re.compile(r"[`~!@#$%^&*()=+_\[\]{}\\|;:.'\",<>/?\s]")

ReadyHook = Callable[[dict[str, Any], str, "bytes | None"], Awaitable[None]]
DeletedHook = Callable[[dict[str, Any], str], Awaitable[None]]
PowerHook = Callable[[dict[str, Any], str], Awaitable[None]]
# action -> (power state while it runs, power state after it)
_POWER_ACTIONS = {
    "powerOff": ("stopping", "stopped"),
    "deallocate": ("deallocating", "deallocated"),
    "start": ("starting", "running"),
    "restart": ("starting", "running"),
}


def _b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid(
            f"The value of parameter {field} is invalid: it must be base64 encoded."
        ) from exc


def _check_password(password: str | None) -> None:
    if not password:
        raise invalid("Required parameter 'adminPassword' is missing (null).")
    classes = sum(bool(re.search(p, password)) for p in ("[a-z]", "[A-Z]", "[0-9]", r"[^\w]"))
    if not 8 <= len(password) <= 123 or classes < 3:
        raise invalid(
            "The supplied password must be between 8-123 characters long and must "
            "satisfy at least 3 of password complexity requirements from the "
            "following: 1) Contains an uppercase character 2) Contains a lowercase "
            "character 3) Contains a numeric digit 4) Contains a special character "
            "5) Control characters are not allowed"
        )


def _check_computer_name(name: str | None) -> None:
    if not name:
        raise invalid("Required parameter 'osProfile.computerName' is missing (null).")
    if len(name) > 15 or name.isdigit() or _BAD_COMPUTER_NAME.search(name):
        raise invalid(
            f"Windows computer name '{name}' cannot be more than 15 characters long, "
            "be entirely numeric, or contain the following characters: "
            "` ~ ! @ # $ % ^ & * ( ) = + _ [ ] { } \\ | ; : . ' \" , < > / ?."
        )


class Compute:
    """Virtual machines of one subscription (keys are lowercase ids)."""

    def __init__(
        self,
        subscription_id: str,
        ops: Operations,
        network: Network,
        *,
        provision_seconds: float,
        on_ready: ReadyHook,
        on_deleted: DeletedHook,
        on_power: PowerHook,
    ) -> None:
        self.sub = subscription_id
        self.ops = ops
        self.network = network
        self.provision_seconds = provision_seconds
        self.on_ready, self.on_deleted, self.on_power = on_ready, on_deleted, on_power
        self._power: dict[str, str] = {}  # vm id (lower) -> power state
        self.vms: dict[str, dict[str, Any]] = {}
        self._user_data: dict[str, bytes | None] = {}

    def vm_id(self, group: str, name: str) -> str:
        return f"{group_id(self.sub, group)}/providers/{NS}/virtualMachines/{name}"

    def primary_ip(self, vm: dict[str, Any]) -> str | None:
        """The private IP of the VM's primary NIC (None if the NIC has none)."""
        return self._primary_ip(vm)

    def _primary_ip(self, vm: dict[str, Any]) -> str | None:
        nics = vm["properties"]["networkProfile"]["networkInterfaces"]
        primary = next((n for n in nics if (n.get("properties") or {}).get("primary")), nics[0])
        return self.network.private_ip(primary["id"])

    def _view(self, vm: dict[str, Any], expand: str | None) -> dict[str, Any]:
        out = copy.deepcopy(vm)
        expand = (expand or "").lower()
        if "userdata" in expand and self._user_data.get(vm["id"].lower()) is not None:
            out["properties"]["userData"] = base64.b64encode(
                self._user_data[vm["id"].lower()] or b""
            ).decode()
        if "instanceview" in expand:
            state = vm["properties"]["provisioningState"]
            power = {"Succeeded": "running", "Creating": "starting", "Deleting": "stopping"}.get(
                state, "unknown"
            )
            if state == "Succeeded":
                power = self._power.get(vm["id"].lower(), "running")
            out["properties"]["instanceView"] = {
                "computerName": vm["properties"]["osProfile"]["computerName"],
                "osName": "Windows Server Datacenter",
                "osVersion": windows_build(
                    str(vm["properties"]["storageProfile"]["imageReference"].get("sku", ""))
                ),
                "statuses": [
                    {
                        "code": f"ProvisioningState/{state.lower()}",
                        "level": "Info",
                        "displayStatus": f"Provisioning {state.lower()}",
                    },
                    {
                        "code": f"PowerState/{power}",
                        "level": "Info",
                        "displayStatus": f"VM {power}",
                    },
                ],
            }
        return out

    def get(self, group: str, name: str, expand: str | None = None) -> dict[str, Any]:
        vm = self.vms.get(self.vm_id(group, name).lower())
        if vm is None:
            raise not_found(f"{NS}/virtualMachines", name, group)
        return self._view(vm, expand)

    def list(self, group: str | None) -> list[dict[str, Any]]:
        prefix = (group_id(self.sub, group).lower() + "/") if group else ""
        return [self._view(v, None) for k, v in self.vms.items() if k.startswith(prefix)]

    def put(self, group: str, name: str, location: str, body: dict[str, Any]) -> web.Response:
        vm_id = self.vm_id(group, name)
        existing = self.vms.get(vm_id.lower())
        if existing is not None:  # upsert: only tags may change in the twin
            existing["tags"] = body.get("tags") or existing.get("tags") or {}
            return web.json_response(self._view(existing, None), status=200)
        props = copy.deepcopy(body.get("properties") or {})
        if not (props.get("hardwareProfile") or {}).get("vmSize"):
            raise invalid("Required parameter 'hardwareProfile.vmSize' is missing (null).")
        storage = props.get("storageProfile") or {}
        if not storage.get("imageReference"):
            raise invalid("Required parameter 'storageProfile.imageReference' is missing.")
        os_profile = props.get("osProfile") or {}
        _check_computer_name(os_profile.get("computerName"))
        if not os_profile.get("adminUsername"):
            raise invalid("Required parameter 'osProfile.adminUsername' is missing (null).")
        _check_password(os_profile.get("adminPassword"))
        user_data = _b64(props["userData"], "userData") if props.get("userData") else None
        custom_data = (
            _b64(os_profile["customData"], "osProfile.customData")
            if os_profile.get("customData")
            else None
        )
        nics = (props.get("networkProfile") or {}).get("networkInterfaces") or []
        if not nics:
            raise invalid(
                "At least one network interface is required: 'networkProfile.networkInterfaces'."
            )
        attached: list[str] = []
        try:
            for nic in nics:
                self.network.attach(nic.get("id", ""), vm_id)
                attached.append(nic["id"])
        except ArmError:
            for nic_id in attached:
                self.network.detach(nic_id)
            raise
        props.pop("userData", None)
        os_profile.pop("adminPassword", None)
        os_profile.pop("customData", None)
        storage.setdefault(
            "osDisk",
            {
                "osType": "Windows",
                "createOption": "FromImage",
                "name": f"{name}_OsDisk_1_{uuid.uuid4().hex}",
            },
        )
        props.update(
            osProfile=os_profile,
            storageProfile=storage,
            provisioningState="Creating",
            vmId=str(uuid.uuid4()),
            timeCreated=now_iso(),
        )
        vm: dict[str, Any] = {
            "id": vm_id,
            "name": name,
            "type": f"{NS}/virtualMachines",
            "location": location,
            "tags": body.get("tags") or {},
            "properties": props,
        }
        self.vms[vm_id.lower()] = vm
        self._user_data[vm_id.lower()] = user_data

        async def provisioned() -> None:
            vm["properties"]["provisioningState"] = "Succeeded"
            address = self._primary_ip(vm)
            if address:
                await self.on_ready(vm, address, custom_data)

        op = self.ops.start(NS, location, self.provision_seconds, provisioned)
        return self.ops.created(op, self._view(vm, None))

    def delete(self, group: str, name: str) -> web.Response:
        vm = self.vms.get(self.vm_id(group, name).lower())
        if vm is None:
            return web.Response(status=204)
        if vm["properties"]["provisioningState"] == "Deleting":
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation 'delete' is not allowed on VM '{name}' since the VM is "
                "marked for deletion.",
            )
        vm["properties"]["provisioningState"] = "Deleting"
        address = self._primary_ip(vm)

        async def deleted() -> None:
            self.vms.pop(vm["id"].lower(), None)
            self._power.pop(vm["id"].lower(), None)
            self._user_data.pop(vm["id"].lower(), None)
            for nic in vm["properties"]["networkProfile"]["networkInterfaces"]:
                self.network.detach(nic["id"])
                if (nic.get("properties") or {}).get("deleteOption") == "Delete":
                    found = self.network.nic_by_id(nic["id"])
                    if found is not None:
                        group = nic["id"].split("/")[4]
                        self.network.delete_nic(group, found["name"])
            if address:
                await self.on_deleted(vm, address)

        op = self.ops.start(NS, vm["location"], self.provision_seconds / 2, deleted)
        return self.ops.accepted(op)

    def power(self, group: str, name: str, action: str) -> web.Response:
        """POST .../virtualMachines/{name}/{action}: powerOff, deallocate, start, restart."""
        vm = self.vms.get(self.vm_id(group, name).lower())
        if vm is None:
            raise not_found(f"{NS}/virtualMachines", name, group)
        state = vm["properties"]["provisioningState"]
        if state != "Succeeded":
            why = "marked for deletion" if state == "Deleting" else f"in provisioning state {state}"
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation '{action}' is not allowed on VM '{name}' since the VM is {why}.",
            )
        key = vm["id"].lower()
        current = self._power.get(key, "running")
        if action == "restart" and current in ("stopped", "deallocated"):
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation 'restart' is not allowed on VM '{name}' since the VM is {current}.",
            )
        during, after = _POWER_ACTIONS[action]
        self._power[key] = during

        async def done() -> None:
            self._power[key] = after
            await self.on_power(vm, action)

        op = self.ops.start(NS, vm["location"], self.provision_seconds / 2, done)
        return self.ops.posted(op)
