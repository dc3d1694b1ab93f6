"""The host-key pin store: ConfigMap before the Node exists, Node annotations after."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest
from host_lab import NAMESPACE, Lab

from activities import hostkeys, kube
from activities.errors import HostKeyMismatch


def new_host_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


async def test_pins_written_at_once_for_many_hosts_all_survive_in_a_few_writes(lab: Lab) -> None:
    keys = {f"10.0.0.{i}": new_host_key() for i in range(1, 21)}
    await asyncio.gather(*(hostkeys.pin(a, None, k) for a, k in keys.items()))
    assert await lab.pinned_in_configmap() == keys
    assert _configmap_writes(lab) <= 2  # batched, not one conditional write (and retry) each
    for address, key in keys.items():
        assert await hostkeys.pinned(address, None) == key


async def test_pins_moved_onto_their_nodes_at_once_neither_conflict_nor_touch_other_pins(
    lab: Lab,
) -> None:
    keys = {f"10.0.1.{i}": new_host_key() for i in range(1, 13)}
    await asyncio.gather(*(hostkeys.pin(a, None, k) for a, k in keys.items()))
    moving = dict(list(keys.items())[:6])
    for i in range(len(moving)):
        await lab.create_node(f"winmove-{i}")
    patches = _configmap_patches(lab)
    await asyncio.gather(
        *(hostkeys.pin(a, f"winmove-{i}", k) for i, (a, k) in enumerate(moving.items()))
    )
    for i, key in enumerate(moving.values()):
        assert (await lab.node_annotations(f"winmove-{i}"))[hostkeys.HOST_KEY_ANNOTATION] == key
    assert await lab.pinned_in_configmap() == {a: k for a, k in keys.items() if a not in moving}
    assert _configmap_patches(lab) == patches + len(moving)  # one removal each, none retried


def _configmap_patches(lab: Lab) -> int:
    return _configmap_requests(lab, "patch")


def _configmap_writes(lab: Lab) -> int:
    return _configmap_requests(lab, "create", "update", "patch")


def _configmap_requests(lab: Lab, *verbs: str) -> int:
    return sum(
        n
        for k, n in lab.twin.requests.snapshot().items()
        if k.verb in verbs and k.resource == "configmaps"
    )


async def test_pinning_the_same_key_again_changes_nothing(lab: Lab) -> None:
    key = new_host_key()
    await hostkeys.pin("10.0.0.1", "winworker-1", key)
    await hostkeys.pin("10.0.0.1", "winworker-1", key + " comment-ignored")
    assert await lab.pinned_in_configmap() == {"10.0.0.1": key}


async def test_pinning_a_different_key_is_refused(lab: Lab) -> None:
    await hostkeys.pin("10.0.0.1", None, new_host_key())
    with pytest.raises(HostKeyMismatch, match=r"10\.0\.0\.1"):
        await hostkeys.pin("10.0.0.1", None, new_host_key())


async def test_the_node_annotation_wins_over_a_stale_configmap_entry(lab: Lab) -> None:
    old, current = new_host_key(), new_host_key()
    await hostkeys.pin("10.0.0.1", None, old)
    await lab.create_node("winworker-1")
    await hostkeys.forget("10.0.0.1")
    await hostkeys.pin("10.0.0.1", "winworker-1", current)
    await hostkeys.pin("10.0.0.2", None, old)  # the ConfigMap lives on for other hosts
    assert await hostkeys.pinned("10.0.0.1", "winworker-1") == current
    assert "10.0.0.1" not in await lab.pinned_in_configmap()


async def test_forgetting_a_host_lets_a_reinstalled_machine_be_pinned_anew(lab: Lab) -> None:
    await lab.create_node("winworker-1")
    await hostkeys.pin("10.0.0.1", "winworker-1", new_host_key())
    await hostkeys.forget("10.0.0.1", "winworker-1")
    assert await hostkeys.pinned("10.0.0.1", "winworker-1") is None
    assert hostkeys.HOST_KEY_ANNOTATION not in await lab.node_annotations("winworker-1")
    fresh = new_host_key()
    await hostkeys.pin("10.0.0.1", "winworker-1", fresh)
    assert await hostkeys.pinned("10.0.0.1", "winworker-1") == fresh


async def test_forgetting_an_unknown_host_is_fine(lab: Lab) -> None:
    await hostkeys.forget("10.9.9.9", "no-such-node")
    assert await lab.pinned_in_configmap() == {}


async def test_a_pin_moves_onto_a_node_whose_status_is_only_partly_filled(lab: Lab) -> None:
    # A Node with partial nodeInfo, as some kubelets report it at first: the client's typed
    # model refuses to read it, the pin store must not.
    await lab.create_node("winworker-2")
    partial = {"status": {"nodeInfo": {"kubeletVersion": "v1.30.0", "operatingSystem": "windows"}}}
    await kube.call_json(
        "report partial status",
        kube.core().patch_node_status,
        "winworker-2",
        partial,
        _content_type="application/merge-patch+json",
    )
    key = new_host_key()
    await hostkeys.pin("10.0.0.9", "winworker-2", key)
    assert await hostkeys.pinned("10.0.0.9", "winworker-2") == key
    node = await kube.call_json("read node", kube.core().read_node, "winworker-2")
    assert node["metadata"]["annotations"][hostkeys.HOST_KEY_ANNOTATION] == key


async def test_a_pin_written_between_read_and_write_is_compared_not_overwritten(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two onboardings (on two workers) pin one address at once: the later write is
    conditional, so it fails, re-reads, and sees the earlier pin (no lost update)."""
    await hostkeys.pin("10.0.0.5", None, new_host_key())  # the ConfigMap exists
    theirs, ours = new_host_key(), new_host_key()
    real = hostkeys._configmap
    raced: list[str] = []

    async def read_then_someone_pins(fresh: bool = False) -> object:
        cm = await real(fresh)
        if not raced:
            raced.append("x")
            # The other worker's pin lands after our read.
            pin = {"data": {"10.0.0.6": theirs}}
            await kube.call_json(
                "pin", kube.core().patch_namespaced_config_map, hostkeys.CONFIGMAP, NAMESPACE, pin
            )
        return cm

    monkeypatch.setattr(hostkeys, "_configmap", read_then_someone_pins)
    with pytest.raises(HostKeyMismatch, match=r"10\.0\.0\.6"):
        await hostkeys.pin("10.0.0.6", None, ours)
    assert (await lab.pinned_in_configmap())["10.0.0.6"] == theirs


async def test_a_node_pin_written_between_read_and_write_is_compared_not_overwritten(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    await lab.create_node("winworker-3")
    theirs, ours = new_host_key(), new_host_key()
    real = hostkeys._node
    raced: list[str] = []

    async def read_then_someone_pins(name: str | None, fresh: bool = False) -> object:
        node = await real(name, fresh)
        if not raced:
            raced.append("x")
            await hostkeys.pin("10.0.0.7", "winworker-3", theirs)
        return node

    monkeypatch.setattr(hostkeys, "_node", read_then_someone_pins)
    with pytest.raises(HostKeyMismatch, match="winworker-3"):
        await hostkeys.pin("10.0.0.7", "winworker-3", ours)
    assert (await lab.node_annotations("winworker-3"))[hostkeys.HOST_KEY_ANNOTATION] == theirs


async def test_forgetting_a_terminated_vms_pin_leaves_a_same_named_node_of_another_machine(
    lab: Lab,
) -> None:
    await lab.create_node("winworker-4")
    await kube.call_json(
        "report address",
        kube.core().patch_node_status,
        "winworker-4",
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.44"}]}},
        _content_type="application/merge-patch+json",
    )
    key = new_host_key()
    await hostkeys.pin("10.0.0.44", "winworker-4", key)

    await hostkeys.forget("10.0.0.8", "winworker-4", node_ip="10.0.0.8")  # another machine's
    assert (await lab.node_annotations("winworker-4"))[hostkeys.HOST_KEY_ANNOTATION] == key

    await hostkeys.forget("10.0.0.44", "winworker-4", node_ip="10.0.0.44")  # this one's
    assert hostkeys.HOST_KEY_ANNOTATION not in await lab.node_annotations("winworker-4")
