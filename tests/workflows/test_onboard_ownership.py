"""A failed or cancelled onboarding undoes only what its own run did; one run per node name."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import asyncssh
import pytest
from kubernetes import client, config
from onboarding import World, events, is_ready, node, start, steps_run
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError

from activities.contracts import (
    AwsMachineSpec,
    ByohHostSpec,
    OnboardNodeInput,
    OnboardNodeResult,
    Platform,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

PIN_CONFIGMAP = "windows-ssh-host-keys"


def core_api(world: World) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(str(world.twin.kube.kubeconfig_path)))


def byoh(world: World, index: int, name: str, pool: str = "own") -> OnboardNodeInput:
    return OnboardNodeInput(
        pool=pool,
        node_name=name,
        platform=Platform.BYOH,
        byoh=ByohHostSpec(address=world.twin.byoh_addresses[index]),
    )


async def aws_instances(world: World, node_name: str) -> dict[str, str]:
    ec2 = world.twin.aws.client()
    found = await asyncio.to_thread(
        ec2.describe_instances,
        Filters=[{"Name": "tag:winfleet.io/node", "Values": [node_name]}],
    )
    return {
        i["InstanceId"]: i["State"]["Name"] for r in found["Reservations"] for i in r["Instances"]
    }


async def failure_of(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


def pins(world: World) -> dict[str, str]:
    cm = world.twin.kube.store.get("configmaps", PIN_CONFIGMAP, namespace="winfleet")
    return dict((cm or {}).get("data") or {})


async def test_a_failed_reonboarding_of_a_ready_aws_node_keeps_its_vm_and_node(
    world: World,
) -> None:
    first = await start(
        world,
        OnboardNodeInput(
            pool="own", node_name="aws-keep", platform=Platform.AWS, aws=AwsMachineSpec()
        ),
    )
    await first.result()
    before = node(world, "aws-keep")
    assert before is not None and is_ready(before)
    instances = await aws_instances(world, "aws-keep")
    assert list(instances.values()) == ["running"]

    # A second run names a Secret holding another key: the host refuses it in wait-ssh.
    other = asyncssh.generate_private_key("ssh-rsa", key_size=2048).export_private_key("openssh")
    await asyncio.to_thread(
        core_api(world).create_namespaced_secret,
        "winfleet",
        {
            "metadata": {"name": "other-key"},
            "data": {"private-key.pem": base64.b64encode(other).decode()},
        },
    )
    again = await start(
        world,
        OnboardNodeInput(
            pool="own",
            node_name="aws-keep",
            platform=Platform.AWS,
            aws=AwsMachineSpec(),
            private_key_secret="other-key",
        ),
    )
    cause = await failure_of(again)
    assert cause.type == "SshAuthenticationFailed"
    assert "left as they were" in cause.message and "found by its tags" in cause.message
    assert "existed before" in cause.message

    assert await aws_instances(world, "aws-keep") == instances  # same VM, still running
    after = node(world, "aws-keep")
    assert after is not None and is_ready(after)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    history = await again.fetch_history()
    names = steps_run(history)
    assert "terminate_vm" not in names and "deconfigure_host" not in names
    assert "delete_node" not in names


async def test_a_linux_nodes_name_is_refused_and_that_node_is_untouched(world: World) -> None:
    api = core_api(world)
    linux = await asyncio.to_thread(
        api.create_node,
        {
            "metadata": {
                "name": "lin-worker",
                "labels": {"kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": ""},
            }
        },
    )
    handle = await start(world, byoh(world, 2, "lin-worker"))
    cause = await failure_of(handle)
    assert cause.type == "InvalidRequest"
    assert "refused before anything was created" in cause.message
    assert "not a Windows node" in cause.message
    now = node(world, "lin-worker")
    assert now is not None
    # (the cluster's own controllers keep writing its status; winfleet wrote nothing)
    assert now["metadata"]["uid"] == linux.metadata.uid
    assert now["metadata"]["labels"] == linux.metadata.labels
    notes = now["metadata"].get("annotations") or {}
    assert not [k for k in notes if k.startswith(("winfleet.io/", "windowsmachineconfig"))]
    assert not (now.get("spec") or {}).get("unschedulable")
    names = steps_run(await handle.fetch_history())
    assert names == ["claim_node", "preflight_node", "release_node"]


async def test_two_runs_for_one_node_name_at_once_the_second_is_refused(world: World) -> None:
    first = await start(world, byoh(world, 1, "byoh-twice", pool="pool-a"))
    # Wait until the first run holds the claim and is creating things.
    await wait_for(
        lambda: (
            world.twin.kube.store.get("leases", "winfleet-node-byoh-twice", namespace="winfleet")
            is not None
        )
    )
    second = await start(world, byoh(world, 1, "byoh-twice", pool="pool-b"))
    cause = await failure_of(second)
    assert cause.type == "NodeNameClaimed"
    assert "refused before anything was created" in cause.message
    assert first.id in cause.message
    assert steps_run(await second.fetch_history()) == ["claim_node"]
    result: OnboardNodeResult = await first.result()
    assert result.node_name == "byoh-twice"
    # The claim is gone with the run that held it.
    lease = world.twin.kube.store.get("leases", "winfleet-node-byoh-twice", namespace="winfleet")
    assert lease is None


async def test_cancelling_mid_copy_terminates_the_vm_and_forgets_the_pin(world: World) -> None:
    slowed: list[str] = []

    def slow_copy(host: Any) -> None:
        slowed.append(host.address)
        host.faults.slow(0.5)

    world.twin.fleet.on_add.append(lambda h: slow_copy(h) if h.spec.cloud == "aws" else None)
    try:
        handle = await start(
            world,
            OnboardNodeInput(
                pool="own", node_name="aws-cancel", platform=Platform.AWS, aws=AwsMachineSpec()
            ),
        )
        await wait_for_phase(handle, "copy-payload")
    finally:
        world.twin.fleet.on_add.pop()
    address = slowed[0]
    assert address in pins(world)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert isinstance(info.value.cause, CancelledError)
    assert set((await aws_instances(world, "aws-cancel")).values()) <= {
        "terminated",
        "shutting-down",
    }
    assert address not in pins(world)
    assert node(world, "aws-cancel") is None
    assert [e for e in events(world, "MachineSetupFailure") if "aws-cancel" in e["message"]]


async def test_a_node_someone_else_cordoned_stays_cordoned_after_reonboarding(
    world: World,
) -> None:
    inp = byoh(world, 0, "byoh-cordon")
    await (await start(world, inp)).result()
    api = core_api(world)
    await asyncio.to_thread(api.patch_node, "byoh-cordon", {"spec": {"unschedulable": True}})
    await (await start(world, inp)).result()
    after = node(world, "byoh-cordon")
    assert after is not None and after["spec"].get("unschedulable") is True
    setups = [
        e
        for e in events(world, "MachineSetup")
        if e["involvedObject"]["name"] == "byoh-cordon" and "left cordoned" in e["message"]
    ]
    assert setups


# --- helpers ----------------------------------------------------------------------------------
async def wait_for(probe: Any, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not probe():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def wait_for_phase(handle: WorkflowHandle[Any, Any], phase: str, within: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        progress = await handle.query("progress")
        if progress["phase"] == phase:
            return
        assert progress["status"] == "running", progress
        assert asyncio.get_running_loop().time() < deadline, f"never reached {phase}: {progress}"
        await asyncio.sleep(0.05)
