"""copy_payload against a simulated host: hash-compared, idempotent, resumable."""

from __future__ import annotations

import os
from typing import Any

import pytest
from host_lab import KEY_SECRET, Lab
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.payload import CopyPayloadInput, CopyPayloadResult, copy_payload

FILES = {
    "wmcb.exe": b"wmcb " * 1000,
    "kubelet.exe": os.urandom(2 * 1024 * 1024 + 17),
    "hybrid-overlay-node.exe": b"hybrid overlay",
    "cni/win-overlay.exe": b"win-overlay plugin",
    "cni/host-local.exe": b"host-local plugin",
    "cni/config/cni.conf": b'{"type": "win-overlay"}',
}
TOTAL = sum(len(d) for d in FILES.values())


def _input(address: str) -> CopyPayloadInput:
    return CopyPayloadInput(
        node_name="winworker-1",
        address=address,
        username="Administrator",
        private_key_secret=KEY_SECRET,
    )


async def _copy(address: str, beats: list[Any] | None = None) -> CopyPayloadResult:
    env = ActivityEnvironment()
    if beats is not None:
        env.on_heartbeat = lambda *details: beats.append(details)
    return await env.run(copy_payload, _input(address))


async def test_a_fresh_host_gets_every_file_and_a_second_copy_sends_nothing(lab: Lab) -> None:
    lab.write_payload(FILES)
    host = await lab.add_host()
    first = await _copy(host.address)
    assert first == CopyPayloadResult(files_copied=len(FILES), files_skipped=0, bytes_copied=TOTAL)
    for rel, data in FILES.items():
        assert (host.root / "C" / "k" / rel).read_bytes() == data
    second = await _copy(host.address)
    assert second == CopyPayloadResult(files_copied=0, files_skipped=len(FILES), bytes_copied=0)


async def test_only_a_file_that_changed_on_the_host_is_copied_again(lab: Lab) -> None:
    lab.write_payload(FILES)
    host = await lab.add_host()
    await _copy(host.address)
    (host.root / "C" / "k" / "cni" / "win-overlay.exe").write_bytes(b"tampered")
    again = await _copy(host.address)
    assert again == CopyPayloadResult(
        files_copied=1, files_skipped=len(FILES) - 1, bytes_copied=len(FILES["cni/win-overlay.exe"])
    )


async def test_a_dropped_transfer_fails_retryably_and_the_retry_sends_only_the_rest(
    lab: Lab,
) -> None:
    lab.write_payload(FILES)
    host = await lab.add_host()
    host.faults.drop_sftp_after(2000)  # inside the first file, wmcb.exe (5000 bytes)
    with pytest.raises(ApplicationError) as caught:
        await _copy(host.address)
    assert caught.value.type == "TransferInterrupted"
    assert not caught.value.non_retryable
    partial = (host.root / "C" / "k" / "wmcb.exe").stat().st_size
    assert 0 < partial < len(FILES["wmcb.exe"])
    retry = await _copy(host.address)
    assert retry == CopyPayloadResult(
        files_copied=len(FILES), files_skipped=0, bytes_copied=TOTAL - partial
    )
    for rel, data in FILES.items():
        assert (host.root / "C" / "k" / rel).read_bytes() == data


async def test_each_file_is_reported_by_heartbeat(lab: Lab) -> None:
    lab.write_payload(FILES)
    host = await lab.add_host()
    beats: list[Any] = []
    await _copy(host.address, beats)
    reported = {d[0] for d in beats}
    assert set(FILES) <= reported


async def test_a_payload_that_does_not_match_its_manifest_is_refused_before_connecting(
    lab: Lab,
) -> None:
    lab.write_payload(FILES)
    (lab.payload_dir / "kubelet.exe").write_bytes(b"corrupted")
    host = await lab.add_host()
    with pytest.raises(ApplicationError) as caught:
        await _copy(host.address)
    assert caught.value.type == "PayloadInvalid"
    assert caught.value.non_retryable
    assert not (host.root / "C" / "k").exists()
