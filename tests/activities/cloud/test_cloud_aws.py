"""EC2 instances for Windows nodes, against moto's EC2 server: one per node, however often asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from cloud_twins import (
    CLUSTER,
    REGION,
    Ec2,
    eventually,
    free_port,
    kube_env,
    opened_ports,
    put_key_secret,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cloud import aws
from activities.cloud.ownership import Owner
from activities.cloud.vm import CreateVmInput, create_vm, terminate_vm
from activities.config import Settings, use_settings
from activities.contracts import AwsMachineSpec, HostRef, Platform
from activities.errors import CloudRequestRejected, CloudUnavailable
from sim.cloud.aws import AwsTwin
from sim.k8s.server import KubeTwin
from sim.windows.fleet import HostFleet


def spec(ec2: Ec2, **kw: object) -> AwsMachineSpec:
    base = {"subnet_id": ec2.subnet_id, "security_group_ids": (ec2.security_group_id,)}
    return AwsMachineSpec(**{**base, **kw})


async def create(
    pool: str,
    node: str,
    s: AwsMachineSpec,
    public_key: str,
    *,
    cluster: str = CLUSTER,
    run: str = "run-1",
) -> HostRef:
    """`create_aws_instance` inside an activity context (it heartbeats), as workflow run `run`."""
    return await ActivityEnvironment().run(
        aws.create_aws_instance, Owner(cluster, pool, node), s, public_key, incarnation=run
    )


async def test_creating_twice_launches_one_instance_and_returns_the_same_host(
    aws_env: Ec2, public_key: str
) -> None:
    first = await create("pool-a", "win-twice", spec(aws_env), public_key)
    second = await create("pool-a", "win-twice", spec(aws_env), public_key)

    assert first == second
    instances = aws_env.instances(**{"winfleet.io/node": "win-twice"})
    assert [i["InstanceId"] for i in instances] == [first.instance_id]
    assert first.platform is Platform.AWS
    assert first.username == "Administrator"
    assert first.created_by_us
    assert first.region == REGION
    assert first.address == instances[0]["PrivateIpAddress"]
    assert first.address.startswith("127.7.")


async def test_the_instance_is_tagged_for_its_pool_and_node_and_runs_the_chosen_image(
    aws_env: Ec2, public_key: str
) -> None:
    host = await create("pool-a", "win-tags", spec(aws_env), public_key)

    (inst,) = aws_env.instances(**{"winfleet.io/node": "win-tags"})
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags == {
        "Name": "win-tags",
        "winfleet.io/cluster": CLUSTER,
        "winfleet.io/pool": "pool-a",
        "winfleet.io/node": "win-tags",
    }
    assert inst["InstanceId"] == host.instance_id
    assert inst["ImageId"] == aws_env.image_id  # the newest ContainersLatest image
    assert inst["SubnetId"] == aws_env.subnet_id


async def test_user_data_authorises_the_public_key_and_holds_no_private_key(
    aws_env: Ec2, ssh_key: asyncssh.SSHKey, public_key: str
) -> None:
    host = await create("pool-a", "win-userdata", spec(aws_env), public_key)
    assert host.instance_id is not None

    data = aws_env.user_data(host.instance_id)
    assert data.startswith("<powershell>")
    assert public_key in data
    assert "PRIVATE KEY" not in data
    private_pem = ssh_key.export_private_key("openssh").decode()
    assert "".join(private_pem.splitlines()[1:-1])[:40] not in data.replace("\n", "")


async def test_same_pool_and_node_in_a_second_pool_gets_its_own_instance(
    aws_env: Ec2, public_key: str
) -> None:
    a = await create("pool-a", "win-shared", spec(aws_env), public_key)
    b = await create("pool-b", "win-shared", spec(aws_env), public_key)
    assert a.instance_id != b.instance_id


async def test_a_retried_launch_reuses_the_first_instance_even_if_tags_are_not_visible_yet(
    aws_env: Ec2, public_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def tags_not_yet_visible(*_: object) -> None:
        return None  # as EC2's eventually consistent DescribeInstances may answer

    monkeypatch.setattr(aws, "find_instance", tags_not_yet_visible)
    env = ActivityEnvironment()
    args = (Owner(CLUSTER, "pool-a", "win-token"), spec(aws_env), public_key)
    first = await env.run(aws.create_aws_instance, *args, incarnation="run-1")
    retry = await env.run(aws.create_aws_instance, *args, incarnation="run-1")

    assert retry == first
    assert len(aws_env.instances(**{"winfleet.io/node": "win-token"})) == 1


async def test_terminating_twice_is_fine_and_leaves_the_instance_terminated(
    aws_env: Ec2, public_key: str
) -> None:
    host = await create("pool-a", "win-term", spec(aws_env), public_key)
    assert host.instance_id is not None

    assert await ActivityEnvironment().run(terminate_vm, host) is True
    assert await ActivityEnvironment().run(terminate_vm, host) is True

    assert aws_env.state(host.instance_id) in ("shutting-down", "terminated")
    assert aws_env.instances(**{"winfleet.io/node": "win-term"}) == []


async def test_terminating_an_instance_ec2_no_longer_knows_is_fine(aws_env: Ec2) -> None:
    owner = Owner(CLUSTER, "pool-a", "win-gone")
    assert await aws.terminate_aws_instance("i-0123456789abcdef0", REGION, owner) is True


async def test_an_instance_winfleet_did_not_tag_is_never_terminated(aws_env: Ec2) -> None:
    c = aws_env.client()
    foreign = c.run_instances(
        ImageId=aws_env.image_id, MinCount=1, MaxCount=1, SubnetId=aws_env.subnet_id
    )["Instances"][0]["InstanceId"]

    with pytest.raises(CloudRequestRejected, match=r"not tagged by winfleet.*will not terminate"):
        await aws.terminate_aws_instance(foreign, REGION, Owner(CLUSTER, "pool-a", "win-x"))
    assert aws_env.state(foreign) == "running"
    c.terminate_instances(InstanceIds=[foreign])


async def test_an_unknown_image_is_rejected_and_no_instance_is_left(
    aws_env: Ec2, public_key: str
) -> None:
    bad = spec(aws_env, image_id="ami-0123456789abcdef0")
    with pytest.raises(CloudRequestRejected, match="ami-0123456789abcdef0") as err:
        await create("pool-a", "win-badami", bad, public_key)
    assert "image_id" in err.value.message
    assert aws_env.instances(**{"winfleet.io/node": "win-badami"}) == []


async def test_nodes_launched_together_or_soon_after_look_their_image_up_once_a_bad_one_always(
    aws_env: Ec2, public_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    call = aws._call

    async def counted(region: str, op: str, what: str, **kwargs: object) -> dict[str, object]:
        calls.append(op)
        return await call(region, op, what, **kwargs)

    monkeypatch.setattr(aws, "_call", counted)
    aws._images.clear()
    await asyncio.gather(
        *(create("pool-img", node, spec(aws_env), public_key) for node in ("win-img1", "win-img2"))
    )
    await create("pool-img", "win-img3", spec(aws_env), public_key)
    assert calls.count("describe_images") == 1
    bad = spec(aws_env, image_id="ami-0fedcba9876543210")
    for node in ("win-bad1", "win-bad2"):
        with pytest.raises(CloudRequestRejected, match="ami-0fedcba9876543210"):
            await create("pool-img", node, bad, public_key)
    assert calls.count("describe_images") == 3  # a refusal is never remembered


async def test_a_linux_image_is_rejected_and_no_instance_is_left(
    aws_env: Ec2, public_key: str
) -> None:
    images = aws_env.client().describe_images(Owners=["amazon"])["Images"]
    linux = next(i["ImageId"] for i in images if i.get("Platform") != "windows")
    with pytest.raises(CloudRequestRejected, match="not a Windows image"):
        await create("pool-a", "win-linux", spec(aws_env, image_id=linux), public_key)
    assert aws_env.instances(**{"winfleet.io/node": "win-linux"}) == []


async def test_an_unknown_subnet_is_rejected_as_permanent(aws_env: Ec2, public_key: str) -> None:
    with pytest.raises(CloudRequestRejected, match="InvalidSubnetID"):
        await create(
            "pool-a", "win-nosubnet", spec(aws_env, subnet_id="subnet-0bad0bad"), public_key
        )
    assert aws_env.instances(**{"winfleet.io/node": "win-nosubnet"}) == []


async def test_an_unreachable_ec2_endpoint_is_retryable(
    public_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNREACHABLE00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unused")
    use_settings(
        Settings.from_env({"AWS_ENDPOINT_URL": "http://127.7.0.1:9", "AWS_REGION": REGION})
    )
    try:
        with pytest.raises(CloudUnavailable, match="unreachable"):
            await aws.create_aws_instance(
                Owner(CLUSTER, "pool-a", "win-down"), AwsMachineSpec(), public_key
            )
    finally:
        use_settings(Settings.from_env({}))


async def test_create_vm_activity_reads_the_key_from_its_secret_and_launches_once(
    kube_twin: KubeTwin, ec2: Ec2, ssh_key: asyncssh.SSHKey, public_key: str, aws_env: Ec2
) -> None:
    use_settings(
        Settings.from_env(
            kube_env(
                kube_twin,
                AWS_ENDPOINT_URL=ec2.endpoint_url,
                AWS_REGION=REGION,
                WINFLEET_AWS_SUBNET_ID=ec2.subnet_id,
                WINFLEET_AWS_SECURITY_GROUP_ID=ec2.security_group_id,
            )
        )
    )
    await put_key_secret("cloud-private-key", ssh_key)
    inp = CreateVmInput("pool-a", "win-activity", Platform.AWS, aws=AwsMachineSpec())

    env = ActivityEnvironment()
    first = await env.run(create_vm, inp)
    again = await env.run(create_vm, inp)

    assert first == again
    (inst,) = ec2.instances(**{"winfleet.io/node": "win-activity"})
    assert inst["SubnetId"] == ec2.subnet_id
    assert [g["GroupId"] for g in inst["SecurityGroups"]] == [ec2.security_group_id]
    assert public_key in ec2.user_data(str(first.instance_id))


async def test_create_vm_with_invalid_input_creates_nothing(aws_env: Ec2, public_key: str) -> None:
    before = len(aws_env.instances())
    inp = CreateVmInput(
        "pool-a", "Win_Invalid", Platform.AWS, aws=AwsMachineSpec(image_id="windows-latest")
    )
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(create_vm, inp)
    assert err.value.type == "InvalidRequest"
    assert err.value.non_retryable
    assert "node name" in err.value.message and "aws.image_id" in err.value.message
    assert len(aws_env.instances()) == before


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "RunInstances",
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_client_error("RequestLimitExceeded", 503), CloudUnavailable),
        (_client_error("Throttling", 400), CloudUnavailable),
        (_client_error("InternalError", 500), CloudUnavailable),
        (_client_error("InsufficientInstanceCapacity", 500), CloudUnavailable),
        (_client_error("InvalidAMIID.NotFound", 400), CloudRequestRejected),
        (_client_error("InvalidSubnetID.NotFound", 400), CloudRequestRejected),
        (_client_error("InvalidParameterValue", 400), CloudRequestRejected),
        (_client_error("UnauthorizedOperation", 403), CloudRequestRejected),
        (_client_error("AuthFailure", 401), CloudRequestRejected),
        (_client_error("InvalidInstanceID.NotFound", 400), aws.InstanceNotFound),
        (EndpointConnectionError(endpoint_url="http://x"), CloudUnavailable),
    ],
)
def test_botocore_errors_map_to_what_the_caller_should_do(
    exc: Exception, expected: type[Exception]
) -> None:
    assert type(aws.translate(exc, "launch")) is expected


async def test_the_booted_ec2_host_trusts_winfleets_key_from_the_user_data(
    tmp_path: Path, ssh_key: asyncssh.SSHKey, public_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = HostFleet(tmp_path / "hosts", ssh_port=free_port())
    await fleet.start()
    twin = AwsTwin(fleet, cidr="127.7.100.0/24", boot_seconds=0.0, poll_interval=0.05)
    await twin.start()
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", twin.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", twin.secret_key)
        env = {"AWS_ENDPOINT_URL": twin.endpoint_url, "AWS_REGION": twin.region}
        use_settings(Settings.from_env(env))
        s = AwsMachineSpec(subnet_id=twin.subnet_id, security_group_ids=(twin.security_group_id,))

        host = await create("pool-a", "win-boot", s, public_key)

        await eventually("the instance's host", lambda: host.instance_id in twin.hosted)
        sim_host = fleet.get(host.address)
        await sim_host.wait_up()
        assert ssh_key.public_data in sim_host.authorized_key_blobs()
        assert opened_ports(sim_host) == [22, 9182, 10250]
    finally:
        use_settings(Settings.from_env({}))
        await twin.stop()
        await fleet.stop()
