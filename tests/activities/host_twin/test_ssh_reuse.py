"""One SSH connection per host, shared by the sessions of every activity on the worker.

Logins are counted from the worker's own traces (one `ssh connect` span per connection made).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable

import asyncssh
import pytest
from host_lab import KEY_SECRET, NAMESPACE, Lab
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from activities import hostkeys, kube, ssh_pool, tracing
from activities.errors import HostKeyMismatch, HostUnreachable
from activities.keys import public_key_openssh
from activities.ssh import open_session
from activities.windows import powershell as ps
from activities.windows.powershell import powershell


@pytest.fixture
def logins(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    return exporter


async def eventually(what: str, check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Wait (on a deadline) until `check()` is true."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def count(exporter: InMemorySpanExporter, name: str = "ssh connect") -> int:
    return sum(1 for s in exporter.get_finished_spans() if s.name == name)


def session_to(address: str, node: str = "winworker-1"):  # type: ignore[no-untyped-def]
    return open_session(address, "Administrator", private_key_secret=KEY_SECRET, node_name=node)


async def hostname(address: str) -> str:
    async with session_to(address) as s:
        return (await s.run(powershell(ps.hostname(), display="hostname"))).stdout.strip()


async def test_sessions_one_after_another_and_at_once_share_one_login(
    lab: Lab, logins: InMemorySpanExporter
) -> None:
    host = await lab.add_host("winshare-1")
    assert await hostname(host.address) == "winshare-1"
    assert await hostname(host.address) == "winshare-1"
    names = await asyncio.gather(*(hostname(host.address) for _ in range(5)))
    assert names == ["winshare-1"] * 5
    assert count(logins) == 1
    assert count(logins, "ssh run") == 7  # every command still ran, each in its own channel


async def test_a_host_that_rebooted_gets_a_new_login(
    lab: Lab, logins: InMemorySpanExporter
) -> None:
    host = await lab.add_host("winboot-1")
    await hostname(host.address)
    await hostname(host.address)
    await host.reboot()  # drops every SSH connection
    await host.wait_up()
    assert await hostname(host.address) == "winboot-1"
    assert count(logins) == 2


async def test_a_command_on_a_connection_that_broke_fails_retryably_and_the_next_session_dials(
    lab: Lab, logins: InMemorySpanExporter
) -> None:
    host = await lab.add_host("winbreak-1")
    async with session_to(host.address) as s:
        await host.reboot()
        with pytest.raises(HostUnreachable) as caught:
            await s.run(powershell(ps.hostname(), display="hostname"))
        assert caught.value.retryable
    await host.wait_up()
    assert await hostname(host.address) == "winbreak-1"
    assert await hostname(host.address) == "winbreak-1"
    assert count(logins) == 2


async def test_a_rotated_key_logs_in_anew_with_the_new_key(
    lab: Lab, logins: InMemorySpanExporter
) -> None:
    new_key = asyncssh.generate_private_key("ssh-ed25519")
    both = (public_key_openssh(lab.key), public_key_openssh(new_key))
    host = await lab.add_host("winrot-1", authorized_keys=both)
    await hostname(host.address)
    await hostname(host.address)
    assert count(logins) == 1
    rotated = {"data": {"private-key.pem": base64.b64encode(new_key.export_private_key()).decode()}}
    await kube.call_json(
        "rotate the key", kube.core().patch_namespaced_secret, KEY_SECRET, NAMESPACE, rotated
    )

    async def logged_in_with_the_new_key() -> bool:
        assert await hostname(host.address) == "winrot-1"
        return count(logins) == 2

    await eventually("a login with the new key", logged_in_with_the_new_key)


async def test_an_unused_connection_is_closed(
    lab: Lab, logins: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ssh_pool, "IDLE_CLOSE_S", 0.05)
    host = await lab.add_host("winidle-1")
    await asyncio.gather(hostname(host.address), hostname(host.address))

    async def closed() -> bool:
        return not ssh_pool.pool().connected_to(host.address)

    await eventually("the idle connection to close", closed)
    assert await hostname(host.address) == "winidle-1"
    assert count(logins) == 2


async def test_an_open_connection_is_not_reused_once_the_pin_names_another_key(
    lab: Lab, logins: InMemorySpanExporter
) -> None:
    host = await lab.add_host("winpin-1")
    await hostname(host.address)  # pins the host's key; the connection stays open
    # The admin pins another key for this address (the machine was replaced, say).
    other = public_key_openssh(asyncssh.generate_private_key("ssh-ed25519"))
    pins = {"data": {host.address: other}}
    await kube.call_json(
        "re-pin", kube.core().patch_namespaced_config_map, hostkeys.CONFIGMAP, NAMESPACE, pins
    )

    async def pin_seen() -> bool:
        return await hostkeys.pinned(host.address, "winworker-1") == other

    await eventually("the worker to see the new pin", pin_seen)
    with pytest.raises(HostKeyMismatch, match=host.address):
        await hostname(host.address)
    assert count(logins) == 2  # the host was checked on a new connection, not the open one
