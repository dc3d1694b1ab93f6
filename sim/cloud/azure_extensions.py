"""SIMULATED Microsoft.Compute VM extensions: the CustomScriptExtension, as Azure runs it.

`PUT .../virtualMachines/{vm}/extensions/{name}` (the VM must exist and be Succeeded) answers
201 Creating (200 Updating for a change) with `Azure-AsyncOperation`; the operation waits for
the VM's host to finish booting, runs `commandToExecute` (from `protectedSettings`, else
`settings`) through the host's command interpreter (`await host.run(line)`, the cmd.exe exec
channel) and ends Succeeded if it exits 0, else Failed with `VMExtensionProvisioningError` (the
extension's `provisioningState` Failed, `instanceView.statuses` `ProvisioningState/failed/<code>`).
A PUT with the same publisher/type/version/settings/protectedSettings/forceUpdateTag runs
nothing again (its operation reports the earlier outcome), as on Azure. `protectedSettings` are
never returned. GET (`$expand=instanceView`) and DELETE (202 + `Location`; the script's effects
stay) work as for VMs. Only `Microsoft.Compute/CustomScriptExtension` 1.x exists here, and it
downloads nothing (`fileUris` fail). Used by `sim.cloud.azure.AzureTwin`.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sim.cloud.azure_arm import ArmError, Operations, invalid, not_found
from sim.cloud.azure_compute import NS, Compute
from sim.windows.environment import SYSTEM_ACCOUNT

EXT_TYPE = f"{NS}/virtualMachines/extensions"
PUBLISHER, TYPE = "Microsoft.Compute", "CustomScriptExtension"
OUTPUT_LIMIT = 4096  # characters of stdout/stderr kept in the instance view
HostFinder = Callable[[str], Awaitable[Any]]  # VM id -> its booted host, or None


@dataclass
class _Extension:
    resource: dict[str, Any]  # what GET shows (no protectedSettings)
    fingerprint: str
    command: str | None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: ArmError | None = None
    instance_view: dict[str, Any] | None = None


def _parent_not_found(vm_name: str) -> ArmError:
    return ArmError(
        404,
        "ParentResourceNotFound",
        f"Can not perform requested operation on nested resource. Parent resource "
        f"'{vm_name}' not found.",
    )


def _status(state: str, level: str, message: str, code: str | None = None) -> dict[str, Any]:
    return {
        "code": code or f"ProvisioningState/{state.lower()}",
        "level": level,
        "displayStatus": f"Provisioning {state.lower()}",
        "message": message,
    }


class Extensions:
    """The VM extensions of one subscription (keys: lowercase extension ids)."""

    def __init__(self, ops: Operations, compute: Compute, host_for: HostFinder) -> None:
        self.ops = ops
        self.compute = compute
        self.host_for = host_for
        self._exts: dict[str, _Extension] = {}

    def _vm(self, group: str, vm_name: str) -> dict[str, Any]:
        vm = self.compute.vms.get(self.compute.vm_id(group, vm_name).lower())
        if vm is None:
            raise _parent_not_found(vm_name)
        return vm

    def _find(self, group: str, vm_name: str, name: str) -> _Extension:
        vm = self._vm(group, vm_name)
        ext = self._exts.get(f"{vm['id']}/extensions/{name}".lower())
        if ext is None:
            raise not_found(f"{NS}/virtualMachines/{vm_name}/extensions", name, group)
        return ext

    def _view(self, ext: _Extension, expand: str | None) -> dict[str, Any]:
        out = copy.deepcopy(ext.resource)
        if "instanceview" in (expand or "").lower() and ext.instance_view is not None:
            out["properties"]["instanceView"] = copy.deepcopy(ext.instance_view)
        return out

    def get(self, group: str, vm_name: str, name: str, expand: str | None) -> dict[str, Any]:
        return self._view(self._find(group, vm_name, name), expand)

    def list(self, group: str, vm_name: str) -> list[dict[str, Any]]:
        prefix = (self._vm(group, vm_name)["id"] + "/extensions/").lower()
        return [self._view(e, None) for k, e in self._exts.items() if k.startswith(prefix)]

    def put(self, group: str, vm_name: str, name: str, body: dict[str, Any]) -> web.Response:
        vm = self._vm(group, vm_name)
        if vm["properties"]["provisioningState"] != "Succeeded":
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation 'Put extension' is not allowed on VM '{vm_name}' since the VM is in "
                f"provisioning state '{vm['properties']['provisioningState']}'.",
            )
        location = body.get("location") or vm["location"]
        if str(location).replace(" ", "").lower() != vm["location"].lower():
            raise invalid(
                f"The location '{location}' of extension '{name}' does not match the location "
                f"'{vm['location']}' of VM '{vm_name}'."
            )
        props = copy.deepcopy(body.get("properties") or {})
        for required in ("publisher", "type", "typeHandlerVersion"):
            if not props.get(required):
                raise invalid(f"Required parameter '{required}' is missing (null).")
        publisher, kind = str(props["publisher"]), str(props["type"])
        version = str(props["typeHandlerVersion"])
        if (publisher.lower(), kind.lower()) != (PUBLISHER.lower(), TYPE.lower()) or (
            not version.startswith("1.")
        ):
            raise ArmError(
                404,
                "ArtifactNotFound",
                f"The VM extension with publisher '{publisher}', type '{kind}' and type "
                f"handler version '{version}' could not be found in the extension repository.",
            )
        protected = props.pop("protectedSettings", None) or {}
        settings = props.get("settings") or {}
        fingerprint = json.dumps(
            [
                publisher.lower(),
                kind.lower(),
                version,
                settings,
                protected,
                props.get("forceUpdateTag"),
            ],
            sort_keys=True,
        )
        ext_id = f"{vm['id']}/extensions/{name}"
        existing = self._exts.get(ext_id.lower())
        if existing is not None and existing.fingerprint == fingerprint:
            return self._same_again(existing)
        if existing is not None and not existing.done.is_set():
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"An operation on extension '{name}' of VM '{vm_name}' is in progress; retry "
                "after it completes.",
            )
        problem = _command_problem(settings, protected)
        command = protected.get("commandToExecute") or settings.get("commandToExecute")
        props.update(provisioningState="Updating" if existing else "Creating")
        ext = _Extension(
            resource={
                "id": ext_id,
                "name": name,
                "type": EXT_TYPE,
                "location": vm["location"],
                "tags": body.get("tags") or {},
                "properties": props,
            },
            fingerprint=fingerprint,
            command=None if problem else str(command),
        )
        self._exts[ext_id.lower()] = ext
        op = self.ops.start(NS, vm["location"], 0, lambda: self._run(vm, ext, problem))
        return self.ops.created(op, self._view(ext, None), status=200 if existing else 201)

    def _same_again(self, ext: _Extension) -> web.Response:
        """A PUT of unchanged settings: nothing runs; the operation ends as the first did."""

        async def outcome() -> None:
            await ext.done.wait()
            if ext.error is not None:
                raise ext.error

        op = self.ops.start(NS, ext.resource["location"], 0, outcome)
        return self.ops.created(op, self._view(ext, None), status=200)

    async def _run(self, vm: dict[str, Any], ext: _Extension, problem: str | None) -> None:
        try:
            host = None if problem is not None else await self.host_for(vm["id"])
            if problem is not None:
                self._finish(ext, 1, "", "", detail=problem)
            elif host is None:
                self._finish(
                    ext,
                    1,
                    "",
                    "",
                    code="VMAgentStatusCommunicationError",
                    detail=f"VM '{vm['name']}' has not reported status for VM agent or extensions.",
                )
            else:
                await host.wait_up()
                assert ext.command is not None
                # the VM agent runs extension commands as LocalSystem
                out, err, exit_code = await host.run(ext.command, user=SYSTEM_ACCOUNT)
                self._finish(ext, exit_code, out, err)
        finally:
            ext.done.set()
        if ext.error is not None:
            raise ext.error

    def _finish(
        self,
        ext: _Extension,
        exit_code: int,
        out: str,
        err: str,
        *,
        code: str = "VMExtensionProvisioningError",
        detail: str | None = None,
    ) -> None:
        name = ext.resource["name"]
        substatuses = [
            {
                "code": f"ComponentStatus/Std{stream}/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "message": text[-OUTPUT_LIMIT:],
            }
            for stream, text in (("Out", out), ("Err", err))
        ]
        if exit_code == 0 and detail is None:
            status = _status("Succeeded", "Info", "Command execution finished")
            ext.error = None
        else:
            detail = detail or (
                "Command execution finished, but failed because it returned a non-zero exit "
                f"code of: '{exit_code}'. The command had an error output of: "
                f"'{' '.join(err.split())[:300]}'"
            )
            status = _status(
                "Failed", "Error", detail, code=f"ProvisioningState/failed/{exit_code}"
            )
            ext.error = ArmError(
                400,
                code,
                f"VM has reported a failure when processing extension '{name}' (publisher "
                f"'{PUBLISHER}' and type '{TYPE}'). Error message: \"{detail}\". More information "
                "on troubleshooting is available at "
                "https://aka.ms/VMExtensionCSEWindowsTroubleshoot.",
            )
        props = ext.resource["properties"]
        props["provisioningState"] = "Succeeded" if ext.error is None else "Failed"
        ext.instance_view = {
            "name": name,
            "type": f"{PUBLISHER}.{TYPE}",
            "typeHandlerVersion": props["typeHandlerVersion"],
            "substatuses": substatuses,
            "statuses": [status],
        }

    def delete(self, group: str, vm_name: str, name: str) -> web.Response:
        vm = self._vm(group, vm_name)
        key = f"{vm['id']}/extensions/{name}".lower()
        ext = self._exts.get(key)
        if ext is None:
            return web.Response(status=204)
        ext.resource["properties"]["provisioningState"] = "Deleting"

        async def deleted() -> None:
            await ext.done.wait()
            self._exts.pop(key, None)

        return self.ops.accepted(self.ops.start(NS, vm["location"], 0, deleted))

    def forget_vm(self, vm_id: str) -> None:
        """The VM is gone: so are its extensions."""
        prefix = (vm_id + "/extensions/").lower()
        for key in [k for k in self._exts if k.startswith(prefix)]:
            del self._exts[key]


def _command_problem(settings: dict[str, Any], protected: dict[str, Any]) -> str | None:
    """Why CustomScriptExtension would refuse these settings (None: it runs the command)."""
    if "commandToExecute" in settings and "commandToExecute" in protected:
        return "commandToExecute may be given in public or protected settings, but not both."
    if settings.get("fileUris") or protected.get("fileUris"):
        return "fileUris are not modelled: the simulated extension downloads nothing."
    command = protected.get("commandToExecute") or settings.get("commandToExecute")
    if not isinstance(command, str) or not command.strip():
        return "The commandToExecute is empty or invalid."
    return None
