"""SSH sessions to simulated Windows hosts: pinning, refusals, commands, resumable copies."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import asyncssh
import pytest
from host_lab import KEY_SECRET, NAMESPACE, Lab, fresh_address
from kubernetes import client
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from reimaged import until_connections_dropped

from activities import kube, tracing
from activities.errors import (
    HostKeyMismatch,
    HostUnreachable,
    InvalidRequest,
    RemoteCommandFailed,
    SshAuthenticationFailed,
    TransferInterrupted,
)
from activities.hostkeys import HOST_KEY_ANNOTATION, HOST_KEY_TYPE_ANNOTATION
from activities.ssh import open_session
from activities.windows import powershell as ps
from activities.windows.paths import K_DIR, WindowsPath
from activities.windows.powershell import WindowsCommand, powershell
from activities.windows.wmcb import BOOTSTRAP_SUCCEEDED


def session_to(address: str, node: str | None = "winworker-1", secret: str = KEY_SECRET):
    return open_session(address, "Administrator", private_key_secret=secret, node_name=node)


async def test_first_contact_pins_the_host_key_in_the_configmap(lab: Lab) -> None:
    host = await lab.add_host()
    async with session_to(host.address) as s:
        assert s.presented_host_key == host.host_key_public
        assert s.host_key_fingerprint.startswith("SHA256:")
    assert await lab.pinned_in_configmap() == {host.address: host.host_key_public}
    async with session_to(host.address) as s:  # the pinned key is accepted again
        assert s.presented_host_key == host.host_key_public


async def test_once_the_node_exists_the_pin_moves_to_its_annotations(lab: Lab) -> None:
    host = await lab.add_host()
    async with session_to(host.address):
        pass
    await lab.create_node("winworker-1")
    async with session_to(host.address):
        pass
    annotations = await lab.node_annotations("winworker-1")
    assert annotations[HOST_KEY_ANNOTATION] == host.host_key_public
    assert annotations[HOST_KEY_TYPE_ANNOTATION] == "ssh-ed25519"
    assert host.address not in await lab.pinned_in_configmap()


async def test_a_changed_host_key_is_refused_as_permanent(lab: Lab) -> None:
    host = await lab.add_host()
    async with session_to(host.address):
        pass
    original = host.host_key_public
    host.faults.change_host_key()
    await until_connections_dropped(host.address)
    with pytest.raises(HostKeyMismatch, match=host.address) as caught:
        async with session_to(host.address):
            pass
    assert not caught.value.retryable
    assert await lab.pinned_in_configmap() == {host.address: original}


async def test_a_changed_host_key_is_refused_after_the_pin_moved_to_the_node(lab: Lab) -> None:
    host = await lab.add_host()
    await lab.create_node("winworker-1")
    async with session_to(host.address):
        pass
    host.faults.change_host_key()
    await until_connections_dropped(host.address)
    with pytest.raises(HostKeyMismatch, match="possible impersonation"):
        async with session_to(host.address):
            pass


async def test_a_host_that_does_not_trust_our_key_fails_authentication_permanently(
    lab: Lab,
) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    host = await lab.add_host(authorized_keys=(stranger.export_public_key().decode(),))
    with pytest.raises(SshAuthenticationFailed, match="administrators_authorized_keys") as caught:
        async with session_to(host.address):
            pass
    assert not caught.value.retryable
    assert await lab.pinned_in_configmap() == {}  # nothing pinned without a login


async def test_a_missing_key_secret_says_what_to_create(lab: Lab) -> None:
    host = await lab.add_host()
    with pytest.raises(InvalidRequest, match=r"kubectl -n winfleet create secret generic nope"):
        async with session_to(host.address, secret="nope"):
            pass


async def test_a_secret_without_a_usable_key_is_refused_without_echoing_it(lab: Lab) -> None:
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name="garbled", namespace=NAMESPACE),
        data={"private-key.pem": base64.b64encode(b"not-a-key-SECRETSTUFF").decode()},
    )
    await kube.call("create secret", kube.core().create_namespaced_secret, NAMESPACE, body)
    host = await lab.add_host()
    with pytest.raises(InvalidRequest, match="not an unencrypted SSH private key") as caught:
        async with session_to(host.address, secret="garbled"):
            pass
    assert "SECRETSTUFF" not in str(caught.value)


async def test_a_host_refusing_connections_is_unreachable_and_retryable(lab: Lab) -> None:
    host = await lab.add_host()
    host.faults.refuse_ssh(30)
    with pytest.raises(HostUnreachable, match=host.address) as caught:
        async with session_to(host.address):
            pass
    assert caught.value.retryable


async def test_an_address_without_a_host_is_unreachable(lab: Lab) -> None:
    with pytest.raises(HostUnreachable, match="may be booting"):
        async with session_to(fresh_address()):
            pass


async def test_a_failing_command_names_host_display_and_stderr(lab: Lab) -> None:
    host = await lab.add_host()
    async with session_to(host.address) as s:
        with pytest.raises(RemoteCommandFailed) as caught:
            await s.run(powershell(ps.get_service("nosuch"), display="look up nosuch"))
        message = str(caught.value)
        assert host.address in message
        assert "look up nosuch" in message
        assert "Cannot find any service with service name 'nosuch'" in message
        result = await s.run(powershell(ps.get_service("nosuch"), display="x"), check=False)
        assert result.exit_status == 1


async def test_a_command_without_its_success_line_fails_even_with_exit_zero(lab: Lab) -> None:
    host = await lab.add_host()
    async with session_to(host.address) as s:
        cmd = powershell(ps.test_path(K_DIR), display="pretend bootstrap")
        expecting = WindowsCommand(cmd.line, cmd.display, success_line=BOOTSTRAP_SUCCEEDED)
        with pytest.raises(RemoteCommandFailed, match="did not print 'Bootstrapping"):
            await s.run(expecting)


async def test_run_json_returns_the_parsed_object(lab: Lab) -> None:
    host = await lab.add_host()
    async with session_to(host.address) as s:
        await s.run(powershell(ps.new_directory(K_DIR), display="mkdir"))
        assert await s.run_json(powershell(ps.to_json(ps.test_path(K_DIR)), display="t")) is True


async def test_remote_sha256_of_a_missing_file_is_none(lab: Lab) -> None:
    host = await lab.add_host()
    async with session_to(host.address) as s:
        assert await s.remote_sha256(WindowsPath(r"C:\k\absent.exe")) is None


async def test_put_bytes_then_hash_matches(lab: Lab) -> None:
    host = await lab.add_host()
    target = WindowsPath(r"C:\k\note.txt")
    async with session_to(host.address) as s:
        await s.run(powershell(ps.new_directory(K_DIR), display="mkdir"))
        await s.put_bytes(b"hello", target)
        assert await s.remote_sha256(target) == hashlib.sha256(b"hello").hexdigest()
    assert (host.root / "C" / "k" / "note.txt").read_bytes() == b"hello"


async def test_an_interrupted_copy_resumes_where_it_broke_off(lab: Lab, tmp_path: Path) -> None:
    host = await lab.add_host()
    data = os.urandom(3 * 1024 * 1024 + 123)
    local = tmp_path / "kubelet.exe"
    local.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    target = WindowsPath(r"C:\k\kubelet.exe")
    async with session_to(host.address) as s:
        await s.run(powershell(ps.new_directory(K_DIR), display="mkdir"))
    host.faults.drop_sftp_after(1_000_000)
    with pytest.raises(TransferInterrupted, match="resumes"):
        async with session_to(host.address) as s:
            await s.put_file(local, target, expected_sha256=digest)
    partial = (host.root / "C" / "k" / "kubelet.exe").stat().st_size
    assert 0 < partial < len(data)
    async with session_to(host.address) as s:
        sent = await s.put_file(local, target, expected_sha256=digest)
        assert sent == len(data) - partial
        assert await s.remote_sha256(target) == digest
        assert await s.put_file(local, target, expected_sha256=digest) == 0


async def test_a_remote_file_that_is_not_a_prefix_is_rewritten(lab: Lab, tmp_path: Path) -> None:
    host = await lab.add_host()
    local = tmp_path / "wmcb.exe"
    local.write_bytes(b"new wmcb contents")
    (host.root / "C" / "k").mkdir(parents=True, exist_ok=True)
    (host.root / "C" / "k" / "wmcb.exe").write_bytes(b"old")
    async with session_to(host.address) as s:
        sent = await s.put_file(
            local,
            WindowsPath(r"C:\k\wmcb.exe"),
            expected_sha256=hashlib.sha256(b"new wmcb contents").hexdigest(),
        )
    assert sent == len(b"new wmcb contents")
    assert (host.root / "C" / "k" / "wmcb.exe").read_bytes() == b"new wmcb contents"


async def test_spans_name_host_node_and_display_but_never_the_command_line(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    host = await lab.add_host()
    secret_value = "bootstrap-token-abc123"
    async with session_to(host.address) as s:
        await s.run(powershell(ps.new_directory(K_DIR), display="mkdir"))
        await s.run(
            powershell(
                ps.set_content(WindowsPath(r"C:\k\token"), secret_value), display="write token"
            )
        )
    spans = exporter.get_finished_spans()
    runs = [sp for sp in spans if sp.name == "ssh run"]
    assert [sp.attributes["winfleet.command"] for sp in runs] == ["mkdir", "write token"]
    assert all(sp.attributes["winfleet.host"] == host.address for sp in runs)
    assert all(sp.attributes["winfleet.node"] == "winworker-1" for sp in runs)
    assert any(sp.name == "ssh connect" for sp in spans)
    assert secret_value not in repr([dict(sp.attributes or {}) for sp in spans])


async def test_values_with_quotes_and_percent_signs_arrive_unchanged(lab: Lab) -> None:
    host = await lab.add_host()
    tricky = 'it\'s 100% "done" & %PATH% | ok'
    async with session_to(host.address) as s:
        await s.run(powershell(ps.new_directory(K_DIR), display="mkdir"))
        for name, value in (("plain.txt", 'it\'s "done" & ok'), ("pct.txt", tricky)):
            target = WindowsPath(rf"C:\k\{name}")
            await s.run(powershell(ps.set_content(target, value), display="write"))
            read = await s.run(powershell(ps.get_content(target), display="read"))
            assert read.stdout.rstrip("\r\n") == value


async def test_an_unreadable_pin_is_refused_rather_than_replaced(lab: Lab) -> None:
    host = await lab.add_host()
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="windows-ssh-host-keys", namespace=NAMESPACE),
        data={host.address: "ssh-ed25519 not-base64!"},
    )
    await kube.call("create cm", kube.core().create_namespaced_config_map, NAMESPACE, body)
    with pytest.raises(HostKeyMismatch, match="cannot be read"):
        async with session_to(host.address):
            pass
    assert await lab.pinned_in_configmap() == {host.address: "ssh-ed25519 not-base64!"}
