"""EC2: create the Windows instance for a node, wait until it runs, terminate it.

Called by `activities/cloud/vm.py` (the `create_vm` / `terminate_vm` / `release_vm`
activities). Idempotent twice over: an instance tagged for this cluster, pool and node is
reused, and `RunInstances` carries a ClientToken derived from pool, node and workflow run, so a
retried call never launches a second instance. That token, which DescribeInstances shows, also
tells whether this very run launched an instance (`HostRef.created_by_us`). Terminating checks
the instance's cluster, pool and node tag values first. botocore exceptions are translated here
and nowhere else (`translate`). boto3 is synchronous: each call runs on the blocking pool
(activities/blocking.py), inside a span. Instances being waited on share one DescribeInstances
loop per region (activities/cloud/instance_states.py) rather than each polling on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from temporalio import activity

from activities import blocking
from activities.cloud.instance_states import InstanceStates
from activities.cloud.ownership import Owner, TaggedVm, TagNames
from activities.cloud.userdata import windows_user_data
from activities.config import on_settings_change, settings
from activities.contracts import AwsMachineSpec, HostAddress, HostRef, InstanceId, Platform
from activities.errors import (
    CloudRequestRejected,
    CloudUnavailable,
    InvalidRequest,
    WinfleetError,
)
from activities.reuse import Reused
from activities.tracing import span

log = logging.getLogger(__name__)

USERNAME = "Administrator"  # the SSH user on AWS Windows images (WMCO)
DEFAULT_IMAGE_NAME = "Windows_Server-2019-English-Full-ContainersLatest-*"
# Amazon's own images, or the account's (an admin's golden image); never a stranger's public AMI.
IMAGE_OWNERS = ("amazon", "self")
TAG_POOL = "winfleet.io/pool"
TAG_NODE = "winfleet.io/node"
TAG_CLUSTER = "winfleet.io/cluster"
TAGS = TagNames(cluster=TAG_CLUSTER, pool=TAG_POOL, node=TAG_NODE)
RUNNING_TIMEOUT = 600.0  # s; EC2 starts a Windows instance in 1-3 min, 10 min is WMCO's bound
POLL_INTERVAL = 5.0  # s between DescribeInstances while waiting for `running`
DESCRIBE_IDS = 100  # instance ids per DescribeInstances call of the shared loop
_LIVE_STATES = ("pending", "running", "stopping", "stopped")
_GONE_STATES = ("shutting-down", "terminated")

_UNAVAILABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "Unavailable",
        "InternalError",
        "InternalFailure",
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
    }
)
_AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "OptInRequired",
        "Blocked",
        "AccessDenied",
        "AccessDeniedException",
    }
)


class InstanceNotFound(WinfleetError):
    """The instance id is unknown to EC2 (long terminated); callers decide if that is fine."""


def translate(exc: Exception, what: str) -> WinfleetError:
    """Map a botocore exception to a winfleet error (the single place to do so)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        message = str(err.get("Message", ""))[:300]
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code == "InvalidInstanceID.NotFound":
            return InstanceNotFound(f"{what}: EC2 does not know the instance ({message})")
        if code in _UNAVAILABLE_CODES or status >= 500 or status == 429:
            return CloudUnavailable(f"{what}: EC2 answered {code or status} ({message}); retrying")
        if code in _AUTH_CODES:
            return CloudRequestRejected(
                f"{what}: EC2 refused winfleet's credentials or permissions ({code}: {message}); "
                "check the worker's AWS credentials and IAM policy"
            )
        return CloudRequestRejected(f"{what}: EC2 rejected the request ({code}: {message})")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return CloudRequestRejected(
            f"{what}: no usable AWS credentials on the worker ({type(exc).__name__}); "
            "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an instance/pod role"
        )
    if isinstance(exc, NoRegionError | ParamValidationError):
        return InvalidRequest(f"{what}: {exc}")
    if isinstance(exc, BotoCoreError):
        return CloudUnavailable(f"{what}: EC2 unreachable ({type(exc).__name__})")
    raise exc


_clients: dict[str, Any] = {}  # region -> EC2 client


def ec2_client(region: str) -> Any:
    """An EC2 client for `region` at the configured endpoint (cached; reset on new settings)."""
    if region not in _clients:
        _clients[region] = boto3.session.Session().client(
            "ec2",
            region_name=region,
            endpoint_url=settings().aws_endpoint_url,
            config=Config(
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=10,
                read_timeout=60,
                max_pool_connections=blocking.size(),
            ),
        )
    return _clients[region]


_states: dict[str, InstanceStates] = {}  # region -> the shared describe loop
_states_loop: list[asyncio.AbstractEventLoop] = []


def _close_clients() -> None:
    while _clients:
        _clients.popitem()[1].close()
    _states.clear()
    _images.clear()


on_settings_change(_close_clients)


def region_for(spec_region: str = "") -> str:
    region = spec_region or settings().aws_region
    if not region:
        raise InvalidRequest(
            "no AWS region: set the pool's aws.region or AWS_REGION/AWS_DEFAULT_REGION"
        )
    return region


async def _call(region: str, op: str, what: str, **kwargs: Any) -> dict[str, Any]:
    """One EC2 API call on the blocking pool, traced, with errors translated."""
    with span("aws " + op, region=region, call=what):
        try:
            client = ec2_client(region)
            result: dict[str, Any] = await blocking.run(getattr(client, op), **kwargs)
            return result
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, what) from exc


def client_token(owner: Owner, incarnation: str) -> str:
    """RunInstances idempotency token: the same for retries of one workflow run (≤ 64 chars)."""
    text = f"{owner.cluster}\0{owner.pool}\0{owner.node}\0{incarnation}"
    return hashlib.sha256(text.encode()).hexdigest()


def _tags(instance: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in instance.get("Tags", ())}


def _heartbeat(*details: Any) -> None:
    if activity.in_activity():
        activity.heartbeat(*details)


async def find_instance(region: str, owner: Owner) -> dict[str, Any] | None:
    """The live instance tagged for this cluster, pool and node (all three values), oldest
    first if (wrongly) several."""
    out = await _call(
        region,
        "describe_instances",
        f"look up the instance of node {owner.node}",
        Filters=[
            *(
                {"Name": f"tag:{name}", "Values": [value]}
                for name, value in TAGS.tags(owner).items()
            ),
            {"Name": "instance-state-name", "Values": list(_LIVE_STATES)},
        ],
    )
    found = [
        i
        for r in out.get("Reservations", ())
        for i in r.get("Instances", ())
        if TAGS.owner_of(_tags(i)) == owner
    ]
    if len(found) > 1:
        log.warning(
            "several instances are tagged for %s: %s; using the oldest",
            owner,
            [i["InstanceId"] for i in found],
        )
    found.sort(key=lambda i: (str(i.get("LaunchTime", "")), str(i["InstanceId"])))
    return found[0] if found else None


async def pool_instances(region: str, cluster: str, pool: str) -> list[TaggedVm]:
    """Every live instance tagged for this cluster and pool (any node), pages followed."""
    found: list[TaggedVm] = []
    token: dict[str, str] = {}
    while True:
        out = await _call(
            region,
            "describe_instances",
            f"list the instances of pool {pool}",
            Filters=[
                {"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster]},
                {"Name": f"tag:{TAG_POOL}", "Values": [pool]},
                {"Name": "instance-state-name", "Values": list(_LIVE_STATES)},
            ],
            **token,
        )
        for r in out.get("Reservations", ()):
            for i in r.get("Instances", ()):
                owner = TAGS.owner_of(_tags(i))
                if owner is not None and owner.cluster == cluster and owner.pool == pool:
                    launched = i.get("LaunchTime")
                    when = launched.isoformat() if hasattr(launched, "isoformat") else ""
                    found.append(TaggedVm(str(i["InstanceId"]), owner, when))
        if not out.get("NextToken"):
            return found
        token = {"NextToken": str(out["NextToken"])}


IMAGE_REUSE_S = 300.0
# (region, image id asked for, "" for the default) -> the image id to launch: nodes of a pool
# launched together look their image up once, not once each.
_images: Reused[tuple[str, str], str] = Reused(IMAGE_REUSE_S)


async def resolve_image(region: str, image_id: str, node_name: str) -> str:
    """`_resolve_image`'s answer, shared and reused for IMAGE_REUSE_S (failures are not)."""
    return await _images.get(
        (region, image_id), lambda: _resolve_image(region, image_id, node_name)
    )


async def _resolve_image(region: str, image_id: str, node_name: str) -> str:
    """`image_id` checked to exist and be Windows, or the newest Windows Server 2019 image."""
    what = f"find the image for node {node_name}"
    if image_id:
        try:
            out = await _call(region, "describe_images", what, ImageIds=[image_id])
        except CloudRequestRejected as exc:
            raise CloudRequestRejected(
                f"image {image_id} for node {node_name} is not usable in {region}: "
                f"{exc.message}; fix the pool's aws.image_id or WINFLEET_AWS_IMAGE_ID"
            ) from exc
        images = out.get("Images", [])
        if not images:
            raise CloudRequestRejected(
                f"image {image_id} for node {node_name} does not exist in {region}; "
                "fix the pool's aws.image_id or WINFLEET_AWS_IMAGE_ID"
            )
        if str(images[0].get("Platform", "")).lower() != "windows":
            raise CloudRequestRejected(
                f"image {image_id} for node {node_name} is not a Windows image; "
                "use a Windows Server 2019/2022 image with OpenSSH server"
            )
        return image_id
    out = await _call(
        region,
        "describe_images",
        what,
        Owners=list(IMAGE_OWNERS),
        Filters=[
            {"Name": "name", "Values": [DEFAULT_IMAGE_NAME]},
            {"Name": "platform", "Values": ["windows"]},
            {"Name": "state", "Values": ["available"]},
        ],
    )
    images = sorted(out.get("Images", []), key=lambda i: str(i.get("CreationDate", "")))
    if not images:
        raise CloudRequestRejected(
            f"no image named {DEFAULT_IMAGE_NAME} in {region} for node {node_name}; "
            "set the pool's aws.image_id or WINFLEET_AWS_IMAGE_ID"
        )
    return str(images[-1]["ImageId"])


async def _run_instance(
    region: str,
    owner: Owner,
    spec: AwsMachineSpec,
    image_id: str,
    public_key: str,
    incarnation: str,
) -> dict[str, Any]:
    node_name = owner.node
    tags = [
        {"Key": "Name", "Value": node_name},
        *({"Key": name, "Value": value} for name, value in TAGS.tags(owner).items()),
    ]
    params: dict[str, Any] = {
        "ImageId": image_id,
        "InstanceType": spec.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "ClientToken": client_token(owner, incarnation),
        "UserData": windows_user_data(public_key),  # boto3 base64-encodes it
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
    }
    if spec.subnet_id:
        params["SubnetId"] = spec.subnet_id
    if spec.security_group_ids:
        params["SecurityGroupIds"] = list(spec.security_group_ids)
    out = await _call(region, "run_instances", f"launch the instance of node {node_name}", **params)
    instance: dict[str, Any] = out["Instances"][0]
    log.info("launched instance %s for %s (image %s)", instance["InstanceId"], owner, image_id)
    return instance


async def _describe_instance(region: str, instance_id: str, what: str) -> dict[str, Any] | None:
    try:
        out = await _call(region, "describe_instances", what, InstanceIds=[instance_id])
    except InstanceNotFound:
        return None  # unknown: just launched (eventual consistency) or long gone
    for r in out.get("Reservations", ()):
        for i in r.get("Instances", ()):
            return dict(i)
    return None


def _instance_states(region: str) -> InstanceStates:
    """The shared describe loop of `region` (for the running event loop)."""
    loop = asyncio.get_running_loop()
    if _states_loop != [loop]:
        _states.clear()
        _states_loop[:] = [loop]
    if region not in _states:

        async def describe(ids: list[str]) -> dict[str, dict[str, Any]]:
            return await _describe_instances(region, ids)

        _states[region] = InstanceStates(describe, POLL_INTERVAL)
    return _states[region]


async def _describe_instances(region: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The instances among `ids` that EC2 knows, by id (an `instance-id` filter, unlike
    InstanceIds, does not fail the whole call for an id not visible yet)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), DESCRIBE_IDS):
        chunk = ids[start : start + DESCRIBE_IDS]
        token = ""
        while True:
            out = await _call(
                region,
                "describe_instances",
                f"wait for {len(chunk)} instance(s) to run",
                Filters=[{"Name": "instance-id", "Values": chunk}],
                **({"NextToken": token} if token else {}),
            )
            for r in out.get("Reservations", ()):
                for i in r.get("Instances", ()):
                    found[str(i["InstanceId"])] = dict(i)
            token = str(out.get("NextToken") or "")
            if not token:
                break
    return found


async def wait_running(
    region: str,
    instance_id: str,
    owner: Owner,
    *,
    created_by_us: bool,
    wait_limit: float = RUNNING_TIMEOUT,
) -> HostRef:
    """Wait (heartbeating) until the instance runs and has a private IP; its state comes from
    the region's shared describe loop."""
    node_name = owner.node
    deadline = time.monotonic() + wait_limit
    what = f"wait for instance {instance_id} of node {node_name}"
    started = False
    states = _instance_states(region)
    while True:
        inst = await states.next_state(instance_id)
        state = str(((inst or {}).get("State") or {}).get("Name", "pending"))
        _heartbeat(instance_id, state)
        if inst is not None and state == "running" and inst.get("PrivateIpAddress"):
            address = str(inst["PrivateIpAddress"])
            return HostRef(
                platform=Platform.AWS,
                address=HostAddress(address),
                username=USERNAME,
                instance_id=InstanceId(instance_id),
                created_by_us=created_by_us,
                region=region,
                ip=address,
                pool=owner.pool,
                node_name=node_name,
            )
        if state in _GONE_STATES:
            reason = str(((inst or {}).get("StateReason") or {}).get("Message", ""))[:200]
            raise CloudRequestRejected(
                f"instance {instance_id} of node {node_name} is {state} ({reason}); "
                "check the image, instance type and subnet"
            )
        if state == "stopped" and not started:
            await _call(region, "start_instances", what, InstanceIds=[instance_id])
            started = True
        if time.monotonic() >= deadline:
            raise CloudUnavailable(
                f"instance {instance_id} of node {node_name} is still {state} after "
                f"{wait_limit:.0f} s; the next attempt keeps waiting for the same instance"
            )


def launched_by(instance: Mapping[str, Any], owner: Owner, incarnation: str) -> bool:
    """Whether the workflow run `incarnation` launched `instance` (its ClientToken says so)."""
    token = client_token(owner, incarnation)
    return bool(incarnation) and str(instance.get("ClientToken", "")) == token


async def create_aws_instance(
    owner: Owner,
    spec: AwsMachineSpec,
    public_key: str,
    *,
    incarnation: str = "",
    wait_limit: float = RUNNING_TIMEOUT,
) -> HostRef:
    """The running instance for the node: found by its tags, or launched.

    `incarnation` (the workflow run id) goes into the ClientToken, so retries within one run
    share a token while a later replacement of the same node gets a new instance. The HostRef
    says `created_by_us` only when this run launched the instance.
    """
    windows_user_data(public_key)  # refuse a malformed/private key before anything exists
    region = region_for(spec.region)
    existing = await find_instance(region, owner)
    if existing is not None:
        instance_id = str(existing["InstanceId"])
        ours = launched_by(existing, owner, incarnation)
        log.info(
            "%s already has instance %s (%s); reusing it",
            owner,
            instance_id,
            "launched by this run" if ours else "launched earlier",
        )
    else:
        image_id = await resolve_image(region, spec.image_id, owner.node)
        launched = await _run_instance(region, owner, spec, image_id, public_key, incarnation)
        instance_id = str(launched["InstanceId"])
        ours = True  # launched by this call (or, same token, by an earlier attempt of this run)
    return await wait_running(region, instance_id, owner, created_by_us=ours, wait_limit=wait_limit)


async def terminate_aws_instance(instance_id: str, region: str, owner: Owner) -> bool:
    """Terminate an instance winfleet launched for `owner`; a terminated/unknown one is fine.

    Refuses (CloudRequestRejected) an instance whose cluster, pool and node tag values are not
    exactly `owner`'s: never another cluster's, pool's or anyone else's VM. Returns True once
    the instance is terminated or terminating.
    """
    reg = region_for(region)
    what = f"terminate instance {instance_id}"
    inst = await _describe_instance(reg, instance_id, what)
    if inst is None:
        log.info("instance %s is unknown to EC2; nothing to terminate", instance_id)
        return True
    if str(inst.get("State", {}).get("Name")) in _GONE_STATES:
        return True
    if TAGS.owner_of(_tags(inst)) != owner:
        raise CloudRequestRejected(
            f"instance {instance_id} is {TAGS.whose(_tags(inst))}, not for {owner}: "
            "winfleet will not terminate it"
        )
    try:
        await _call(reg, "terminate_instances", what, InstanceIds=[instance_id])
    except InstanceNotFound:
        return True
    log.info("terminating instance %s (%s)", instance_id, owner)
    return True
