"""Azure: create the Windows VM (and its NIC) for a node, delete them again.

Called by `activities/cloud/vm.py`. Names are deterministic (VM `<node>`, NIC `<node>-nic`) and
each resource is looked up before it is PUT, so a retried call finds what an earlier attempt
made. Both carry the cluster, pool and node tags (activities/cloud/ownership.py) and the
`winfleet-run` tag of the workflow run that created them: a same-named VM or NIC of another
cluster or pool is refused, never reused or deleted, and deletes check the tag values of the VM
and the NIC before deleting either. Azure never runs data it is given on a Windows VM, so the
first-boot script (public key only) travels as `osProfile.customData` (written to
`C:\\AzureData\\CustomData.bin`) and, once the VM is Succeeded, the CustomScriptExtension
`winfleet-bootstrap` runs it; Azure runs an extension again only when its settings change, so
re-asking runs nothing twice. Windows requires an admin password, so a random throwaway one is
generated per call and never stored or logged (winfleet logs in with its SSH key as `capi`).
azure.core exceptions are translated here and nowhere else (`translate`). The SDK's async
clients (aiohttp) are used, so neither a request nor a long-running operation's polling holds a
thread; each activity opens its own clients.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.polling import AsyncLROPoller
from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.mgmt.compute.models import VirtualMachine, VirtualMachineExtension
from azure.mgmt.network.aio import NetworkManagementClient
from azure.mgmt.network.models import NetworkInterface
from temporalio import activity

from activities.cloud.ownership import Owner, TaggedVm, TagNames
from activities.cloud.userdata import azure_bootstrap_command, azure_custom_data
from activities.config import settings
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
TAG_CLUSTER = "winfleet-cluster"
TAG_RUN = "winfleet-run"  # the workflow run that created the resource
TAGS = TagNames(cluster=TAG_CLUSTER, pool=TAG_POOL, node=TAG_NODE)
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
def credential() -> AsyncTokenCredential:
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


@dataclass(frozen=True)
class Arm:
    """The compute and network clients of one activity."""

    compute: ComputeManagementClient
    network: NetworkManagementClient


@asynccontextmanager
async def arm() -> AsyncIterator[Arm]:
    """Async clients for the configured ARM endpoint, closed (with their sessions) on exit."""
    s = settings()
    if not s.azure_subscription_id:
        raise InvalidRequest("AZURE_SUBSCRIPTION_ID is not set on the worker")
    kwargs: dict[str, Any] = {
        "base_url": s.azure_arm_endpoint.rstrip("/"),
        "credential_scopes": [s.azure_credential_scope or PUBLIC_ARM_SCOPE],
        "polling_interval": LRO_POLL_INTERVAL,
        "retry_total": 3,
    }
    if s.azure_ca_bundle:
        kwargs["connection_verify"] = s.azure_ca_bundle
    cred = credential()
    async with (
        cred,
        ComputeManagementClient(cred, s.azure_subscription_id, **kwargs) as compute,
        NetworkManagementClient(cred, s.azure_subscription_id, **kwargs) as network,
    ):
        yield Arm(compute, network)


async def _call(what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """One ARM request, traced, with errors translated."""
    with span("azure " + getattr(fn, "__qualname__", "call"), call=what):
        try:
            return await fn(*args)
        except AzureError as exc:
            raise translate(exc, what) from exc


async def _finish(poller: AsyncLROPoller[T], what: str, wait_limit: float = LRO_TIMEOUT) -> T:
    """Wait for a long-running operation, heartbeating; errors translated. The poller sleeps
    with asyncio between its polls: no thread waits."""
    deadline = time.monotonic() + wait_limit
    with span("azure wait", call=what):
        task = asyncio.ensure_future(poller.result())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY)
                if done:
                    return task.result()
                if activity.in_activity():
                    activity.heartbeat(what, poller.status())
                if time.monotonic() >= deadline:
                    raise CloudUnavailable(
                        f"{what}: still {poller.status()} after {wait_limit:.0f} s; "
                        "the next attempt picks it up"
                    )
        except AzureError as exc:
            raise translate(exc, what) from exc
        finally:
            task.cancel()


async def _get_or_none(what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T | None:
    try:
        return await _call(what, fn, *args)
    except ResourceMissing:
        return None


# --- ownership -------------------------------------------------------------------------------
def _check_ours(kind: str, where: str, owner: Owner, tags: dict[str, str] | None) -> None:
    """Refuse a resource whose cluster, pool and node tag values are not exactly `owner`'s."""
    if TAGS.owner_of(tags) != owner:
        raise CloudRequestRejected(
            f"{kind} {where} already exists and is {TAGS.whose(tags)}, not for {owner}: "
            f"winfleet will neither use nor delete it; rename the node or remove the {kind}"
        )


def _created_by(resource: VirtualMachine | NetworkInterface | None, run: str) -> bool:
    return bool(run) and resource is not None and (resource.tags or {}).get(TAG_RUN) == run


# --- create ----------------------------------------------------------------------------------
def _throwaway_password() -> str:
    """A Windows-complex password nobody will ever use (SSH keys are the way in)."""
    return secrets.token_urlsafe(24) + "aA1!"


async def _ensure_nic(
    a: Arm, owner: Owner, spec: AzureMachineSpec, tags: dict[str, str]
) -> tuple[NetworkInterface, bool]:
    """The node's NIC, found (if it is ours) or created; and whether this call created it."""
    name = f"{owner.node}-nic"
    what = f"NIC {spec.resource_group}/{name} of node {owner.node}"
    nic = await _get_or_none(
        "get " + what, a.network.network_interfaces.get, spec.resource_group, name
    )
    if nic is not None:
        _check_ours("NIC", f"{spec.resource_group}/{name}", owner, nic.tags)
        if nic.properties and nic.properties.provisioning_state == "Succeeded":
            return nic, False
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
        a.network.network_interfaces.begin_create_or_update,
        spec.resource_group,
        name,
        body,
    )
    return await _finish(poller, "create " + what), nic is None


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
    owner: Owner, spec: AzureMachineSpec, public_key: str, *, run: str = ""
) -> HostRef:
    """The VM for the node (with NIC `<node>-nic` in `spec.subnet_id`), found or created.

    `run` (the workflow run id) is tagged on what this call creates; the HostRef says
    `created_by_us` only for a VM that carries this run's tag.
    """
    azure_custom_data(public_key)  # refuse a malformed/private key before anything exists
    node_name = owner.node
    missing = [f for f in ("resource_group", "location", "subnet_id") if not getattr(spec, f)]
    if missing:
        raise InvalidRequest(f"Azure spec of node {node_name} lacks {', '.join(missing)}")
    if len(node_name) > 15:
        raise InvalidRequest(f"node name {node_name!r} is longer than a Windows computer name (15)")
    tags = {**TAGS.tags(owner), TAG_RUN: run}
    where = f"{spec.resource_group}/{node_name}"
    what = f"VM {where}"
    async with arm() as a:
        vm = await _get_or_none(
            "get " + what, a.compute.virtual_machines.get, spec.resource_group, node_name
        )
        if vm is not None:
            _check_ours("VM", where, owner, vm.tags)
        nic, nic_is_new = await _ensure_nic(a, owner, spec, tags)
        state = vm.properties.provisioning_state if vm is not None and vm.properties else None
        if vm is None:
            vm = await _create_vm(a, owner, spec, str(nic.id), public_key, tags, nic_is_new)
        elif state == "Failed":
            raise CloudRequestRejected(
                f"{what} is in provisioning state Failed; delete it (terminate_vm) and retry"
            )
        elif state != "Succeeded":  # an earlier attempt's VM, still Creating/Updating
            vm = await _wait_vm_provisioned(a, spec.resource_group, node_name)
        await _ensure_bootstrap_extension(
            a, spec.resource_group, node_name, vm.location or spec.location
        )
        nic = await _call(
            "get " + what + " NIC",
            a.network.network_interfaces.get,
            spec.resource_group,
            f"{node_name}-nic",
        )
    address = _private_ip(nic)
    if not address:
        raise CloudUnavailable(f"{what}: its NIC has no private IP yet; retrying")
    log.info("VM %s for %s is provisioned at %s", vm.id, owner, address)
    return HostRef(
        platform=Platform.AZURE,
        address=HostAddress(address),
        username=USERNAME,
        instance_id=InstanceId(str(vm.id)),
        created_by_us=_created_by(vm, run),
        ip=address,
        pool=owner.pool,
        node_name=node_name,
    )


async def _create_vm(
    a: Arm,
    owner: Owner,
    spec: AzureMachineSpec,
    nic_id: str,
    public_key: str,
    tags: dict[str, str],
    nic_is_new: bool,
) -> VirtualMachine:
    """PUT the VM and wait; if Azure rejects it, remove the NIC this call made for it."""
    image = ":".join((spec.image_publisher, spec.image_offer, spec.image_sku, spec.image_version))
    what = f"create VM {spec.resource_group}/{owner.node} (image {image} in {spec.location})"
    body = _vm_body(owner.node, spec, nic_id, public_key, tags)
    try:
        poller = await _call(
            what,
            a.compute.virtual_machines.begin_create_or_update,
            spec.resource_group,
            owner.node,
            body,
        )
        return await _finish(poller, what)
    except CloudRequestRejected:
        if nic_is_new:
            try:
                await _delete_nic(a, spec.resource_group, owner.node)  # leave nothing behind
            except WinfleetError as cleanup:
                log.warning(
                    "could not remove NIC %s-nic after a rejected VM: %s", owner.node, cleanup
                )
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


async def _ensure_bootstrap_extension(
    a: Arm, resource_group: str, vm_name: str, location: str
) -> None:
    """Run the custom data on the VM through the CustomScriptExtension, unless it already did.

    A Failed extension is permanent: the same settings would not run again.
    """
    what = f"bootstrap extension {BOOTSTRAP_EXTENSION} of VM {resource_group}/{vm_name}"
    failed = CloudRequestRejected(
        f"{what} is in provisioning state Failed: the first-boot script did not run cleanly on "
        "the VM; see the extension's instance view, delete the VM (terminate_vm) and retry"
    )
    deadline = time.monotonic() + LRO_TIMEOUT
    while True:
        ext = await _get_or_none(
            "get " + what,
            a.compute.virtual_machine_extensions.get,
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
        a.compute.virtual_machine_extensions.begin_create_or_update,
        resource_group,
        vm_name,
        BOOTSTRAP_EXTENSION,
        _bootstrap_extension_body(location),
    )
    ext = await _finish(poller, "run " + what)
    if (ext.properties.provisioning_state if ext.properties else None) != "Succeeded":
        raise failed
    log.info("%s ran the first-boot script", what)


async def _wait_vm_provisioned(a: Arm, resource_group: str, name: str) -> VirtualMachine:
    """An earlier attempt's VM that is still Creating/Updating: poll until it settles."""
    what = f"VM {resource_group}/{name}"
    deadline = time.monotonic() + LRO_TIMEOUT
    while True:
        vm = await _call("get " + what, a.compute.virtual_machines.get, resource_group, name)
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


async def _delete_nic(a: Arm, resource_group: str, node_name: str) -> None:
    what = f"delete NIC {resource_group}/{node_name}-nic"
    try:
        poller = await _call(
            what, a.network.network_interfaces.begin_delete, resource_group, f"{node_name}-nic"
        )
        await _finish(poller, what)
    except ResourceMissing:
        pass


async def _delete_vm(a: Arm, resource_group: str, node_name: str) -> None:
    what = f"delete VM {resource_group}/{node_name}"
    try:
        poller = await _call(
            what, a.compute.virtual_machines.begin_delete, resource_group, node_name
        )
        await _finish(poller, what)
    except ResourceMissing:
        pass
    log.info("deleted VM %s/%s", resource_group, node_name)


async def _vm_and_nic(
    a: Arm, resource_group: str, node_name: str
) -> tuple[VirtualMachine | None, NetworkInterface | None]:
    what = f"{resource_group}/{node_name}"
    vm = await _get_or_none(
        "get VM " + what, a.compute.virtual_machines.get, resource_group, node_name
    )
    nic = await _get_or_none(
        "get NIC " + what + "-nic",
        a.network.network_interfaces.get,
        resource_group,
        f"{node_name}-nic",
    )
    return vm, nic


async def vm_address(resource_group: str, owner: Owner) -> str | None:
    """The private IP of `owner`'s VM (through its NIC), or None when there is no such VM."""
    async with arm() as a:
        vm, nic = await _vm_and_nic(a, resource_group, owner.node)
    if vm is None or nic is None:
        return None
    _check_ours("NIC", f"{resource_group}/{owner.node}-nic", owner, nic.tags)
    return _private_ip(nic) or None


async def pool_vms(resource_group: str, cluster: str, pool: str) -> list[TaggedVm]:
    """Every VM of `resource_group` tagged for this cluster and pool (any node)."""
    found: list[TaggedVm] = []
    what = f"list the VMs of pool {pool} in {resource_group}"
    async with arm() as a:
        with span("azure list VMs", call=what):
            try:
                async for vm in a.compute.virtual_machines.list(resource_group):
                    owner = TAGS.owner_of(vm.tags)
                    if owner is not None and owner.cluster == cluster and owner.pool == pool:
                        created = getattr(vm, "time_created", None)
                        when = created.isoformat() if created is not None else ""
                        found.append(TaggedVm(str(vm.name), owner, when))
            except ResourceNotFoundError:
                return []  # no such resource group: no VMs
            except AzureError as exc:
                raise translate(exc, what) from exc
    return found


async def delete_azure_vm(resource_group: str, owner: Owner) -> bool:
    """Delete VM `<node>` then NIC `<node>-nic`; missing ones are fine. True when both are gone.

    Both are checked first: if either is not tagged exactly for `owner` (cluster, pool and
    node values), nothing is deleted (CloudRequestRejected, saying whose it is).
    """
    node = owner.node
    async with arm() as a:
        vm, nic = await _vm_and_nic(a, resource_group, node)
        if vm is not None:
            _check_ours("VM", f"{resource_group}/{node}", owner, vm.tags)
        if nic is not None:
            _check_ours("NIC", f"{resource_group}/{node}-nic", owner, nic.tags)
        if vm is not None:
            await _delete_vm(a, resource_group, node)
        if nic is not None:
            await _delete_nic(a, resource_group, node)
    return True


async def release_azure_vm(resource_group: str, owner: Owner, run: str) -> str | None:
    """Delete the VM and NIC of `owner` that the workflow run `run` created (nothing an earlier
    run made). None if there was nothing to delete, else the NIC's private IP ("" if none)."""
    async with arm() as a:
        vm, nic = await _vm_and_nic(a, resource_group, owner.node)
        vm_mine = _created_by(vm, run) and vm is not None and TAGS.owner_of(vm.tags) == owner
        nic_mine = _created_by(nic, run) and nic is not None and TAGS.owner_of(nic.tags) == owner
        if vm_mine:
            await _delete_vm(a, resource_group, owner.node)
        if nic is not None and nic_mine and (vm is None or vm_mine):
            await _delete_nic(a, resource_group, owner.node)
    if not (vm_mine or nic_mine):
        return None
    return _private_ip(nic) if nic is not None else ""
