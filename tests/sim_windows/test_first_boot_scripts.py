"""First-boot scripts as cloud tooling writes them, run on simulated hosts from cloud images.

The scripts follow the shape of WMCO's `windows-user-data` and of the Microsoft OpenSSH docs:
install the OpenSSH Server capability, start sshd, write the key file through a double-quoted
`$env:ProgramData` path, lock it down with icacls, open firewall ports.
"""

from __future__ import annotations

import asyncssh
import pytest

from sim.windows.fleet import HostFleet, HostSpec
from sim.windows.host import SimulatedWindowsHost
from tests.sim_windows.conftest import connect, next_address

INSTALL_SSHD = (
    "Add-WindowsCapability -Online -Name OpenSSH.Server~~~~0.0.1.0\n"
    '$firewallRuleName = "ContainerLogsPort"\n'
    '$containerLogsPort = "10250"\n'
    "New-NetFirewallRule -DisplayName $firewallRuleName -Direction Inbound -Action Allow "
    "-Protocol TCP -LocalPort $containerLogsPort -EdgeTraversalPolicy Allow\n"
    'New-NetFirewallRule -DisplayName "WindowsExporter" -Direction Inbound -Action Allow '
    '-Protocol TCP -LocalPort "9182" -EdgeTraversalPolicy Allow\n'
    "Set-Service -Name sshd -StartupType 'Automatic'\n"
    "Start-Service sshd\n"
)
LOCK_DOWN = (
    'icacls.exe $authorizedKeyFilePath /inheritance:r /grant "Administrators:F" /grant "SYSTEM:F"\n'
)


def write_key(public_key: str, encoding: str = " -Encoding ascii") -> str:
    return (
        '$authorizedKeyFilePath = "$env:ProgramData\\ssh\\administrators_authorized_keys"\n'
        "New-Item -Force $authorizedKeyFilePath\n"
        f'echo "{public_key}"| Out-File $authorizedKeyFilePath{encoding}\n'
    )


def user_data(*parts: str, persist: bool = True) -> str:
    tail = "<persist>true</persist>\n" if persist else ""
    return "<powershell>\n" + "".join(parts) + "</powershell>\n" + tail


def public(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


async def boot(fleet: HostFleet, data: str, cloud: str = "aws") -> SimulatedWindowsHost:
    return await fleet.add_host(
        HostSpec(address=next_address(), hostname="EC2AMAZ-TEST1", user_data=data, cloud=cloud)
    )


async def login(host: SimulatedWindowsHost, key: asyncssh.SSHKey) -> str:
    async with await connect(host, key) as conn:
        return str((await conn.run("hostname", check=True)).stdout).strip()


async def test_a_cloud_image_has_no_ssh_server_until_a_script_installs_it(fleet, client_key):
    host = await boot(fleet, "")

    with pytest.raises(OSError):  # nothing listens on port 22
        await connect(host, client_key)
    out, _, code = await host.run(
        'powershell.exe -NoProfile -Command "Get-WindowsCapability -Online -Name OpenSSH* '
        '| Select-Object -Property Name,State | ConvertTo-Json -Compress"'
    )
    assert code == 0
    assert out.strip() == (
        '[{"Name":"OpenSSH.Client~~~~0.0.1.0","State":"Installed"},'
        '{"Name":"OpenSSH.Server~~~~0.0.1.0","State":"NotPresent"}]'
    )


async def test_a_wmco_shaped_user_data_script_installs_sshd_and_lets_the_key_in(fleet, client_key):
    host = await boot(fleet, user_data(INSTALL_SSHD, write_key(public(client_key)), LOCK_DOWN))

    assert await login(host, client_key) == "EC2AMAZ-TEST1"
    assert host.services["sshd"] == "Running"
    assert host.scm.get("sshd").start_type == "Automatic"
    ports = {r["DisplayName"]: r.get("LocalPort") for r in host.firewall_rules}
    assert ports == {
        "OpenSSH SSH Server (sshd)": "22",  # the rule the capability adds
        "ContainerLogsPort": "10250",
        "WindowsExporter": "9182",
    }


async def test_the_same_key_file_with_its_inherited_acl_is_ignored_and_sshd_says_why(
    fleet, client_key
):
    host = await boot(fleet, user_data(INSTALL_SSHD, write_key(public(client_key))))

    with pytest.raises(asyncssh.PermissionDenied):
        await connect(host, client_key)
    assert host.sshd_log[-2:] == [
        "Bad permissions. Try removing permissions for user: NT AUTHORITY\\Authenticated Users "
        "(S-1-5-11) on file C:/ProgramData/ssh/administrators_authorized_keys.",
        "Authentication refused.",
    ]


async def test_read_access_for_users_is_enough_for_the_in_box_sshd_to_refuse_the_key(
    fleet, client_key
):
    loosened = 'icacls.exe $authorizedKeyFilePath /grant "BUILTIN\\Users:(R)"\n'
    host = await boot(
        fleet, user_data(INSTALL_SSHD, write_key(public(client_key)), LOCK_DOWN, loosened)
    )

    with pytest.raises(asyncssh.PermissionDenied):
        await connect(host, client_key)
    assert "BUILTIN\\Users (S-1-5-32-545)" in host.sshd_log[-2]


async def test_granting_the_administrator_account_itself_still_lets_the_key_in(fleet, client_key):
    also_admin = "icacls.exe $authorizedKeyFilePath /grant Administrator:F\n"
    host = await boot(
        fleet, user_data(INSTALL_SSHD, write_key(public(client_key)), LOCK_DOWN, also_admin)
    )

    assert await login(host, client_key) == "EC2AMAZ-TEST1"


async def test_a_key_written_by_out_file_without_an_encoding_is_utf16_and_unreadable(
    fleet, client_key
):
    host = await boot(
        fleet, user_data(INSTALL_SSHD, write_key(public(client_key), encoding=""), LOCK_DOWN)
    )

    with pytest.raises(asyncssh.PermissionDenied):
        await connect(host, client_key)
    raw = (host.root / "C/ProgramData/ssh/administrators_authorized_keys").read_bytes()
    assert raw.startswith(b"\xff\xfe")


async def test_a_script_with_an_unknown_cmdlet_stops_there_and_fails_loudly(fleet, client_key):
    host = await boot(
        fleet,
        user_data(
            "$ErrorActionPreference = 'Stop'\n",
            "Install-Module -Force OpenSSHUtils\n",
            INSTALL_SSHD,
            write_key(public(client_key)),
            LOCK_DOWN,
        ),
    )

    with pytest.raises(OSError):
        await connect(host, client_key)  # the script stopped before it installed sshd
    out, err, code = await host.run(
        'powershell.exe -NoProfile -Command "Install-Module -Force OpenSSHUtils"'
    )
    assert (out, code) == ("", 1)
    assert err.startswith(
        "Install-Module : The term 'Install-Module' is not recognized as the name of a cmdlet"
    )


async def test_persisted_user_data_runs_again_at_every_boot_and_plain_user_data_once(fleet):
    count_boot = 'Add-Content -Path "$env:SystemDrive\\boots.txt" -Value "boot"\n'
    persisted = await boot(fleet, user_data(count_boot))
    once = await boot(fleet, user_data(count_boot, persist=False))

    for host in (persisted, once):
        await host.reboot()
        await host.wait_up()

    assert (persisted.root / "C/boots.txt").read_text().split() == ["boot", "boot"]
    assert (once.root / "C/boots.txt").read_text().split() == ["boot"]


async def test_user_data_runs_as_system_with_the_system_profile(fleet):
    record = (
        'Set-Content -Path C:\\who.txt -Value "$env:USERNAME|$env:USERPROFILE|$env:TEMP|'
        '$env:ProgramFiles|$env:SystemRoot"\n'
    )
    host = await boot(fleet, user_data(record))

    assert (host.root / "C/who.txt").read_text().strip() == (
        "EC2AMAZ-TEST1$|C:\\Windows\\system32\\config\\systemprofile|C:\\Windows\\TEMP|"
        "C:\\Program Files|C:\\Windows"
    )


async def test_a_byoh_host_keeps_its_sshd_running_and_its_key_file_locked_down(fleet, client_key):
    script = write_key(public(client_key)) + LOCK_DOWN
    host = await fleet.add_host(
        HostSpec(address=next_address(), hostname="BYOH-1", user_data=user_data(script))
    )

    assert await login(host, client_key) == "BYOH-1"
    out, _, _ = await host.run("icacls C:\\ProgramData\\ssh\\administrators_authorized_keys")
    assert out.splitlines()[:2] == [
        "C:\\ProgramData\\ssh\\administrators_authorized_keys BUILTIN\\Administrators:(F)",
        "                                                  NT AUTHORITY\\SYSTEM:(F)",
    ]


async def test_winfleets_own_first_boot_script_lets_its_key_in_on_a_cloud_image(fleet, client_key):
    from activities.cloud.userdata import windows_user_data

    host = await boot(fleet, windows_user_data(public(client_key)))

    assert await login(host, client_key) == "EC2AMAZ-TEST1"
    assert host.sshd_log == []
    assert {r["LocalPort"] for r in host.firewall_rules} == {"22", "10250", "9182"}
