"""`release_vm`: compensation for a vm-create that failed after it may have launched a VM.

It releases only a VM this very workflow run launched (ActivityEnvironment's run id is
`test-run`), never one an earlier run launched for the same node.
"""

from __future__ import annotations

from cloud_twins import CLUSTER, Ec2
from temporalio.testing import ActivityEnvironment

from activities.cloud import aws
from activities.cloud.ownership import Owner
from activities.cloud.vm import CreateVmInput, release_vm
from activities.contracts import AwsMachineSpec, ByohHostSpec, Platform

THIS_RUN = "test-run"  # the workflow run id ActivityEnvironment reports


def vm_input(ec2: Ec2, node: str) -> CreateVmInput:
    return CreateVmInput(
        pool="pool-r",
        node_name=node,
        platform=Platform.AWS,
        aws=AwsMachineSpec(subnet_id=ec2.subnet_id, security_group_ids=(ec2.security_group_id,)),
        byoh=None,
        azure=None,
    )


async def test_an_instance_launched_by_a_failed_create_is_found_by_tags_and_terminated(
    aws_env: Ec2, public_key: str
) -> None:
    inp = vm_input(aws_env, "win-leak")
    assert inp.aws is not None
    owner = Owner(CLUSTER, inp.pool, inp.node_name)
    host = await ActivityEnvironment().run(
        aws.create_aws_instance, owner, inp.aws, public_key, incarnation=THIS_RUN
    )
    assert host.instance_id is not None

    assert await ActivityEnvironment().run(release_vm, inp) is True
    assert await ActivityEnvironment().run(release_vm, inp) is False  # nothing left to release

    assert aws_env.state(host.instance_id) in ("shutting-down", "terminated")


async def test_an_instance_an_earlier_run_launched_is_never_released(
    aws_env: Ec2, public_key: str
) -> None:
    inp = vm_input(aws_env, "win-earlier")
    assert inp.aws is not None
    owner = Owner(CLUSTER, inp.pool, inp.node_name)
    host = await ActivityEnvironment().run(
        aws.create_aws_instance, owner, inp.aws, public_key, incarnation="an-earlier-run"
    )
    assert host.instance_id is not None

    assert await ActivityEnvironment().run(release_vm, inp) is False

    assert aws_env.state(host.instance_id) == "running"


async def test_releasing_when_nothing_was_launched_changes_nothing(aws_env: Ec2) -> None:
    assert await ActivityEnvironment().run(release_vm, vm_input(aws_env, "win-none")) is False


async def test_a_byoh_host_is_never_released(aws_env: Ec2) -> None:
    inp = CreateVmInput(
        pool="pool-r",
        node_name="byoh-keep",
        platform=Platform.BYOH,
        aws=None,
        azure=None,
        byoh=ByohHostSpec(address="127.7.200.1"),
    )
    assert await ActivityEnvironment().run(release_vm, inp) is False
