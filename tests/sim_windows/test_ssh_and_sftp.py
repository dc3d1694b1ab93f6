"""SSH and SFTP behaviour of a simulated Windows host, seen through real clients."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from pathlib import Path

import asyncssh
import pytest

from sim.windows.fleet import HostFleet, HostSpec
from tests.sim_windows.conftest import connect, next_address


async def test_the_authorized_key_logs_in_and_runs_hostname(host, client_key):
    async with await connect(host, client_key) as conn:
        result = await conn.run("hostname")
    assert result.exit_status == 0
    assert result.stdout == "WIN-SIM01\r\n"


async def test_another_key_is_rejected(host):
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(host, stranger)


async def test_another_user_is_rejected_even_with_the_right_key(host, client_key):
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(host, client_key, username="capi")


async def test_user_data_authorizes_the_key_at_first_boot_and_ssh_waits_for_boot(
    fleet: HostFleet, client_key
):
    pub = client_key.export_public_key().decode().strip()
    user_data = (
        "<powershell>\n"
        f"Set-Content -Path C:\\ProgramData\\ssh\\administrators_authorized_keys -Value '{pub}'\n"
        "icacls.exe C:\\ProgramData\\ssh\\administrators_authorized_keys /inheritance:r "
        "/grant Administrators:F /grant SYSTEM:F\n"
        "New-NetFirewallRule -DisplayName 'SSH' -Direction Inbound -Action Allow -Protocol TCP "
        "-LocalPort 22\n"
        "</powershell>"
    )
    host = await fleet.add_host(
        HostSpec(address=next_address(), hostname="WIN-BOOT", user_data=user_data, boot_seconds=1.0)
    )
    with pytest.raises(OSError):  # ConnectionRefusedError while booting
        await connect(host, client_key)
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            conn = await connect(host, client_key)
            break
        except OSError:
            assert asyncio.get_running_loop().time() < deadline, "SSH never came up"
            await asyncio.sleep(0.1)
    async with conn:
        assert (await conn.run("hostname")).stdout.strip() == "WIN-BOOT"
    assert [r["LocalPort"] for r in host.firewall_rules if r["DisplayName"] == "SSH"] == ["22"]


async def test_host_key_survives_a_process_restart_and_changes_on_change_host_key(
    tmp_path: Path, client_key
):
    address = next_address()
    spec = HostSpec(
        address=address,
        hostname="WIN-KEY",
        authorized_keys=(client_key.export_public_key().decode(),),
    )

    async def seen_key() -> bytes:
        async with await connect(fleet.get(address), client_key) as conn:
            return conn.get_server_host_key().public_data

    fleet = HostFleet(tmp_path / "f")
    await fleet.start()
    await fleet.add_host(spec)
    first = await seen_key()
    await fleet.stop()
    fleet = HostFleet(tmp_path / "f")
    await fleet.start()
    host = await fleet.add_host(spec)
    try:
        assert await seen_key() == first
        host.faults.change_host_key()
        assert await seen_key() != first
    finally:
        await fleet.stop()


async def test_refuse_ssh_closes_the_port_for_a_while(host, client_key):
    host.faults.refuse_ssh(0.5)
    with pytest.raises(OSError):
        await connect(host, client_key)
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        try:
            async with await connect(host, client_key) as conn:
                assert (await conn.run("hostname")).exit_status == 0
            break
        except OSError:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)


async def test_sftp_put_and_get_use_windows_drive_paths(host, client_key, payload, tmp_path):
    async with await connect(host, client_key) as conn, conn.start_sftp_client() as sftp:
        await sftp.makedirs("/C:/k/cni")
        await sftp.put(str(payload / "wmcb.exe"), "/C:/k/wmcb.exe")
        await sftp.put(str(payload / "cni" / "host-local.exe"), "C:/k/cni/host-local.exe")
        await sftp.get("/C:/k/wmcb.exe", str(tmp_path / "back.exe"))
        assert await sftp.realpath(".") == "/C:/Users/Administrator"
        with pytest.raises(asyncssh.SFTPError):
            await sftp.get("/C:/../../../etc/passwd", str(tmp_path / "x"))
    assert (tmp_path / "back.exe").read_bytes() == (payload / "wmcb.exe").read_bytes()
    assert (host.root / "C" / "k" / "cni" / "host-local.exe").is_file()


async def test_a_dropped_upload_leaves_a_partial_file_that_can_be_resumed(
    host, client_key, payload
):
    data = (payload / "kubelet.exe").read_bytes()
    host.faults.drop_sftp_after(300_000, times=1)
    with pytest.raises((asyncssh.Error, OSError)):
        async with await connect(host, client_key) as conn, conn.start_sftp_client() as sftp:
            await sftp.makedirs("/C:/k", exist_ok=True)
            await sftp.put(str(payload / "kubelet.exe"), "/C:/k/kubelet.exe")
    partial = (host.root / "C" / "k" / "kubelet.exe").stat().st_size
    assert partial == 300_000
    async with await connect(host, client_key) as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/C:/k/kubelet.exe", "r+b") as remote:
            await remote.seek(partial)
            await remote.write(data[partial:])
    async with await connect(host, client_key) as conn:
        result = await conn.run(
            "powershell.exe -NoLogo -NoProfile -NonInteractive -Command "
            '"Get-FileHash -Path C:\\k\\kubelet.exe -Algorithm SHA256 | '
            'Select-Object -ExpandProperty Hash"'
        )
    assert result.stdout.strip() == hashlib.sha256(data).hexdigest().upper()


async def test_the_openssh_client_runs_commands_with_a_pinned_host_key(host, client_key, tmp_path):
    key_file = tmp_path / "id_ed25519"
    client_key.write_private_key(str(key_file))
    os.chmod(key_file, 0o600)
    known = tmp_path / "known_hosts"
    known.write_text(f"{host.address} {host.host_key_public}\n")
    proc = await asyncio.create_subprocess_exec(
        "ssh",
        "-i",
        str(key_file),
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        f"Administrator@{host.address}",
        "sc.exe query nosuchservice",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1060 % 256
    assert b"The specified service does not exist as an installed service." in out


async def test_the_openssh_sftp_client_uploads_to_drive_paths(host, client_key, tmp_path, payload):
    key_file = tmp_path / "id_ed25519"
    client_key.write_private_key(str(key_file))
    os.chmod(key_file, 0o600)
    known = tmp_path / "known_hosts"
    known.write_text(f"{host.address} {host.host_key_public}\n")
    batch = tmp_path / "batch"
    batch.write_text(f"mkdir /C:/k\nput {payload / 'wmcb.exe'} /C:/k/wmcb.exe\nls /C:/k\n")
    proc = await asyncio.create_subprocess_exec(
        "sftp",
        "-i",
        str(key_file),
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-b",
        str(batch),
        f"Administrator@{host.address}",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert (host.root / "C" / "k" / "wmcb.exe").read_bytes() == (payload / "wmcb.exe").read_bytes()


async def test_restart_computer_drops_the_session_and_the_new_name_shows_after_boot(
    host, client_key
):
    async with await connect(host, client_key) as conn:
        result = await conn.run(
            'powershell.exe -NoProfile -Command "Rename-Computer -NewName winworker-7 -Force"'
        )
        assert result.exit_status == 0
        assert (await conn.run("hostname")).stdout.strip() == "WIN-SIM01"
        await conn.run('powershell.exe -NoProfile -Command "Restart-Computer -Force"')
        await asyncio.wait_for(conn.wait_closed(), 10)
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            async with await connect(host, client_key) as conn:
                assert (await conn.run("hostname")).stdout.strip() == "winworker-7"
            break
        except OSError:
            assert asyncio.get_running_loop().time() < deadline, "host never came back"
            await asyncio.sleep(0.05)
