"""The AWS twin as an EC2 user sees it: boto3 against moto, instances that boot into SSH hosts."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sim.cloud.aws import IMAGE_NAME, AwsTwin, ec2_hostname
from sim.windows.fleet import HostFleet
from tests.sim_cloud.conftest import (
    AWS_CIDR,
    BOOT_SECONDS,
    authorized_key_user_data,
    ssh,
    wait_until,
)

MOTO_WINDOWS_2016_AMI = "ami-bceb39c5"  # moto's public Windows_Server-2016-...-Containers
OS_QUERY = (
    'powershell.exe -NoLogo -NoProfile -NonInteractive -Command "Get-CimInstance '
    '-ClassName Win32_OperatingSystem | ConvertTo-Json"'
)


@pytest.fixture
async def aws(fleet: HostFleet) -> AsyncIterator[AwsTwin]:
    twin = AwsTwin(fleet, cidr=AWS_CIDR, boot_seconds=BOOT_SECONDS, poll_interval=0.1)
    await twin.start()
    yield twin
    await twin.stop()


def launch(aws: AwsTwin, user_data: str, **extra: str) -> dict:
    extra.setdefault("ImageId", aws.image_id)
    return aws.client().run_instances(
        MinCount=1,
        MaxCount=1,
        InstanceType="m5a.large",
        SubnetId=aws.subnet_id,
        SecurityGroupIds=[aws.security_group_id],
        UserData=user_data,
        **extra,
    )["Instances"][0]


async def test_seeded_image_is_windows_server_2019_in_a_loopback_subnet(aws: AwsTwin) -> None:
    ec2 = aws.client()
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": [IMAGE_NAME]}])
    assert [(i["ImageId"], i["Name"], i["Platform"]) for i in images["Images"]] == [
        (aws.image_id, IMAGE_NAME, "windows")
    ]
    subnet = ec2.describe_subnets(SubnetIds=[aws.subnet_id])["Subnets"][0]
    assert subnet["CidrBlock"] == AWS_CIDR
    group = ec2.describe_security_groups(GroupIds=[aws.security_group_id])["SecurityGroups"][0]
    assert {p["FromPort"] for p in group["IpPermissions"]} == {22, 10250, 9182}


async def test_instance_refuses_ssh_until_booted_then_accepts_the_user_data_key(
    aws: AwsTwin, client_key: asyncssh.SSHKey
) -> None:
    public = client_key.export_public_key().decode().strip()
    inst = launch(aws, authorized_key_user_data(public))
    address = inst["PrivateIpAddress"]
    assert address.startswith("127.11.")

    assert await ssh(address, client_key, "Administrator") == "refused"
    took = await wait_until(
        lambda: _ssh_is(address, client_key, ec2_hostname(inst["InstanceId"])),
        "the instance to boot and accept the key",
    )
    assert took >= BOOT_SECONDS * 0.8
    attr = aws.client().describe_instance_attribute(
        InstanceId=inst["InstanceId"], Attribute="userData"
    )
    assert base64.b64decode(attr["UserData"]["Value"]).decode().startswith("<powershell>")


async def test_a_key_not_provisioned_through_user_data_is_denied(
    aws: AwsTwin, client_key: asyncssh.SSHKey
) -> None:
    public = client_key.export_public_key().decode().strip()
    address = launch(aws, authorized_key_user_data(public))["PrivateIpAddress"]
    await wait_until(lambda: _ssh_up(address, client_key), "the instance to boot")

    stranger = asyncssh.generate_private_key("ssh-ed25519")
    assert await ssh(address, stranger, "Administrator") == "denied"


async def test_terminated_instance_stops_answering_ssh(
    aws: AwsTwin, client_key: asyncssh.SSHKey
) -> None:
    public = client_key.export_public_key().decode().strip()
    inst = launch(aws, authorized_key_user_data(public))
    address = inst["PrivateIpAddress"]
    await wait_until(lambda: _ssh_up(address, client_key), "the instance to boot")

    aws.client().terminate_instances(InstanceIds=[inst["InstanceId"]])

    async def refused() -> bool:
        return await ssh(address, client_key, "Administrator") == "refused"

    await wait_until(refused, "the terminated instance's host to go away", deadline=15)
    assert inst["InstanceId"] not in aws.hosted


async def test_instance_from_a_windows_server_2016_image_reports_build_14393(
    aws: AwsTwin, client_key: asyncssh.SSHKey
) -> None:
    public = client_key.export_public_key().decode().strip()
    inst = launch(aws, authorized_key_user_data(public), ImageId=MOTO_WINDOWS_2016_AMI)
    address = inst["PrivateIpAddress"]
    await wait_until(lambda: _ssh_up(address, client_key), "the instance to boot")

    out = await ssh(address, client_key, "Administrator", OS_QUERY)
    assert out.startswith("{"), out
    assert json.loads(out)["BuildNumber"] == "14393"


async def test_stopped_instance_is_unreachable_and_comes_back_with_its_disk_and_ip(
    aws: AwsTwin, client_key: asyncssh.SSHKey
) -> None:
    public = client_key.export_public_key().decode().strip()
    inst = launch(aws, authorized_key_user_data(public))
    address, hostname = inst["PrivateIpAddress"], ec2_hostname(inst["InstanceId"])
    await wait_until(lambda: _ssh_is(address, client_key, hostname), "the instance to boot")
    for line in (
        'powershell.exe -Command "Set-Content -Path C:\\notes.txt -Value before-stop"',
        'sc.exe create agent-copy binPath= "C:\\Windows\\System32\\OpenSSH\\ssh-agent.exe" '
        "start= auto",
    ):
        assert await ssh(address, client_key, "Administrator", line) != "dropped"

    aws.client().stop_instances(InstanceIds=[inst["InstanceId"]])

    async def refused() -> bool:
        return await ssh(address, client_key, "Administrator") == "refused"

    await wait_until(refused, "the stopped instance to stop answering", deadline=5)
    host = aws.fleet.get(address)
    assert not host.powered_on
    assert set(host.services.values()) == {"Stopped"}

    aws.client().start_instances(InstanceIds=[inst["InstanceId"]])
    await wait_until(lambda: _ssh_is(address, client_key, hostname), "the instance to restart")
    described = aws.client().describe_instances(InstanceIds=[inst["InstanceId"]])
    assert described["Reservations"][0]["Instances"][0]["PrivateIpAddress"] == address
    read_back = 'powershell.exe -Command "Get-Content -Path C:\\notes.txt"'
    assert await ssh(address, client_key, "Administrator", read_back) == "before-stop"
    assert aws.fleet.get(address) is host  # the same host, booted again
    assert host.services["agent-copy"] == "Running"  # an Automatic service started at boot


async def test_run_instances_with_the_same_client_token_launches_only_once(
    aws: AwsTwin,
) -> None:
    first = launch(aws, "", ClientToken="winfleet-node-7")
    again = launch(aws, "", ClientToken="winfleet-node-7")
    other = launch(aws, "", ClientToken="winfleet-node-8")

    assert again["InstanceId"] == first["InstanceId"]
    assert other["InstanceId"] != first["InstanceId"]
    reservations = aws.client().describe_instances()["Reservations"]
    live = [i for r in reservations for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    assert len(live) == 2


async def _ssh_is(address: str, key: asyncssh.SSHKey, hostname: str) -> bool:
    return await ssh(address, key, "Administrator") == hostname


async def _ssh_up(address: str, key: asyncssh.SSHKey) -> bool:
    return await ssh(address, key, "Administrator") not in ("refused", "dropped")


def no_retry_client(aws: AwsTwin) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id=aws.access_key,
        aws_secret_access_key=aws.secret_key,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


async def test_armed_capacity_fault_fails_run_instances_like_ec2_then_clears(
    aws: AwsTwin,
) -> None:
    aws.faults.add(
        "RunInstances",
        500,
        "InsufficientInstanceCapacity",
        "We currently do not have sufficient m5a.large capacity.",
    )
    with pytest.raises(ClientError) as err:
        no_retry_client(aws).run_instances(
            ImageId=aws.image_id, MinCount=1, MaxCount=1, SubnetId=aws.subnet_id
        )
    assert err.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
    assert launch(aws, "")["InstanceId"].startswith("i-")


async def test_throttling_is_retried_by_boto3_and_surfaces_once_retries_run_out(
    aws: AwsTwin,
) -> None:
    aws.faults.add("DescribeImages", 503, "RequestLimitExceeded", "Request limit exceeded.")
    assert aws.client().describe_images(ImageIds=[aws.image_id])["Images"]  # retried

    aws.faults.add("DescribeImages", 503, "RequestLimitExceeded", "Request limit exceeded.")
    with pytest.raises(ClientError) as err:
        no_retry_client(aws).describe_images(ImageIds=[aws.image_id])
    assert err.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert [f.code for f in aws.faults.taken] == ["RequestLimitExceeded"] * 2
