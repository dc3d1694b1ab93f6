"""Azure: create the Windows VM (and its NIC) for a node, delete them again.

Called by `activities/cloud/vm.py`. Names are deterministic (VM `<node>`, NIC `<node>-nic`) and
each resource is looked up before it is PUT, so a retried call finds what an earlier attempt
made. Azure never runs data it is given on a Windows VM, so the first-boot script (public key
only) travels as `osProfile.customData` (written to `C:\\AzureData\\CustomData.bin`) and, once
the VM is Succeeded, the CustomScriptExtension `winfleet-bootstrap` runs it; Azure runs an
extension again only when its settings change, so re-asking runs nothing twice. Windows requires
an admin password, so a random throwaway one is generated per call and never stored or logged
(winfleet logs in with its SSH key as `capi`). azure.core exceptions are translated here and
nowhere else (`translate`). The SDK clients are synchronous: calls run in threads, in spans.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.polling import LROPoller
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import VirtualMachine, VirtualMachineExtension
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import NetworkInterface
from temporalio import activity

from activities.cloud.userdata import azure_bootstrap_command, azure_custom_data
from activities.config import on_settings_change, settings
from activities.contracts import AzureMachineSpec, HostAddress, HostRef, InstanceId, Platform
from activities.errors import (
    CloudRequestRejected,
    CloudUnavailable,
    InvalidRequest,
    WinfleetError,
)
from activities.tracing import span

log = logging.getLogger(__name__)

# Tokens are for ARM's audience, whatever address ARM is reached at (a private endpoint, a
# proxy); sovereign clouds set AZURE_CREDENTIAL_SCOPE (e.g. https://management.usgovcloudapi.net).
PUBLIC_ARM_SCOPE = "https://management.azure.com/.default"
USERNAME = "capi"  # the admin (and SSH) user on Azure Windows VMs, as WMCO/CAPZ use
TAG_POOL = "winfleet-pool"  # ARM tag names may not contain '/'
TAG_NODE = "winfleet-node"
LRO_TIMEOUT = 600.0  # s; an Azure Windows VM create takes 2-5 min, allow 10
LRO_POLL_INTERVAL = 5  # s; ARM's Retry-After overrides it
HEARTBEAT_EVERY = 5.0  # s while waiting on a long-running operation
# The VM extension that runs the custom data (as AKS/OpenShift do on Windows).
BOOTSTRAP_EXTENSION = "winfleet-bootstrap"
CSE_PUBLISHER, CSE_TYPE, CSE_VERSION = "Microsoft.Compute", "CustomScriptExtension", "1.10"
_VM_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.Compute/virtualMachines/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_CREDENTIAL_HINT = (
    "check AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET (and AZURE_AUTHORITY_HOST) "
    "on the worker"
)

T = TypeVar("T")


class ResourceMissing(WinfleetError):
    """The ARM resource does not exist (callers decide whether that is fine)."""


def translate(exc: Exception, what: str) -> WinfleetError:
    """Map an azure.core exception to a winfleet error (the single place to do so)."""
    if isinstance(exc, ClientAuthenticationError):  # 401, and token acquisition failures
        return CloudRequestRejected(
            f"{what}: Azure refused winfleet's credentials ({_short(exc)}); {_CREDENTIAL_HINT}"
        )
    if isinstance(exc, ResourceNotFoundError):
        return ResourceMissing(f"{what}: not found")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        if getattr(exc.error, "code", None) == "VMExtensionProvisioningError":  # a failed LRO
            said = " ".join(str(getattr(exc.error, "message", "") or "").split())[:600]
            return CloudRequestRejected(
                f"{what}: the first-boot script failed on the VM; delete the VM (terminate_vm) "
                f"and retry. Azure said: VMExtensionProvisioningError: {said}"
            )
        if status == 0 or status == 429 or status >= 500:
            return CloudUnavailable(f"{what}: Azure answered {status} ({_short(exc)}); retrying")
        if status == 403:
            return CloudRequestRejected(
                f"{what}: winfleet's Azure identity lacks permission ({_short(exc)}); "
                "grant it Contributor on the resource group"
            )
        return CloudRequestRejected(f"{what}: Azure rejected the request ({_short(exc)})")
    if isinstance(exc, AzureError):  # ServiceRequestError, ServiceResponseError, ...
        return CloudUnavailable(f"{what}: Azure unreachable ({type(exc).__name__})")
    raise exc


def _short(exc: AzureError) -> str:
    code = getattr(getattr(exc, "error", None), "code", None)
    text = " ".join(str(exc.message or type(exc).__name__).split())[:300]
    return f"{code}: {text}" if code and code not in text else text


# --- clients ---------------------------------------------------------------------------------
def credential() -> TokenCredential:
    """A service principal from AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, else the
    SDK's default chain (workload identity, managed identity, CLI)."""
    s = settings()
    tenant, client_id = os.environ.get("AZURE_TENANT_ID"), os.environ.get("AZURE_CLIENT_ID")
    secret = os.environ.get("AZURE_CLIENT_SECRET")
    transport: dict[str, Any] = {}
    if s.azure_ca_bundle:
        transport["connection_verify"] = s.azure_ca_bundle
    if s.azure_authority_host:
        transport["authority"] = s.azure_authority_host
        transport["disable_instance_discovery"] = True
    if tenant and client_id and secret:
        return ClientSecretCredential(tenant, client_id, secret, **transport)
    return DefaultAzureCredential(**transport)


_clients: list[tuple[ComputeManagementClient, NetworkManagementClient, TokenCredential]] = []


def clients() -> tuple[ComputeManagementClient, NetworkManagementClient]:
    """Compute and network clients for the configured ARM endpoint (reset on new settings)."""
    if not _clients:
        _clients.append(_new_clients())
    compute, network, _ = _clients[0]
    return compute, network


def _new_clients() -> tuple[ComputeManagementClient, NetworkManagementClient, TokenCredential]:
    s = settings()
    if not s.azure_subscription_id:
        raise InvalidRequest("AZURE_SUBSCRIPTION_ID is not set on the worker")
    endpoint = s.azure_arm_endpoint.rstrip("/")
    kwargs: dict[str, Any] = {
        "base_url": endpoint,
        "credential_scopes": [s.azure_credential_scope or PUBLIC_ARM_SCOPE],
        "polling_interval": LRO_POLL_INTERVAL,
        "retry_total": 3,
    }
    if s.azure_ca_bundle:
        kwargs["connection_verify"] = s.azure_ca_bundle
    cred = credential()
    return (
        ComputeManagementClient(cred, s.azure_subscription_id, **kwargs),
        NetworkManagementClient(cred, s.azure_subscription_id, **kwargs),
        cred,
    )


def _close_clients() -> None:
    while _clients:
        compute, network, cred = _clients.pop()
        compute.close()
        network.close()
        close = getattr(cred, "close", None)
        if close is not None:
            close()


on_settings_change(_close_clients)


async def _call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One ARM request in a thread, traced, with errors translated."""
    with span("azure " + getattr(fn, "__qualname__", "call"), call=what):
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except AzureError as exc:
            raise translate(exc, what) from exc


async def _finish(poller: LROPoller[T], what: str, wait_limit: float = LRO_TIMEOUT) -> T:
    """Wait for a long-running operation, heartbeating; errors translated."""
    deadline = time.monotonic() + wait_limit
    with span("azure wait", call=what):
        try:
            while not poller.done():
                if activity.in_activity():
                    activity.heartbeat(what, poller.status())
                if time.monotonic() >= deadline:
                    raise CloudUnavailable(
                        f"{what}: still {poller.status()} after {wait_limit:.0f} s; "
                        "the next attempt picks it up"
                    )
                await asyncio.to_thread(poller.wait, HEARTBEAT_EVERY)
            return poller.result()
        except AzureError as exc:
            raise translate(exc, what) from exc


async def _get_or_none(what: str, fn: Callable[..., T], *args: Any) -> T | None:
    try:
        return await _call(what, fn, *args)
    except ResourceMissing:
        return None


# --- create ----------------------------------------------------------------------------------
def _throwaway_password() -> str:
    """A Windows-complex password nobody will ever use (SSH keys are the way in)."""
    return secrets.token_urlsafe(24) + "aA1!"


def _check_ours(kind: str, name: str, node_name: str, pool: str, tags: Any) -> None:
    t = dict(tags or {})
    if t.get(TAG_NODE) != node_name or t.get(TAG_POOL) != pool:
        raise CloudRequestRejected(
            f"{kind} {name} already exists and is not winfleet's for pool {pool} "
            f"(tags {TAG_POOL}/{TAG_NODE} missing or different); rename the node or remove it"
        )


async def _ensure_nic(
    pool: str, node_name: str, spec: AzureMachineSpec, tags: dict[str, str]
) -> NetworkInterface:
    _, network = clients()
    name = f"{node_name}-nic"
    what = f"NIC {spec.resource_group}/{name} of node {node_name}"
    nic = await _get_or_none(
        "get " + what, network.network_interfaces.get, spec.resource_group, name
    )
    if nic is not None:
        _check_ours("NIC", name, node_name, pool, nic.tags)
        if nic.properties and nic.properties.provisioning_state == "Succeeded":
            return nic
    body = NetworkInterface(
        {
            "location": spec.location,
            "tags": tags,
            "properties": {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "properties": {
                            "subnet": {"id": spec.subnet_id},
                            "privateIPAllocationMethod": "Dynamic",
                            "primary": True,
                        },
                    }
                ]
            },
        }
    )
    poller = await _call(
        "create " + what,
        network.network_interfaces.begin_create_or_update,
        spec.resource_group,
        name,
        body,
    )
    return await _finish(poller, "create " + what)


def _vm_body(
    node_name: str, spec: AzureMachineSpec, nic_id: str, public_key: str, tags: dict[str, str]
) -> VirtualMachine:
    custom_data = base64.b64encode(azure_custom_data(public_key).encode()).decode()
    return VirtualMachine(
        {
            "location": spec.location,
            "tags": tags,
            "properties": {
                "hardwareProfile": {"vmSize": spec.vm_size},
                "storageProfile": {
                    "imageReference": {
                        "publisher": spec.image_publisher,
                        "offer": spec.image_offer,
                        "sku": spec.image_sku,
                        "version": spec.image_version,
                    },
                    # Without this the OS disk outlives the VM on real Azure.
                    "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"},
                },
                "osProfile": {
                    "computerName": node_name,
                    "adminUsername": USERNAME,
                    "adminPassword": _throwaway_password(),
                    "customData": custom_data,
                },
                "networkProfile": {
                    "networkInterfaces": [{"id": nic_id, "properties": {"primary": True}}]
                },
            },
        }
    )


def _private_ip(nic: NetworkInterface) -> str:
    for cfg in (nic.properties.ip_configurations if nic.properties else None) or ():
        ip = cfg.properties.private_ip_address if cfg.properties else None
        if ip:
            return str(ip)
    return ""


async def create_azure_vm(
    pool: str, node_name: str, spec: AzureMachineSpec, public_key: str
) -> HostRef:
    """The VM for `node_name` (with NIC `<node>-nic` in `spec.subnet_id`), found or created."""
    azure_custom_data(public_key)  # refuse a malformed/private key before anything exists
    missing = [f for f in ("resource_group", "location", "subnet_id") if not getattr(spec, f)]
    if missing:
        raise InvalidRequest(f"Azure spec of node {node_name} lacks {', '.join(missing)}")
    if len(node_name) > 15:
        raise InvalidRequest(f"node name {node_name!r} is longer than a Windows computer name (15)")
    compute, network = clients()
    tags = {TAG_POOL: pool, TAG_NODE: node_name}
    what = f"VM {spec.resource_group}/{node_name}"
    vm = await _get_or_none(
        "get " + what, compute.virtual_machines.get, spec.resource_group, node_name
    )
    if vm is not None:
        _check_ours("VM", node_name, node_name, pool, vm.tags)
    nic = await _ensure_nic(pool, node_name, spec, tags)
    state = vm.properties.provisioning_state if vm is not None and vm.properties else None
    if vm is None:
        vm = await _create_vm(node_name, spec, str(nic.id), public_key, tags)
    elif state == "Failed":
        raise CloudRequestRejected(
            f"{what} is in provisioning state Failed; delete it (terminate_vm) and retry"
        )
    elif state != "Succeeded":  # an earlier attempt's VM, still Creating/Updating
        vm = await _wait_vm_provisioned(spec.resource_group, node_name)
    await _ensure_bootstrap_extension(spec.resource_group, node_name, vm.location or spec.location)
    nic = await _call(
        "get " + what + " NIC",
        network.network_interfaces.get,
        spec.resource_group,
        f"{node_name}-nic",
    )
    address = _private_ip(nic)
    if not address:
        raise CloudUnavailable(f"{what}: its NIC has no private IP yet; retrying")
    log.info("VM %s for node %s is provisioned at %s", vm.id, node_name, address)
    return HostRef(
        platform=Platform.AZURE,
        address=HostAddress(address),
        username=USERNAME,
        instance_id=InstanceId(str(vm.id)),
        created_by_us=True,
    )


async def _create_vm(
    node_name: str, spec: AzureMachineSpec, nic_id: str, public_key: str, tags: dict[str, str]
) -> VirtualMachine:
    """PUT the VM and wait; if Azure rejects it, remove the NIC made for it."""
    compute, _ = clients()
    what = f"create VM {spec.resource_group}/{node_name}"
    body = _vm_body(node_name, spec, nic_id, public_key, tags)
    try:
        poller = await _call(
            what,
            compute.virtual_machines.begin_create_or_update,
            spec.resource_group,
            node_name,
            body,
        )
        return await _finish(poller, what)
    except CloudRequestRejected:
        try:
            await _delete_nic(spec.resource_group, node_name)  # leave nothing behind
        except WinfleetError as cleanup:
            log.warning("could not remove NIC %s-nic after a rejected VM: %s", node_name, cleanup)
        raise


def _bootstrap_extension_body(location: str) -> VirtualMachineExtension:
    return VirtualMachineExtension(
        {
            "location": location,
            "properties": {
                "publisher": CSE_PUBLISHER,
                "type": CSE_TYPE,
                "typeHandlerVersion": CSE_VERSION,
                "autoUpgradeMinorVersion": True,
                # protected: encrypted at rest and never shown back by ARM
                "protectedSettings": {"commandToExecute": azure_bootstrap_command().line},
            },
        }
    )


async def _ensure_bootstrap_extension(resource_group: str, vm_name: str, location: str) -> None:
    """Run the custom data on the VM through the CustomScriptExtension, unless it already did.

    A Failed extension is permanent: the same settings would not run again.
    """
    compute, _ = clients()
    what = f"bootstrap extension {BOOTSTRAP_EXTENSION} of VM {resource_group}/{vm_name}"
    failed = CloudRequestRejected(
        f"{what} is in provisioning state Failed: the first-boot script did not run cleanly on "
        "the VM; see the extension's instance view, delete the VM (terminate_vm) and retry"
    )
    deadline = time.monotonic() + LRO_TIMEOUT
    while True:
        ext = await _get_or_none(
            "get " + what,
            compute.virtual_machine_extensions.get,
            resource_group,
            vm_name,
            BOOTSTRAP_EXTENSION,
        )
        state = ext.properties.provisioning_state if ext is not None and ext.properties else None
        if state == "Succeeded":
            return
        if state == "Failed":
            raise failed
        if state is None:
            break
        # an earlier attempt's extension, still running: wait for it rather than PUT again
        if activity.in_activity():
            activity.heartbeat(what, state)
        if time.monotonic() >= deadline:
            raise CloudUnavailable(f"{what} is still {state}; the next attempt keeps waiting")
        await asyncio.sleep(LRO_POLL_INTERVAL)
    poller = await _call(
        "run " + what,
        compute.virtual_machine_extensions.begin_create_or_update,
        resource_group,
        vm_name,
        BOOTSTRAP_EXTENSION,
        _bootstrap_extension_body(location),
    )
    ext = await _finish(poller, "run " + what)
    if (ext.properties.provisioning_state if ext.properties else None) != "Succeeded":
        raise failed
    log.info("%s ran the first-boot script", what)


async def _wait_vm_provisioned(resource_group: str, name: str) -> VirtualMachine:
    """An earlier attempt's VM that is still Creating/Updating: poll until it settles."""
    compute, _ = clients()
    what = f"VM {resource_group}/{name}"
    deadline = time.monotonic() + LRO_TIMEOUT
    while True:
        vm = await _call("get " + what, compute.virtual_machines.get, resource_group, name)
        state = vm.properties.provisioning_state if vm.properties else None
        if activity.in_activity():
            activity.heartbeat(what, state)
        if state == "Succeeded":
            return vm
        if state == "Failed":
            raise CloudRequestRejected(f"{what} failed to provision; delete it and retry")
        if time.monotonic() >= deadline:
            raise CloudUnavailable(f"{what} is still {state}; the next attempt keeps waiting")
        await asyncio.sleep(LRO_POLL_INTERVAL)


# --- delete ----------------------------------------------------------------------------------
def parse_vm_id(vm_id: str) -> tuple[str, str]:
    """(resource group, VM name) of an ARM VM id; InvalidRequest for anything else."""
    m = _VM_ID.match(vm_id)
    if not m:
        raise InvalidRequest(f"{vm_id!r} is not an Azure VM resource id")
    return m["rg"], m["name"]


async def _delete_nic(resource_group: str, node_name: str) -> None:
    _, network = clients()
    what = f"delete NIC {resource_group}/{node_name}-nic"
    try:
        poller = await _call(
            what, network.network_interfaces.begin_delete, resource_group, f"{node_name}-nic"
        )
        await _finish(poller, what)
    except ResourceMissing:
        pass


async def delete_azure_vm(resource_group: str, node_name: str) -> bool:
    """Delete VM `<node>` then NIC `<node>-nic`; missing ones are fine. True when both are gone.

    Refuses (InvalidRequest) a VM without winfleet's tags: never someone else's VM.
    """
    compute, _ = clients()
    what = f"VM {resource_group}/{node_name}"
    vm = await _get_or_none("get " + what, compute.virtual_machines.get, resource_group, node_name)
    if vm is not None:
        if TAG_NODE not in (vm.tags or {}):
            raise InvalidRequest(
                f"{what} has no {TAG_NODE} tag: winfleet did not create it and will not delete it"
            )
        try:
            poller = await _call(
                "delete " + what, compute.virtual_machines.begin_delete, resource_group, node_name
            )
            await _finish(poller, "delete " + what)
        except ResourceMissing:
            pass
        log.info("deleted %s", what)
    await _delete_nic(resource_group, node_name)
    return True
