"""The first-boot script a new Windows VM runs: authorise winfleet's SSH key, open its ports.

WMCO's `windows-user-data` equivalent. The VM's cloud user data carries it: AWS runs the body of
`<powershell>...</powershell>` at first boot (`windows_user_data`); on Azure the same script
travels as `userData` without the tags (`azure_user_data`). It holds the PUBLIC key only.
Statements come from `activities/windows/powershell.py`, so only the vocabulary the twin and
Windows Server both accept is used. Called by `activities/cloud/aws.py` and `azure.py`.
"""

from __future__ import annotations

from activities.errors import InvalidRequest
from activities.windows.paths import AUTHORIZED_KEYS, parent
from activities.windows.powershell import STOP_ON_ERROR, new_directory, set_content
from activities.windows.quoting import ps_quote

# (display name, TCP port): sshd, kubelet, windows_exporter — as WMCO opens them.
FIREWALL_PORTS: tuple[tuple[str, int], ...] = (
    ("winfleet-ssh", 22),
    ("winfleet-kubelet", 10250),
    ("winfleet-windows-exporter", 9182),
)

_PUBLIC_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


def check_public_key(public_key_openssh: str) -> str:
    """The key as one `authorized_keys` line; InvalidRequest for anything else (a private key)."""
    key = public_key_openssh.strip()
    if "PRIVATE KEY" in key or "\n" in key or "\r" in key:
        raise InvalidRequest(
            "VM user data takes one OpenSSH public key line; got something else "
            "(a private key or several lines) — pass public_key_openssh(key)"
        )
    kind, _, rest = key.partition(" ")
    if kind not in _PUBLIC_KEY_TYPES or not rest.strip():
        raise InvalidRequest(
            "VM user data needs an OpenSSH public key such as 'ssh-ed25519 AAAA...'; "
            f"got a value starting with {kind[:20]!r}"
        )
    return key


def new_firewall_rule(display_name: str, port: int) -> str:
    """Allow inbound TCP on `port` (New-NetFirewallRule; vocabulary in sim/README.md)."""
    return (
        f"New-NetFirewallRule -DisplayName {ps_quote(display_name)} -Direction Inbound "
        f"-Action Allow -Protocol TCP -LocalPort {int(port)}"
    )


def first_boot_statements(public_key_openssh: str) -> tuple[str, ...]:
    """The script's statements, in order.

    The `C:\\ProgramData\\ssh` directory is created by the OpenSSH server install with an ACL
    limited to SYSTEM and Administrators; the key file inherits it, as sshd requires.
    """
    key = check_public_key(public_key_openssh)
    return (
        STOP_ON_ERROR,
        new_directory(parent(AUTHORIZED_KEYS)),
        set_content(AUTHORIZED_KEYS, key),
        *(new_firewall_rule(name, port) for name, port in FIREWALL_PORTS),
    )


def azure_user_data(public_key_openssh: str) -> str:
    """The first-boot PowerShell script (Azure `userData` form: no tags)."""
    return "\n".join(first_boot_statements(public_key_openssh)) + "\n"


def windows_user_data(public_key_openssh: str) -> str:
    """The first-boot script in EC2's `<powershell>...</powershell>` form."""
    return f"<powershell>\n{azure_user_data(public_key_openssh)}</powershell>\n"
