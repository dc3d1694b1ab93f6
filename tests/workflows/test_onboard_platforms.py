"""Each platform onboards to a Ready, annotated Node, and the trace shows the nine phases."""

from __future__ import annotations

import pytest
from onboarding import (
    World,
    activity_spans,
    is_ready,
    node,
    phases_from_activities,
    start,
)

from activities.contracts import (
    PHASES,
    AwsMachineSpec,
    AzureMachineSpec,
    ByohHostSpec,
    OnboardNodeInput,
    Platform,
)
from activities.lockdown import others_in_acl
from activities.windows.paths import K_DIR
from activities.windows.services import KUBELET_STATE_DIR

pytestmark = pytest.mark.asyncio(loop_scope="session")

VERSION_ANNOTATION = "windowsmachineconfig.openshift.io/version"
PUB_KEY_HASH_ANNOTATION = "windowsmachineconfig.openshift.io/pub-key-hash"


async def assert_onboarded(world: World, inp: OnboardNodeInput) -> None:
    handle = await start(world, inp)
    result = await handle.result()
    assert result.node_name == inp.node_name
    assert tuple(p.value for p in result.phases_completed) == tuple(p.value for p in PHASES)
    obj = node(world, inp.node_name)
    assert obj is not None and is_ready(obj)
    annotations = obj["metadata"]["annotations"]
    assert annotations[VERSION_ANNOTATION] == result.version != ""
    assert len(annotations[PUB_KEY_HASH_ANNOTATION]) == 64
    assert not obj.get("spec", {}).get("unschedulable", False)
    assert phases_from_activities(activity_spans(handle.id)) == [p.value for p in PHASES]
    await assert_locked_down(world, result.host.address)


async def assert_locked_down(world: World, address: str) -> None:
    """The ignition (a bootstrap token) is gone; C:\\k and kubelet's keys are admins' only."""
    host = world.twin.fleet.get(address)
    assert host is not None
    assert not (host.root / "C" / "k" / "worker.ign").exists()
    for folder in (K_DIR, KUBELET_STATE_DIR):
        out, _, code = await host.run(f"icacls {folder}")
        assert code == 0, out
        assert others_in_acl(out, folder) == [], out


async def test_byoh_host_becomes_a_ready_annotated_node(world: World) -> None:
    address = world.twin.byoh_addresses[0]
    await assert_onboarded(
        world,
        OnboardNodeInput(
            pool="plat",
            node_name="byoh-one",
            platform=Platform.BYOH,
            byoh=ByohHostSpec(address=address),
        ),
    )


async def test_aws_instance_becomes_a_ready_annotated_node(world: World) -> None:
    await assert_onboarded(
        world,
        OnboardNodeInput(
            pool="plat", node_name="aws-one", platform=Platform.AWS, aws=AwsMachineSpec()
        ),
    )


async def test_azure_vm_becomes_a_ready_annotated_node(world: World) -> None:
    await assert_onboarded(
        world,
        OnboardNodeInput(
            pool="plat", node_name="azure-one", platform=Platform.AZURE, azure=AzureMachineSpec()
        ),
    )
