"""A simulated host's VM stopped and started: off the network, disk kept, the same host back."""

from __future__ import annotations

import pytest

from sim.windows.fleet import HostSpec
from tests.sim_windows.conftest import connect, install_payload, next_address


async def test_a_stopped_host_refuses_ssh_and_a_started_one_comes_back_with_its_disk(
    host, client_key, payload
):
    install_payload(host, payload)
    for line in (
        'powershell.exe -Command "Set-Content -Path C:\\k\\note.txt -Value kept"',
        'sc.exe create auto-svc binPath= "C:\\k\\wmcb.exe" start= auto',
        'sc.exe create manual-svc binPath= "C:\\k\\wmcb.exe" start= demand',
        "sc.exe start manual-svc",
        "icacls C:\\k\\note.txt /inheritance:r /grant SYSTEM:F",
    ):
        _, _, code = await host.run(line)
        assert code == 0, line
    host.hns.create_network("Base", "Overlay", "100.64.0.0/16", "100.64.0.1", persistent=True)
    host.hns.create_network("Overlay", "Overlay", "10.132.1.0/24", "10.132.1.1")

    await host.power_off()

    assert not host.powered_on
    with pytest.raises(OSError):
        await connect(host, client_key)
    assert set(host.services.values()) == {"Stopped"}

    host.power_on()
    await host.wait_up()

    async with await connect(host, client_key) as conn:
        note = await conn.run('powershell.exe -Command "Get-Content -Path C:\\k\\note.txt"')
        acl = await conn.run("icacls C:\\k\\note.txt")
    assert note.stdout == "kept\r\n"
    assert str(acl.stdout).startswith("C:\\k\\note.txt NT AUTHORITY\\SYSTEM:(F)\r\n")
    assert host.services["sshd"] == "Running"
    assert host.services["auto-svc"] == "Running"  # Automatic services start at boot
    assert host.services["manual-svc"] == "Stopped"
    assert set(host.hns_networks) == {"Base"}  # only the persistent network survives


async def test_a_start_waits_for_the_boot_delay(fleet, client_key):
    host = await fleet.add_host(
        HostSpec(
            address=next_address(),
            hostname="WIN-SLOW",
            authorized_keys=(client_key.export_public_key().decode(),),
            boot_seconds=0.5,
        )
    )
    await host.wait_up()
    await host.power_off()

    host.power_on()
    with pytest.raises(OSError):  # still booting
        await connect(host, client_key)
    await host.wait_up()
    async with await connect(host, client_key) as conn:
        assert (await conn.run("hostname")).stdout == "WIN-SLOW\r\n"
