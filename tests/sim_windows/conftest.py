"""Fixtures for the SIMULATED Windows host tests: a fleet on 127.2.0.0/16, client keys, payload."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from sim.payload import build_sample_payload
from sim.windows.fleet import HostFleet, HostSpec
from sim.windows.host import SimulatedWindowsHost

# A random start per process: two concurrent runs of this suite (e.g. `make test` while a
# developer runs these tests) must not try to bind the same 127.2.x.y:22.
_addresses = itertools.count(secrets.randbelow(60_000))


def next_address() -> str:
    n = next(_addresses) % 64_000
    return f"127.2.{n // 250}.{n % 250 + 1}"


@pytest.fixture
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[HostFleet]:
    fleet = HostFleet(tmp_path / "fleet")
    await fleet.start()
    yield fleet
    await fleet.stop()


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    dest = tmp_path / "payload"
    build_sample_payload(dest)
    return dest


@pytest.fixture
async def host(fleet: HostFleet, client_key: asyncssh.SSHKey) -> SimulatedWindowsHost:
    return await fleet.add_host(
        HostSpec(
            address=next_address(),
            hostname="WIN-SIM01",
            authorized_keys=(client_key.export_public_key().decode(),),
        )
    )


def install_payload(host: SimulatedWindowsHost, payload: Path) -> None:
    """Put the stand-in payload in C:\\k as the product's copy step would."""
    target = host.root / "C" / "k"
    for src in payload.rglob("*"):
        if src.is_file():
            dst = target / src.relative_to(payload)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())


async def connect(
    host: SimulatedWindowsHost, key: asyncssh.SSHKey, username: str = "Administrator"
) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        host.address, port=host.port, username=username, client_keys=[key], known_hosts=None
    )
