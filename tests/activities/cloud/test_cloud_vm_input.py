"""What `create_vm` accepts, what it refuses before touching any cloud, and `terminate_vm`'s
refusal to touch hosts winfleet did not create."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncssh
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cloud.vm import (
    CreateVmInput,
    create_vm,
    create_vm_input_problems,
    terminate_vm,
    validate_create_vm_input,
    with_defaults,
)
from activities.config import Settings, use_settings
from activities.contracts import (
    AwsMachineSpec,
    AzureMachineSpec,
    ByohHostSpec,
    HostAddress,
    HostRef,
    InstanceId,
    Platform,
)
from activities.errors import InvalidRequest

SUBNET = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.Network/virtualNetworks/vnet/subnets/windows"
)
AWS = CreateVmInput("pool-a", "win-a1", Platform.AWS, aws=AwsMachineSpec())
AZURE = CreateVmInput(
    "pool-a",
    "win-a1",
    Platform.AZURE,
    azure=AzureMachineSpec(resource_group="rg", location="westeurope", subnet_id=SUBNET),
)
BYOH = CreateVmInput("pool-a", "win-a1", Platform.BYOH, byoh=ByohHostSpec(address="10.0.0.5"))


@pytest.mark.parametrize("inp", [AWS, AZURE, BYOH], ids=["aws", "azure", "byoh"])
def test_a_well_formed_request_for_each_platform_is_accepted(inp: CreateVmInput) -> None:
    assert create_vm_input_problems(inp) == []


@pytest.mark.parametrize(
    ("inp", "fix"),
    [
        (dataclasses.replace(AWS, node_name="Win-A1"), "lowercase RFC 1123 label"),
        (dataclasses.replace(AWS, node_name="win-node-number-1"), "at most 15 characters"),
        (dataclasses.replace(AWS, node_name="12345"), "not all digits"),
        (dataclasses.replace(AWS, node_name="win_a1"), "lowercase RFC 1123 label"),
        (dataclasses.replace(AWS, node_name=""), "lowercase RFC 1123 label"),
        (dataclasses.replace(AWS, pool=""), "pool ''"),
        (dataclasses.replace(AWS, aws=None), "needs the 'aws' spec"),
        (dataclasses.replace(AWS, byoh=ByohHostSpec("10.0.0.5")), "'byoh' spec must be empty"),
        (dataclasses.replace(BYOH, aws=AwsMachineSpec()), "'aws' spec must be empty"),
        (dataclasses.replace(AWS, private_key_secret="Bad Name"), "not a Secret name"),
        (dataclasses.replace(AWS, aws=AwsMachineSpec(image_id="windows")), "not an AMI id"),
        (dataclasses.replace(AWS, aws=AwsMachineSpec(subnet_id="vpc-1234")), "not a subnet id"),
        (
            dataclasses.replace(AWS, aws=AwsMachineSpec(security_group_ids=("default",))),
            "not a security group id",
        ),
        (dataclasses.replace(AWS, aws=AwsMachineSpec(instance_type="")), "not an instance type"),
        (dataclasses.replace(AWS, aws=AwsMachineSpec(region="mars")), "not an AWS region"),
        (
            dataclasses.replace(AZURE, azure=AzureMachineSpec(subnet_id="windows")),
            "full subnet resource id",
        ),
        (
            dataclasses.replace(AZURE, azure=AzureMachineSpec(location="West Europe")),
            "not a location name",
        ),
        (dataclasses.replace(AZURE, azure=AzureMachineSpec(image_sku="")), "image_sku is empty"),
        (dataclasses.replace(BYOH, byoh=ByohHostSpec(address="")), "address is empty"),
        (dataclasses.replace(BYOH, byoh=ByohHostSpec(address="-bad-.example")), "valid DNS"),
        (dataclasses.replace(BYOH, byoh=ByohHostSpec(address="fd00::5")), "IPv6"),
        (dataclasses.replace(BYOH, byoh=ByohHostSpec(address="10.0.0.300")), "valid DNS"),
        (
            dataclasses.replace(BYOH, byoh=ByohHostSpec("10.0.0.5", username="a b")),
            "not a Windows user name",
        ),
        (dataclasses.replace(AWS, platform="gcp"), "not one of aws, azure, byoh"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_request_is_refused_saying_what_to_fix(inp: CreateVmInput, fix: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        validate_create_vm_input(inp)
    assert fix in err.value.message
    assert not err.value.retryable


def test_every_problem_is_reported_at_once() -> None:
    bad = CreateVmInput("", "Bad_Name", Platform.AWS, aws=AwsMachineSpec(image_id="x"))
    assert len(create_vm_input_problems(bad)) == 3


def test_byoh_accepts_dns_names_as_well_as_ipv4() -> None:
    inp = dataclasses.replace(BYOH, byoh=ByohHostSpec(address="win-1.lab.example.com"))
    assert create_vm_input_problems(inp) == []


def test_empty_spec_fields_come_from_the_workers_settings() -> None:
    s = Settings.from_env(
        {
            "WINFLEET_AWS_IMAGE_ID": "ami-0123456789abcdef0",
            "WINFLEET_AWS_SUBNET_ID": "subnet-0123abcd",
            "WINFLEET_AWS_SECURITY_GROUP_ID": "sg-0123abcd",
            "WINFLEET_AZURE_RESOURCE_GROUP": "nodes",
            "WINFLEET_AZURE_LOCATION": "northeurope",
            "WINFLEET_AZURE_SUBNET_ID": SUBNET,
        }
    )
    aws = with_defaults(AWS, s).aws
    assert aws == AwsMachineSpec(
        image_id="ami-0123456789abcdef0",
        subnet_id="subnet-0123abcd",
        security_group_ids=("sg-0123abcd",),
    )
    azure = with_defaults(CreateVmInput("p", "n", Platform.AZURE, azure=AzureMachineSpec()), s)
    assert azure.azure is not None
    assert (azure.azure.resource_group, azure.azure.location, azure.azure.subnet_id) == (
        "nodes",
        "northeurope",
        SUBNET,
    )


def test_explicit_spec_fields_win_over_the_workers_settings() -> None:
    s = Settings.from_env({"WINFLEET_AWS_IMAGE_ID": "ami-0123456789abcdef0"})
    inp = dataclasses.replace(AWS, aws=AwsMachineSpec(image_id="ami-fedcba98"))
    assert with_defaults(inp, s).aws == AwsMachineSpec(image_id="ami-fedcba98")


async def test_create_vm_refuses_bad_input_as_a_non_retryable_invalid_request() -> None:
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(
            create_vm, dataclasses.replace(AWS, node_name="way-too-long-node-name")
        )
    assert err.value.type == "InvalidRequest"
    assert err.value.non_retryable


async def test_create_vm_for_azure_without_resource_group_names_the_setting_to_set() -> None:
    from activities.config import use_settings

    use_settings(Settings.from_env({}))
    inp = CreateVmInput("pool-a", "win-a1", Platform.AZURE, azure=AzureMachineSpec())
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(create_vm, inp)
    assert err.value.type == "InvalidRequest"
    assert "WINFLEET_AZURE_RESOURCE_GROUP" in str(err.value)
    assert "WINFLEET_AZURE_SUBNET_ID" in str(err.value)


@pytest.mark.parametrize(
    "host",
    [
        HostRef(Platform.BYOH, HostAddress("10.0.0.5"), "Administrator"),
        HostRef(Platform.BYOH, HostAddress("10.0.0.5"), "Administrator", InstanceId("i-1"), True),
        HostRef(Platform.AWS, HostAddress("10.0.0.6"), "Administrator", InstanceId("i-1")),
        HostRef(Platform.AZURE, HostAddress("10.0.0.7"), "capi", None, True),
    ],
    ids=["byoh", "byoh-claiming-ours", "aws-not-ours", "azure-without-id"],
)
async def test_terminate_vm_leaves_hosts_winfleet_did_not_create_alone(host: HostRef) -> None:
    assert await ActivityEnvironment().run(terminate_vm, host) is False


async def test_create_vm_keeps_heartbeating_while_a_cloud_call_is_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from activities.cloud import aws, vm

    heartbeat_seen = asyncio.Event()
    host = HostRef(Platform.AWS, HostAddress("10.0.0.8"), "Administrator", InstanceId("i-8"), True)

    async def slow_create(*_: object, **__: object) -> HostRef:
        await heartbeat_seen.wait()  # finishes only once the activity has heartbeated
        return host

    async def key(_: str) -> asyncssh.SSHKey:
        return asyncssh.generate_private_key("ssh-ed25519")

    monkeypatch.setattr(vm, "HEARTBEAT_EVERY", 0.01)
    monkeypatch.setattr(vm, "load_private_key", key)
    use_settings(Settings.from_env({"WINFLEET_CLUSTER_ID": "test-cluster"}))
    monkeypatch.setattr(aws, "create_aws_instance", slow_create)
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *_: heartbeat_seen.set()

    try:
        assert await env.run(create_vm, AWS) == host
    finally:
        use_settings(Settings.from_env({}))
