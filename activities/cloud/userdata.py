"""The first-boot script a new Windows VM runs: install and start sshd, authorise winfleet's SSH
key, open its ports.

WMCO's `windows-user-data` equivalent. It holds the PUBLIC key only. Cloud images come without
the OpenSSH Server, so the script installs the capability, sets sshd to start automatically and
starts it (which creates `C:\\ProgramData\\ssh`), writes the key file and restricts it to
Administrators and SYSTEM (sshd ignores the file otherwise: it would inherit Authenticated Users'
read access from the folder), then opens the ports. AWS runs the body of
`<powershell>...</powershell>` user data at first boot (`windows_user_data`). Azure runs neither
user data nor custom data on Windows: the script (`azure_custom_data`) travels as
`osProfile.customData`, which Azure writes to `C:\\AzureData\\CustomData.bin`, and a
CustomScriptExtension runs `azure_bootstrap_command()`, which copies it to a `.ps1` and runs it
(as AKS and OpenShift's machine-api do). Statements come from `activities/windows/powershell.py`,
so only the vocabulary the twin and Windows Server both accept is used. Called by
`activities/cloud/aws.py` and `azure.py`.
"""

from __future__ import annotations

from activities.errors import InvalidRequest
from activities.windows.paths import AUTHORIZED_KEYS, AZURE_BOOTSTRAP_SCRIPT, AZURE_CUSTOM_DATA
from activities.windows.powershell import (
    ADMINISTRATORS_SID,
    OPENSSH_SERVER,
    SSHD,
    STOP_ON_ERROR,
    SYSTEM_SID,
    WindowsCommand,
    add_windows_capability,
    copy_item,
    exit_with_last_exit_code,
    grant_full_control_only,
    new_firewall_rule,
    powershell,
    run_script_file,
    set_content,
    set_service_startup_type,
    start_service,
)

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


def first_boot_statements(public_key_openssh: str) -> tuple[str, ...]:
    """The script's statements, in order; the script exits with icacls's exit code, so a key
    file left readable by others fails the script (EC2Launch logs it, the Azure extension
    fails) instead of leaving a host that refuses every login."""
    key = check_public_key(public_key_openssh)
    return (
        STOP_ON_ERROR,
        add_windows_capability(OPENSSH_SERVER),
        *(new_firewall_rule(name, port) for name, port in FIREWALL_PORTS),
        set_service_startup_type(SSHD, "Automatic"),
        start_service(SSHD),
        set_content(AUTHORIZED_KEYS, key),
        grant_full_control_only(AUTHORIZED_KEYS, ADMINISTRATORS_SID, SYSTEM_SID),
        exit_with_last_exit_code(),
    )


def azure_custom_data(public_key_openssh: str) -> str:
    """The first-boot PowerShell script as a plain `.ps1` (Azure `customData`: no tags)."""
    return "\n".join(first_boot_statements(public_key_openssh)) + "\n"


def windows_user_data(public_key_openssh: str) -> str:
    """The first-boot script in EC2's `<powershell>...</powershell>` form."""
    return f"<powershell>\n{azure_custom_data(public_key_openssh)}</powershell>\n"


def azure_bootstrap_command() -> WindowsCommand:
    """What the Azure CustomScriptExtension runs: the custom data, as a script, once.

    PowerShell only runs files ending in `.ps1`, hence the copy; the script's exit code is the
    command's, so a failing first-boot script fails the extension.
    """
    return powershell(
        copy_item(AZURE_CUSTOM_DATA, AZURE_BOOTSTRAP_SCRIPT),
        run_script_file(AZURE_BOOTSTRAP_SCRIPT),
        exit_with_last_exit_code(),
        display="run the Azure custom data (first-boot script)",
    )
