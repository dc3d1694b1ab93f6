"""The VM activities the onboarding workflow calls: `create_vm`, `terminate_vm`, `release_vm`.

`create_vm` validates its input first (`validate_create_vm_input`, pure, so the workflow can
refuse bad input before scheduling anything), fills empty spec fields from the worker's
settings (`WINFLEET_AWS_*`, `WINFLEET_AZURE_*`), reads the SSH key's public half from the
referenced Secret and dispatches to `aws`, `azure` or `byoh` (a BYOH DNS name is resolved once,
here). `terminate_vm` and `release_vm` are the compensation: they delete only a VM this very
workflow run launched, tagged for this cluster, pool and node (ownership.py), never a BYOH
host, and forget the SSH host-key pin of its address.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

from activities import hostkeys
from activities.cloud import aws, azure, byoh, ownership
from activities.cloud.ownership import Owner
from activities.config import Settings, settings
from activities.contracts import (
    AwsMachineSpec,
    AzureMachineSpec,
    ByohHostSpec,
    HostRef,
    Platform,
    PoolVm,
)
from activities.errors import CloudRequestRejected, InvalidRequest, boundary
from activities.keys import load_private_key, public_key_openssh
from activities.polling import heartbeating

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_AMI = re.compile(r"^ami-[0-9a-f]{8,17}$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG = re.compile(r"^sg-[0-9a-f]{8,17}$")
_INSTANCE_TYPE = re.compile(r"^[a-z0-9-]+\.[a-z0-9-]+$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
_AZURE_LOCATION = re.compile(r"^[a-z0-9]+$")
_AZURE_SUBNET = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/"
    r"virtualNetworks/[^/]+/subnets/[^/]+$",
    re.IGNORECASE,
)
_USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
COMPUTER_NAME_MAX = 15  # Windows NetBIOS computer name limit; the node name becomes it
HEARTBEAT_EVERY = 5.0  # s; well inside the workflow's heartbeat timeout, even mid API call

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class CreateVmInput:
    """What `create_vm` needs; only the spec for `platform` is set. No secrets: the SSH key is
    read from Secret `private_key_secret` by the activity."""

    pool: str
    node_name: str
    platform: Platform
    aws: AwsMachineSpec | None = None
    azure: AzureMachineSpec | None = None
    byoh: ByohHostSpec | None = None
    private_key_secret: str = "cloud-private-key"


# --- validation (pure) -----------------------------------------------------------------------
def _aws_problems(spec: AwsMachineSpec) -> list[str]:
    p = []
    if spec.image_id and not _AMI.match(spec.image_id):
        p.append(f"aws.image_id {spec.image_id!r} is not an AMI id (ami-0123abcd...)")
    if spec.subnet_id and not _SUBNET.match(spec.subnet_id):
        p.append(f"aws.subnet_id {spec.subnet_id!r} is not a subnet id (subnet-0123abcd...)")
    p += [
        f"aws.security_group_ids: {sg!r} is not a security group id (sg-0123abcd...)"
        for sg in spec.security_group_ids
        if not _SG.match(sg)
    ]
    if not _INSTANCE_TYPE.match(spec.instance_type):
        p.append(f"aws.instance_type {spec.instance_type!r} is not an instance type (m5a.large)")
    if spec.region and not _AWS_REGION.match(spec.region):
        p.append(f"aws.region {spec.region!r} is not an AWS region (us-east-1)")
    return p


def _azure_problems(spec: AzureMachineSpec) -> list[str]:
    p = []
    if spec.resource_group and not _RESOURCE_GROUP.match(spec.resource_group):
        p.append(f"azure.resource_group {spec.resource_group!r} is not a resource group name")
    if spec.location and not _AZURE_LOCATION.match(spec.location):
        p.append(f"azure.location {spec.location!r} is not a location name (westeurope)")
    if spec.subnet_id and not _AZURE_SUBNET.match(spec.subnet_id):
        p.append(
            "azure.subnet_id must be a full subnet resource id "
            "(/subscriptions/.../virtualNetworks/<vnet>/subnets/<subnet>)"
        )
    for field in ("vm_size", "image_publisher", "image_offer", "image_sku", "image_version"):
        if not getattr(spec, field):
            p.append(f"azure.{field} is empty")
    return p


def _byoh_problems(spec: ByohHostSpec) -> list[str]:
    p = []
    problem = byoh.address_problem(spec.address)
    if problem:
        p.append(problem)
    if spec.username and not _USERNAME.match(spec.username):
        p.append(f"byoh.username {spec.username!r} is not a Windows user name")
    return p


def create_vm_input_problems(inp: CreateVmInput) -> list[str]:
    """Everything wrong with `inp`, each saying what to fix; empty when it can be acted on."""
    p: list[str] = []
    if not inp.pool or len(inp.pool) > 63 or not _LABEL.match(inp.pool):
        p.append(f"pool {inp.pool!r} must be a lowercase RFC 1123 label (a-z, 0-9, '-')")
    name = inp.node_name
    if not name or len(name) > COMPUTER_NAME_MAX or not _LABEL.match(name) or name.isdigit():
        p.append(
            f"node name {name!r} must be a lowercase RFC 1123 label of at most "
            f"{COMPUTER_NAME_MAX} characters, not all digits: it becomes the Windows computer name"
        )
    if not _SUBDOMAIN.match(inp.private_key_secret) or len(inp.private_key_secret) > 253:
        p.append(f"private_key_secret {inp.private_key_secret!r} is not a Secret name")
    try:
        platform = Platform(inp.platform)
    except ValueError:
        valid = ", ".join(x.value for x in Platform)
        return [*p, f"platform {inp.platform!r} is not one of {valid}"]
    specs = {Platform.AWS: inp.aws, Platform.AZURE: inp.azure, Platform.BYOH: inp.byoh}
    if specs[platform] is None:
        p.append(f"platform {platform.value} needs the {platform.value!r} spec")
    p += [
        f"platform is {platform.value}, so the {other.value!r} spec must be empty"
        for other, spec in specs.items()
        if other is not platform and spec is not None
    ]
    if inp.aws is not None and platform is Platform.AWS:
        p += _aws_problems(inp.aws)
    if inp.azure is not None and platform is Platform.AZURE:
        p += _azure_problems(inp.azure)
    if inp.byoh is not None and platform is Platform.BYOH:
        p += _byoh_problems(inp.byoh)
    return p


def validate_create_vm_input(inp: CreateVmInput) -> None:
    """Raise InvalidRequest listing every problem with `inp` (pure: safe in a workflow)."""
    problems = create_vm_input_problems(inp)
    if problems:
        raise InvalidRequest(
            f"cannot create a VM for node {inp.node_name!r}: " + "; ".join(problems)
        )


def with_defaults(inp: CreateVmInput, s: Settings) -> CreateVmInput:
    """`inp` with empty spec fields taken from the worker's settings."""
    if inp.aws is not None:
        a = inp.aws
        inp = dataclasses.replace(
            inp,
            aws=dataclasses.replace(
                a,
                image_id=a.image_id or s.aws_image_id or "",
                subnet_id=a.subnet_id or s.aws_subnet_id or "",
                security_group_ids=a.security_group_ids
                or ((s.aws_security_group_id,) if s.aws_security_group_id else ()),
            ),
        )
    if inp.azure is not None:
        z = inp.azure
        inp = dataclasses.replace(
            inp,
            azure=dataclasses.replace(
                z,
                resource_group=z.resource_group or s.azure_resource_group or "",
                location=z.location or s.azure_location or "",
                subnet_id=z.subnet_id or s.azure_subnet_id or "",
            ),
        )
    return inp


def _require_complete(inp: CreateVmInput) -> None:
    """After defaults: what a platform cannot do without, and the settings' own formats."""
    problems = create_vm_input_problems(inp)
    if inp.azure is not None and inp.platform == Platform.AZURE:
        env = {
            "resource_group": "WINFLEET_AZURE_RESOURCE_GROUP",
            "location": "WINFLEET_AZURE_LOCATION",
            "subnet_id": "WINFLEET_AZURE_SUBNET_ID",
        }
        problems += [
            f"azure.{field} is empty and {var} is not set"
            for field, var in env.items()
            if not getattr(inp.azure, field)
        ]
    if problems:
        raise InvalidRequest(
            f"cannot create a VM for node {inp.node_name!r}: " + "; ".join(problems)
        )


# --- activities ------------------------------------------------------------------------------
def _heartbeating(aw: Awaitable[T]) -> Awaitable[T]:
    """`polling.heartbeating` at the cloud cadence: a slow API call must not look like a dead
    worker (the platform code heartbeats with progress details too)."""
    return heartbeating(aw, every=HEARTBEAT_EVERY)


async def _owner(pool: str, node_name: str) -> Owner:
    return Owner(cluster=await ownership.cluster_id(), pool=pool, node=node_name)


def _run_id() -> str:
    """The workflow run this activity belongs to: what `created_by_us` is measured against."""
    return activity.info().workflow_run_id or ""


@activity.defn(name="create_vm")
@boundary
async def create_vm(inp: CreateVmInput) -> HostRef:
    """The host for the node: a new (or earlier attempt's) VM, or the registered BYOH host."""
    validate_create_vm_input(inp)
    full = with_defaults(inp, settings())
    _require_complete(full)
    if full.byoh is not None:
        host = await byoh.check_byoh_host(full.byoh)
        ip = await byoh.resolve_ipv4(host.address)
        return dataclasses.replace(host, ip=ip, pool=full.pool, node_name=full.node_name)
    public_key = public_key_openssh(await load_private_key(full.private_key_secret))
    owner = await _owner(full.pool, full.node_name)
    if full.aws is not None:
        return await _heartbeating(
            aws.create_aws_instance(owner, full.aws, public_key, incarnation=_run_id())
        )
    if full.azure is not None:
        return await _heartbeating(
            azure.create_azure_vm(owner, full.azure, public_key, run=_run_id())
        )
    raise InvalidRequest(f"no machine spec for platform {full.platform}")  # unreachable


@activity.defn(name="terminate_vm")
@boundary
async def terminate_vm(host: HostRef) -> bool:
    """Delete a VM this workflow run created; True once it is gone. BYOH hosts are never
    touched. The VM's cluster, pool and node tags must match (the NIC's too, on Azure), and the
    SSH host-key pin of its address is forgotten with it: a new VM there is trusted anew."""
    if host.platform == Platform.BYOH or not host.created_by_us or not host.instance_id:
        return False
    node_name = host.node_name
    if host.platform == Platform.AZURE:
        resource_group, vm_name = azure.parse_vm_id(host.instance_id)
        node_name = node_name or vm_name
    if not host.pool or not node_name:
        raise CloudRequestRejected(
            f"VM {host.instance_id} at {host.address}: the request does not name its pool and "
            "node, so winfleet cannot check its tags and will not delete it"
        )
    owner = await _owner(host.pool, node_name)
    if host.platform == Platform.AWS:
        gone = await _heartbeating(aws.terminate_aws_instance(host.instance_id, host.region, owner))
    elif host.platform == Platform.AZURE:
        gone = await _heartbeating(azure.delete_azure_vm(resource_group, owner))
    else:
        raise InvalidRequest(f"unknown platform {host.platform!r} of host {host.address}")
    if gone:
        await hostkeys.forget(host.address, node_name, node_ip=host.ip or host.address)
    return gone


@activity.defn(name="release_vm")
@boundary
async def release_vm(inp: CreateVmInput) -> bool:
    """Compensation when `create_vm` itself failed for good: a VM that this very workflow run
    launched (found by its tags and its run marker, never an earlier run's or anyone else's)
    is deleted, and the pin of its address forgotten. True if one was deleted."""
    if inp.platform == Platform.BYOH:
        return False
    full = with_defaults(inp, settings())
    owner = await _owner(full.pool, full.node_name)
    if full.aws is not None:
        region = aws.region_for(full.aws.region)
        instance = await aws.find_instance(region, owner)
        if instance is None or not aws.launched_by(instance, owner, _run_id()):
            return False
        await _heartbeating(aws.terminate_aws_instance(instance["InstanceId"], region, owner))
        address = str(instance.get("PrivateIpAddress") or "")
    elif full.azure is not None and full.azure.resource_group:
        released = await _heartbeating(
            azure.release_azure_vm(full.azure.resource_group, owner, _run_id())
        )
        if released is None:
            return False
        address = released
    else:
        return False
    if address:
        await hostkeys.forget(address, full.node_name, node_ip=address)
    return True


@activity.defn(name="retire_vm")
@boundary
async def retire_vm(vm: PoolVm) -> bool:
    """Delete the VM of a pool's node, found by its tags (this cluster, `vm.pool`, `vm.node_name`:
    all three must match), and forget its host-key pin. For nodes the pool launched in earlier
    runs (scale-down, rolling replacement). True once it is gone (or was never there)."""
    if vm.platform == Platform.BYOH:
        return False
    owner = await _owner(vm.pool, vm.node_name)
    address = ""
    if vm.platform == Platform.AWS:
        region = aws.region_for(vm.region)
        instance = await aws.find_instance(region, owner)
        if instance is None:
            return True
        address = str(instance.get("PrivateIpAddress") or "")
        await _heartbeating(aws.terminate_aws_instance(instance["InstanceId"], region, owner))
    else:
        resource_group = vm.resource_group or settings().azure_resource_group or ""
        if not resource_group:
            raise InvalidRequest(
                f"cannot find the VM of node {vm.node_name}: no resource group "
                "(the pool's azure.resourceGroup or WINFLEET_AZURE_RESOURCE_GROUP)"
            )
        address = await azure.vm_address(resource_group, owner) or ""
        await _heartbeating(azure.delete_azure_vm(resource_group, owner))
    if address:
        await hostkeys.forget(address, vm.node_name, node_ip=address)
    return True
