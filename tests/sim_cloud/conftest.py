"""Shared helpers for the cloud-twin tests: a host fleet, deadline waits, SSH probes.

Addresses: AWS twins here use 127.11.0.0/16 and Azure twins 127.21.0.0/16 (other suites use
other loopback ranges concurrently).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncssh
import pytest

from sim.cloud.azure import AzureTwin
from sim.pki import CertificateAuthority
from sim.windows.fleet import HostFleet

AWS_CIDR = "127.11.0.0/16"
AZURE_CIDR = "127.21.0.0/16"
BOOT_SECONDS = 1.0


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, deadline: float = 15.0
) -> float:
    """Poll `check` until it is true; returns the seconds it took. Fails after `deadline` s."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > deadline:
            raise AssertionError(f"timed out after {deadline:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def ssh(address: str, key: asyncssh.SSHKey, username: str, command: str = "hostname") -> str:
    """Outcome of an SSH login + `command`: its stdout, 'refused', 'denied' or 'dropped'
    (the host went down mid-handshake, e.g. while a VM is being deleted).

    known_hosts=None is acceptable ONLY here, in tests of the twin itself."""
    try:
        async with asyncssh.connect(
            address,
            port=22,
            username=username,
            client_keys=[key],
            known_hosts=None,
            connect_timeout=5,
        ) as conn:
            result = await conn.run(command, check=True)
            return str(result.stdout).strip()
    except ConnectionRefusedError:
        return "refused"
    except asyncssh.PermissionDenied:
        return "denied"
    except (asyncssh.ConnectionLost, ConnectionResetError, asyncssh.DisconnectError):
        return "dropped"
    except TimeoutError:  # the host went down after accepting, before the handshake finished
        return "dropped"


def first_boot_script(public_key: str) -> str:
    """What WMCO's `windows-user-data` does to let its key in (its shape, not its text): install
    and start the OpenSSH Server, write the key file, restrict it to Administrators and SYSTEM,
    open the ports."""
    return (
        "Add-WindowsCapability -Online -Name OpenSSH.Server~~~~0.0.1.0\n"
        "Set-Service -Name sshd -StartupType 'Automatic'\n"
        "Start-Service sshd\n"
        '$authorizedKeyFilePath = "$env:ProgramData\\ssh\\administrators_authorized_keys"\n'
        "New-Item -Force $authorizedKeyFilePath\n"
        f'echo "{public_key}"| Out-File $authorizedKeyFilePath -Encoding ascii\n'
        'icacls.exe $authorizedKeyFilePath /inheritance:r /grant "Administrators:F" '
        '/grant "SYSTEM:F"\n'
        "New-NetFirewallRule -DisplayName 'ContainerLogsPort' -Direction Inbound -Action Allow "
        "-Protocol TCP -LocalPort 10250 -EdgeTraversalPolicy Allow\n"
    )


def authorized_key_user_data(public_key: str) -> str:
    """EC2 user data that lets `public_key` in for the administrators (as WMCO's does)."""
    return f"<powershell>\n{first_boot_script(public_key)}</powershell>\n<persist>true</persist>\n"


@pytest.fixture
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[HostFleet]:
    hosts = HostFleet(tmp_path / "fleet")
    await hosts.start()
    yield hosts
    await hosts.stop()


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority("sim-cloud-test-ca")


@pytest.fixture
def ca_bundle(ca: CertificateAuthority, tmp_path: Path) -> str:
    path = tmp_path / "ca.crt"
    path.write_bytes(ca.ca_pem)
    return str(path)


@pytest.fixture
async def azure(fleet: HostFleet, ca: CertificateAuthority) -> AsyncIterator[AzureTwin]:
    twin = AzureTwin(fleet, ca, cidr=AZURE_CIDR, boot_seconds=BOOT_SECONDS, provision_seconds=0.3)
    await twin.start()
    yield twin
    await twin.stop()
