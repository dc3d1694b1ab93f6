"""Faults on the way: transient ones are waited out or retried, permanent ones compensate."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from kubernetes import client, config
from onboarding import SPANS, World, activity_spans, events, is_ready, node, start
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities.contracts import (
    AwsMachineSpec,
    AzureMachineSpec,
    ByohHostSpec,
    OnboardNodeInput,
    Platform,
)
from sim.windows.host import SimulatedWindowsHost

pytestmark = pytest.mark.asyncio(loop_scope="session")


def byoh(world: World, index: int, name: str) -> OnboardNodeInput:
    return OnboardNodeInput(
        pool="faults",
        node_name=name,
        platform=Platform.BYOH,
        byoh=ByohHostSpec(address=world.twin.byoh_addresses[index]),
    )


def span_seconds(workflow_id: str, activity: str) -> float:
    for s in SPANS.get_finished_spans():
        attrs = s.attributes or {}
        if s.name == f"RunActivity:{activity}" and attrs.get("temporalWorkflowID") == workflow_id:
            return ((s.end_time or 0) - (s.start_time or 0)) / 1e9
    raise AssertionError(f"no {activity} span for {workflow_id}")


def on_next_host(world: World, cloud: str, act: Callable[[SimulatedWindowsHost], Any]) -> None:
    """Run `act` on the next simulated host a cloud twin brings up (before it boots)."""

    def hook(host: SimulatedWindowsHost) -> None:
        if host.spec.cloud == cloud:
            world.twin.fleet.on_add.remove(hook)
            act(host)

    world.twin.fleet.on_add.append(hook)


def core_api(world: World) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(str(world.twin.kube.kubeconfig_path)))


async def expect_permanent_failure(world: World, inp: OnboardNodeInput, error_type: str) -> str:
    handle = await start(world, inp)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == error_type, cause.message
    assert "phase wait-ssh" in cause.message and "What to do" in cause.message
    failures = [
        e for e in events(world, "MachineSetupFailure") if inp.node_name in e.get("message", "")
    ]
    assert failures, "no MachineSetupFailure event recorded"
    assert node(world, inp.node_name) is None
    return cause.message


# --- transient faults ---------------------------------------------------------------------
async def test_ssh_refused_during_a_long_boot_is_waited_out(world: World) -> None:
    inp = byoh(world, 0, "byoh-slowboot")
    world.twin.fleet.get(inp.byoh.address).faults.refuse_ssh(6.0)  # type: ignore[union-attr]
    handle = await start(world, inp)
    await handle.result()
    assert is_ready(node(world, inp.node_name) or {})
    assert span_seconds(handle.id, "wait_for_ssh") >= 5.0


async def test_a_command_failing_twice_is_retried_and_succeeds(world: World) -> None:
    inp = byoh(world, 1, "byoh-flaky")
    host = world.twin.fleet.get(inp.byoh.address)  # type: ignore[union-attr]
    host.faults.fail_command("initialize-kubelet", times=2, exit_code=1, stderr="transient\r\n")
    handle = await start(world, inp)
    await handle.result()
    assert is_ready(node(world, inp.node_name) or {})
    assert activity_spans(handle.id).count("configure_kubelet") == 3


async def test_a_dropped_sftp_transfer_is_resumed(world: World) -> None:
    inp = byoh(world, 2, "byoh-dropped")
    host = world.twin.fleet.get(inp.byoh.address)  # type: ignore[union-attr]
    newest = world.twin.env["WINFLEET_PAYLOAD_VERSIONS"].split(",")[-1]  # the default version
    payload = Path(world.twin.env["WINFLEET_PAYLOAD_DIR"]) / newest
    total = payload_bytes(payload)
    host.faults.drop_sftp_after(400_000, times=1)
    handle = await start(world, inp)
    result = await handle.result()
    assert is_ready(node(world, inp.node_name) or {})
    assert 0 < result.bytes_copied < total  # the last attempt sent only what was missing
    remote = host.root / "C" / "k" / "kubelet.exe"
    local = payload / "kubelet.exe"
    assert (
        hashlib.sha256(remote.read_bytes()).digest() == hashlib.sha256(local.read_bytes()).digest()
    )


def payload_bytes(payload: Path) -> int:
    return sum(
        p.stat().st_size for p in payload.rglob("*") if p.is_file() and p.name != "sha256sum"
    )


# --- permanent faults: compensation -------------------------------------------------------
async def test_a_rotated_key_fails_for_good_and_the_vm_is_terminated(world: World) -> None:
    api = core_api(world)
    original = await asyncio.to_thread(api.read_namespaced_secret, "cloud-private-key", "winfleet")
    await asyncio.to_thread(
        api.create_namespaced_secret,
        "winfleet",
        {"metadata": {"name": "rotating-key"}, "data": original.data},
    )
    other = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    rotated = {"private-key.pem": base64.b64encode(other.encode()).decode()}

    def rotate(host: SimulatedWindowsHost) -> None:
        # The admin rotates the key after the VM was created with the old one.
        asyncio.get_running_loop().create_task(
            asyncio.to_thread(
                api.patch_namespaced_secret, "rotating-key", "winfleet", {"data": rotated}
            )
        )

    on_next_host(world, "aws", rotate)
    inp = OnboardNodeInput(
        pool="faults",
        node_name="aws-rotated",
        platform=Platform.AWS,
        aws=AwsMachineSpec(),
        private_key_secret="rotating-key",
    )
    message = await expect_permanent_failure(world, inp, "SshAuthenticationFailed")
    assert "re-provision" in message
    assert await aws_states(world, "aws-rotated") == {"terminated"}


async def test_a_changed_host_key_fails_for_good_and_the_vm_is_deleted(world: World) -> None:
    api = core_api(world)
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()

    def pin(address: str) -> None:
        body = {"data": {address: impostor}}
        try:
            api.patch_namespaced_config_map("windows-ssh-host-keys", "winfleet", body)
        except client.ApiException:
            api.create_namespaced_config_map(
                "winfleet", {"metadata": {"name": "windows-ssh-host-keys"}, **body}
            )

    def pin_other_key(host: SimulatedWindowsHost) -> None:
        # Someone else answered at this address before: the pinned key is not this host's.
        asyncio.get_running_loop().create_task(asyncio.to_thread(pin, host.address))

    on_next_host(world, "azure", pin_other_key)
    inp = OnboardNodeInput(
        pool="faults", node_name="az-impostor", platform=Platform.AZURE, azure=AzureMachineSpec()
    )
    await expect_permanent_failure(world, inp, "HostKeyMismatch")
    assert "az-impostor" not in world.twin.azure.hosted


async def test_an_unsupported_windows_build_fails_for_good_and_the_vm_is_terminated(
    world: World,
) -> None:
    def windows_2016(host: SimulatedWindowsHost) -> None:
        host.faults.os_build = "10.0.14393.0"

    on_next_host(world, "aws", windows_2016)
    inp = OnboardNodeInput(
        pool="faults", node_name="aws-2016", platform=Platform.AWS, aws=AwsMachineSpec()
    )
    message = await expect_permanent_failure(world, inp, "UnsupportedWindowsBuild")
    assert "10.0.14393" in message
    assert await aws_states(world, "aws-2016") == {"terminated"}


async def aws_states(world: World, node_name: str) -> set[str]:
    ec2 = world.twin.aws.client()
    found = await asyncio.to_thread(
        ec2.describe_instances,
        Filters=[{"Name": "tag:winfleet.io/node", "Values": [node_name]}],
    )
    return {i["State"]["Name"] for r in found["Reservations"] for i in r["Instances"]}
