"""The OpenSSH Server of a SIMULATED Windows host: capability, `sshd` service, key-file check.

Windows Server 2019/2022 ship OpenSSH as a Feature on Demand: the client is installed, the
server (`OpenSSH.Server~~~~0.0.1.0`) is not, on AWS and Azure images alike. Installing it
(`Add-WindowsCapability`) puts `sshd.exe` under `C:\\Windows\\System32\\OpenSSH`, registers the
`sshd` service (Manual) and the firewall rule `OpenSSH-Server-In-TCP`. The first start of
`sshd` creates `C:\\ProgramData\\ssh` with the ACL Win32-OpenSSH gives it (owner Administrators,
inheritance removed, SYSTEM and Administrators full control, Authenticated Users read &
execute) and a default `sshd_config`. The host listens on port 22 exactly while `sshd` runs.

Public keys of an administrator come from `C:\\ProgramData\\ssh\\administrators_authorized_keys`
(`Match Group administrators` in the default `sshd_config`), and only if the file passes the
in-box sshd's check (OpenSSH_for_Windows 7.7p1 on 2019, 8.1p1 on 2022; `w32-sshfileperm.c`):
owner Administrators, SYSTEM or an administrator account; every allow ACE for SYSTEM,
Administrators, the owner, the user or another administrator account, `NT SERVICE\\sshd` at most
read; any other principal with any access refuses the file ("Authentication refused."). Those
releases predate the relaxation that tolerates read access for others (Win32-OpenSSH 8.6+).
Why a key was refused goes to `host.sshd_log` (the OpenSSH/Operational event log).
Used by `host.py`, `components.py` (the `sshd` service) and `pwsh_capability.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from sim.windows import acl, icacls, paths
from sim.windows.acl import Ace, Descriptor

SERVER = "OpenSSH.Server~~~~0.0.1.0"
CLIENT = "OpenSSH.Client~~~~0.0.1.0"
CAPABILITIES = {
    CLIENT: (
        "OpenSSH Client",
        "OpenSSH-based secure shell (SSH) client, for secure key management and access to "
        "remote machines.",
    ),
    SERVER: (
        "OpenSSH Server",
        "OpenSSH-based secure shell (SSH) server, for secure key management and access from "
        "remote machines.",
    ),
}
OPENSSH_DIR = "C:\\Windows\\System32\\OpenSSH"
SSHD_EXE = f"{OPENSSH_DIR}\\sshd.exe"
AGENT_EXE = f"{OPENSSH_DIR}\\ssh-agent.exe"
PROGRAM_DATA_SSH = "C:\\ProgramData\\ssh"
ADMIN_KEYS = f"{PROGRAM_DATA_SSH}\\administrators_authorized_keys"
SSHD_CONFIG_DEFAULT = """\
# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

#Port 22
#AddressFamily any
#ListenAddress 0.0.0.0

#PubkeyAuthentication yes

# The default is to check both .ssh/authorized_keys and .ssh/authorized_keys2
# but this is overridden so installations will only check .ssh/authorized_keys
AuthorizedKeysFile	.ssh/authorized_keys

#PasswordAuthentication yes
#PermitEmptyPasswords no

# override default of no subsystems
Subsystem	sftp	sftp-server.exe

Match Group administrators
       AuthorizedKeysFile __PROGRAMDATA__/ssh/administrators_authorized_keys
"""
SSHD_SERVICE = "sshd"
AGENT_SERVICE = "ssh-agent"
FIREWALL_RULE = {
    "Name": "OpenSSH-Server-In-TCP",
    "DisplayName": "OpenSSH SSH Server (sshd)",
    "Enabled": "True",
    "Direction": "Inbound",
    "Action": "Allow",
    "Protocol": "TCP",
    "LocalPort": "22",
}


def _stand_in(host: Any, win_path: str, text: str) -> None:
    local = paths.to_local(host.root, win_path)
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(f"SIMULATED {text}\n")


def install_client(host: Any) -> None:
    """What every Windows Server 2019/2022 image has: the OpenSSH client and ssh-agent."""
    _stand_in(host, f"{OPENSSH_DIR}\\ssh.exe", "OpenSSH client")
    _stand_in(host, AGENT_EXE, "OpenSSH authentication agent")
    if host.scm.find(AGENT_SERVICE) is None:
        host.scm.create(
            AGENT_SERVICE,
            AGENT_EXE,
            start_type="Disabled",
            display_name="OpenSSH Authentication Agent",
            description="Agent to hold private keys used for public key authentication.",
        )


def server_installed(host: Any) -> bool:
    return host.scm.find(SSHD_SERVICE) is not None


def install_server(host: Any) -> None:
    """Add-WindowsCapability OpenSSH.Server: binaries, the Manual `sshd` service, the rule."""
    _stand_in(host, SSHD_EXE, "OpenSSH SSH server")
    _stand_in(host, f"{OPENSSH_DIR}\\sftp-server.exe", "OpenSSH SFTP server")
    _stand_in(host, f"{OPENSSH_DIR}\\sshd_config_default", SSHD_CONFIG_DEFAULT)
    if not server_installed(host):
        host.scm.create(
            SSHD_SERVICE,
            SSHD_EXE,
            start_type="Manual",
            display_name="OpenSSH SSH Server",
            description="SSH protocol based service to provide secure encrypted communications "
            "between two untrusted hosts over an insecure network.",
        )
    if not any(r.get("Name") == FIREWALL_RULE["Name"] for r in host.firewall.rules):
        host.firewall.add(dict(FIREWALL_RULE))


def first_start(host: Any) -> None:
    """What sshd does when it starts, before it reports Running: create C:\\ProgramData\\ssh
    with its own ACL (if missing) and the default config."""
    folder = paths.to_local(host.root, PROGRAM_DATA_SSH)
    if not folder.is_dir():
        folder.mkdir(parents=True)
        host.acls.update(
            PROGRAM_DATA_SSH,
            Descriptor(
                acl.ADMINISTRATORS,
                True,
                [
                    Ace(acl.SYSTEM, acl.FULL, flags=frozenset({"OI", "CI"})),
                    Ace(acl.ADMINISTRATORS, acl.FULL, flags=frozenset({"OI", "CI"})),
                    Ace(acl.AUTHENTICATED_USERS, acl.READ_EXECUTE, flags=frozenset({"OI", "CI"})),
                ],
            ),
        )
    logs = folder / "logs"
    if not logs.is_dir():
        logs.mkdir()
        host.acls.update(
            f"{PROGRAM_DATA_SSH}\\logs",
            Descriptor(
                acl.ADMINISTRATORS,
                True,
                [
                    Ace(acl.SYSTEM, acl.FULL, flags=frozenset({"OI", "CI"})),
                    Ace(acl.ADMINISTRATORS, acl.FULL, flags=frozenset({"OI", "CI"})),
                ],
            ),
        )
    config = folder / "sshd_config"
    if not config.exists():
        config.write_text(SSHD_CONFIG_DEFAULT.replace("\n", "\r\n"), newline="")


async def run_sshd(host: Any, flags: dict[str, str]) -> None:
    """The `sshd` service: port 22 is open exactly while it runs."""
    await host.open_ssh()
    try:
        await asyncio.Event().wait()
    finally:
        host.ssh_service_stopped()


def key_file_problem(host: Any) -> str | None:
    """Why sshd would refuse `administrators_authorized_keys` for the admin user (None: it is
    accepted). The admin account is the user and the only direct member of Administrators."""
    current = host.acls.acl(ADMIN_KEYS)
    user_sid = icacls.admin_sid(host)
    trusted = {acl.ADMINISTRATORS, acl.SYSTEM, user_sid}
    shown = ADMIN_KEYS.replace("\\", "/")
    if current.owner not in trusted:
        return f"Bad owner on {shown}"
    for ace in current.aces:
        if "IO" in ace.flags:
            continue
        if not ace.allow:
            if ace.mask & (acl.READ & ~(acl.S | acl.RC)) and ace.sid in (current.owner, user_sid):
                return f"Bad permission on {shown}. The user should at least have read permission."
            continue
        if ace.sid in trusted or ace.sid == current.owner:
            continue
        name = icacls.account_name(host, ace.sid)
        return f"Bad permissions. Try removing permissions for user: {name} ({ace.sid}) on file {shown}."  # noqa: E501
    return None


def admin_key_blobs(host: Any) -> set[bytes]:
    """The keys sshd accepts for the admin user from the shared key file."""
    path = paths.to_local(host.root, ADMIN_KEYS)
    if not path.is_file():
        return set()
    problem = key_file_problem(host)
    if problem is not None:
        host.sshd_log.append(problem)
        host.sshd_log.append("Authentication refused.")
        return set()
    text = path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    return parse_keys(text.splitlines())


def parse_keys(lines: list[str]) -> set[bytes]:
    blobs: set[bytes] = set()
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            blobs.add(asyncssh.import_public_key(line).public_data)
        except (asyncssh.KeyImportError, ValueError):
            continue
    return blobs
