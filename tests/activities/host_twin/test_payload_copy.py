"""copy_payload against a simulated host: hash-compared, idempotent, resumable."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from typing import Any

import pytest
from host_lab import KEY_SECRET, Lab
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.config import Settings, use_settings
from activities.payload import CopyPayloadInput, CopyPayloadResult, copy_payload
from activities.preflight import PreflightInput, preflight_node

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


# -- payload versions ---------------------------------------------------------------------------
OLD = {
    "wmcb.exe": b"wmcb " * 1000,
    "kubelet.exe": b"kubelet\nversion: v1.19.0\n" + os.urandom(300_000),
    "kube-proxy.exe": b"kube-proxy\nversion: v1.19.0\n",
    "cni/win-bridge.exe": b"win-bridge plugin (dropped in the newer payload)",
}
NEW = {
    "wmcb.exe": OLD["wmcb.exe"],  # unchanged between the versions
    "kubelet.exe": b"kubelet\nversion: v1.20.0\n" + os.urandom(300_000),
    "kube-proxy.exe": b"kube-proxy\nversion: v1.20.0\n",
    "cni/win-overlay.exe": b"win-overlay plugin (new in the newer payload)",
}


def _versioned(lab: Lab) -> None:
    """Lay out payload/1.0.0 and payload/1.1.0 and point the worker at both, as the twin does."""
    root = lab.payload_dir
    for version, files in (("1.0.0", OLD), ("1.1.0", NEW)):
        lab.payload_dir = root / version
        lab.write_payload(files)
    lab.payload_dir = root
    env = {
        "KUBECONFIG": str(lab.twin.kubeconfig_path),
        "WINFLEET_NAMESPACE": "winfleet",
        "WINFLEET_PAYLOAD_DIR": str(root),
        "WINFLEET_PAYLOAD_VERSIONS": "1.0.0,1.1.0",
        "WINFLEET_SSH_PORT": "22",
        "WINFLEET_SSH_CONNECT_TIMEOUT": "5",
    }
    use_settings(Settings.from_env(env))


async def _copy_version(address: str, version: str) -> CopyPayloadResult:
    return await ActivityEnvironment().run(copy_payload, replace(_input(address), version=version))


def _host_files(host: Any) -> dict[str, bytes]:
    k = host.root / "C" / "k"
    return {p.relative_to(k).as_posix(): p.read_bytes() for p in k.rglob("*") if p.is_file()}


async def test_a_host_moved_to_another_version_holds_exactly_that_versions_files(lab: Lab) -> None:
    _versioned(lab)
    host = await lab.add_host()
    first = await _copy_version(host.address, "1.0.0")
    assert first.files_copied == len(OLD) and first.files_removed == 0
    assert _host_files(host) == OLD
    (host.root / "C" / "k" / "kubeconfig").write_bytes(b"written by kubelet, in no payload")

    second = await _copy_version(host.address, "1.1.0")
    assert second.files_skipped == 1  # wmcb.exe did not change
    assert second.files_copied == 3 and second.files_removed == 1
    assert second.bytes_copied == sum(len(NEW[n]) for n in NEW if n != "wmcb.exe")
    assert _host_files(host) == {**NEW, "kubeconfig": b"written by kubelet, in no payload"}
    remote_hashes = {
        n: hashlib.sha256(d).hexdigest() for n, d in _host_files(host).items() if n in NEW
    }
    manifest = (lab.payload_dir / "1.1.0" / "sha256sum").read_text()
    assert remote_hashes == {line.split()[1]: line.split()[0] for line in manifest.splitlines()}

    again = await _copy_version(host.address, "1.1.0")
    assert (again.files_copied, again.files_removed, again.bytes_copied) == (0, 0, 0)


async def test_going_back_to_the_older_version_restores_its_files(lab: Lab) -> None:
    _versioned(lab)
    host = await lab.add_host()
    await _copy_version(host.address, "1.1.0")
    back = await _copy_version(host.address, "1.0.0")
    assert back.files_removed == 1  # cni/win-overlay.exe is not in 1.0.0
    assert _host_files(host) == OLD


async def test_no_version_means_the_workers_default_the_newest(lab: Lab) -> None:
    _versioned(lab)
    host = await lab.add_host()
    await _copy_version(host.address, "")
    assert _host_files(host) == NEW


async def test_an_unknown_version_is_refused_before_anything_is_copied(lab: Lab) -> None:
    _versioned(lab)
    host = await lab.add_host()
    with pytest.raises(ApplicationError) as caught:
        await _copy_version(host.address, "2.0.0")
    assert caught.value.type == "InvalidRequest" and caught.value.non_retryable
    assert "'2.0.0'" in caught.value.message and "1.0.0, 1.1.0" in caught.value.message
    assert not (host.root / "C" / "k").exists()


async def test_preflight_refuses_a_version_the_worker_has_no_payload_for(lab: Lab) -> None:
    _versioned(lab)
    env = ActivityEnvironment()
    inp = PreflightInput(node_name="winworker-9", private_key_secret=KEY_SECRET, version="2.0.0")
    with pytest.raises(ApplicationError) as caught:
        await env.run(preflight_node, inp)
    assert caught.value.type == "InvalidRequest"
    assert "'2.0.0'" in caught.value.message and "1.0.0, 1.1.0" in caught.value.message
    ok = await env.run(preflight_node, replace(inp, version="1.0.0"))
    assert ok.version == "1.0.0"
