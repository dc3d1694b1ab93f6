"""The first-boot script: what a new Windows VM runs from its cloud user data."""

from __future__ import annotations

import asyncssh
import pytest
from windows_lines import script_of

from activities.cloud.userdata import (
    azure_bootstrap_command,
    azure_custom_data,
    check_public_key,
    first_boot_statements,
    windows_user_data,
)
from activities.errors import InvalidRequest
from activities.keys import public_key_openssh

KEY = asyncssh.generate_private_key("ssh-ed25519")
PUBLIC = public_key_openssh(KEY)
PRIVATE_PEM = KEY.export_private_key("openssh").decode()


def test_ec2_user_data_is_one_powershell_block_that_authorises_the_public_key() -> None:
    data = windows_user_data(PUBLIC)
    assert data.startswith("<powershell>\n")
    assert data.rstrip().endswith("</powershell>")
    assert data.count("<powershell>") == 1
    assert (
        r"Set-Content -Path 'C:\ProgramData\ssh\administrators_authorized_keys' "
        f"-Value '{PUBLIC}'"
    ) in data


def test_user_data_installs_and_starts_sshd_before_writing_the_key() -> None:
    statements = first_boot_statements(PUBLIC)
    assert statements[0] == "$ErrorActionPreference = 'Stop'"
    install = statements.index("Add-WindowsCapability -Online -Name 'OpenSSH.Server~~~~0.0.1.0'")
    automatic = statements.index("Set-Service -Name 'sshd' -StartupType Automatic")
    start = statements.index("Start-Service -Name 'sshd'")
    write = next(i for i, s in enumerate(statements) if s.startswith("Set-Content"))
    assert install < automatic < start < write


def test_the_key_file_is_restricted_to_administrators_and_system_and_the_script_fails_if_not() -> (
    None
):
    statements = first_boot_statements(PUBLIC)
    assert statements[-2:] == (
        r"icacls.exe 'C:\ProgramData\ssh\administrators_authorized_keys' /inheritance:r "
        "/grant '*S-1-5-32-544:F' /grant '*S-1-5-18:F'",
        "exit $LASTEXITCODE",
    )


@pytest.mark.parametrize("port", [22, 10250, 9182])
def test_user_data_opens_ssh_kubelet_and_windows_exporter_ports(port: int) -> None:
    rules = [s for s in first_boot_statements(PUBLIC) if s.startswith("New-NetFirewallRule")]
    assert any(
        s.endswith(f"-Direction Inbound -Action Allow -Protocol TCP -LocalPort {port}")
        for s in rules
    )
    assert len(rules) == 3


def test_azure_custom_data_is_the_same_script_without_powershell_tags() -> None:
    azure = azure_custom_data(PUBLIC)
    assert "<powershell>" not in azure
    assert windows_user_data(PUBLIC) == f"<powershell>\n{azure}</powershell>\n"


def test_user_data_never_contains_private_key_material() -> None:
    data = windows_user_data(PUBLIC)
    assert "PRIVATE KEY" not in data
    private_body = "".join(PRIVATE_PEM.splitlines()[1:-1])
    assert private_body[:40] not in data.replace("\n", "")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (PRIVATE_PEM, "private key"),
        ("", "empty"),
        ("AAAAC3NzaC1lZDI1NTE5AAAA", "no key type"),
        ("ssh-ed25519", "no key body"),
        (f"{PUBLIC}\n{PUBLIC}", "two lines"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "unsupported key type"),
    ],
)
def test_anything_but_one_public_key_line_is_refused(value: str, why: str) -> None:
    with pytest.raises(InvalidRequest):
        windows_user_data(value)


def test_a_quote_in_the_key_comment_cannot_break_out_of_the_literal() -> None:
    key = PUBLIC + " it's'; Remove-Item -Path C:\\ -Recurse -Force; '"
    statements = first_boot_statements(key)
    write = next(s for s in statements if s.startswith("Set-Content"))
    assert write.endswith("-Value '" + key.replace("'", "''") + "'")


def test_surrounding_whitespace_of_the_key_is_dropped() -> None:
    assert check_public_key(f"  {PUBLIC}\n") == PUBLIC


def test_the_script_parses_with_the_twins_powershell_parser() -> None:
    from sim.windows.pwsh_parser import parse

    statements = parse(azure_custom_data(PUBLIC))
    assert len(statements) == len(first_boot_statements(PUBLIC))


def test_the_azure_bootstrap_command_copies_the_custom_data_to_a_ps1_and_runs_it() -> None:
    line = azure_bootstrap_command().line
    assert line.startswith("powershell.exe ")
    line = script_of(line)

    assert (
        r"Copy-Item -Path 'C:\AzureData\CustomData.bin' "
        r"-Destination 'C:\AzureData\winfleet-bootstrap.ps1' -Force"
    ) in line
    assert r"-File 'C:\AzureData\winfleet-bootstrap.ps1'; exit $LASTEXITCODE" in line
    assert "ssh-" not in line  # the key travels in the custom data only
