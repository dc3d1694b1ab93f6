"""The PowerShell language features that admin scripts use, run on a simulated host over SSH."""

from __future__ import annotations

import json

import pytest

from tests.sim_windows.conftest import connect


async def ps(host, client_key, script: str) -> tuple[str, str, int]:
    """Run `script` through `powershell.exe -Command` over SSH, as an admin would."""
    line = (
        'powershell.exe -NoLogo -NoProfile -NonInteractive -Command "'
        + script.replace('"', '\\"')
        + '"'
    )
    async with await connect(host, client_key) as conn:
        result = await conn.run(line)
    return str(result.stdout), str(result.stderr), int(result.exit_status or 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ProgramData", "C:\\ProgramData"),
        ("SystemRoot", "C:\\Windows"),
        ("ProgramFiles", "C:\\Program Files"),
        ("USERPROFILE", "C:\\Users\\Administrator"),
        ("COMPUTERNAME", "WIN-SIM01"),
        ("USERNAME", "Administrator"),
        ("TEMP", "C:\\Users\\Administrator\\AppData\\Local\\Temp"),
    ],
)
async def test_env_variables_have_the_values_of_a_windows_server(host, client_key, name, value):
    out, _, code = await ps(host, client_key, f"$env:{name}")
    assert (out.strip(), code) == (value, 0)


async def test_variables_expand_in_double_quotes_and_barewords_but_not_in_single_quotes(
    host, client_key
):
    out, err, code = await ps(
        host,
        client_key,
        '$dir = "$env:ProgramData\\ssh"; '
        "New-Item -ItemType Directory -Path $env:SystemDrive\\k\\logs -Force | Out-Null; "
        "Write-Output \"$dir\\x\"; Write-Output '$dir'; Test-Path C:\\k\\logs; "
        'Write-Output "tab`there `"quoted`" `$dir"',
    )
    assert code == 0, err
    assert out.splitlines() == [
        "C:\\ProgramData\\ssh\\x",
        "$dir",
        "True",
        'tab\there "quoted" $dir',
    ]


async def test_subexpressions_and_member_access_use_the_objects_of_cmdlets(host, client_key):
    out, err, code = await ps(
        host,
        client_key,
        "$ip = Get-NetIPAddress -AddressFamily IPv4 -InterfaceAlias Ethernet; "
        'Write-Output "$($ip.IPAddress)/$($ip.PrefixLength) on $($env:COMPUTERNAME)"; '
        "(Get-Service -Name sshd).Status; "
        "$name = 'k' + 'ube' + 'let'; $name",
    )
    assert code == 0, err
    assert out.splitlines() == [f"{host.address}/24 on WIN-SIM01", "Running", "kubelet"]


async def test_get_net_ip_address_shows_the_ethernet_and_loopback_addresses(host, client_key):
    out, _, code = await ps(
        host, client_key, "Get-NetIPAddress -AddressFamily IPv4 | ConvertTo-Json -Compress"
    )
    rows = json.loads(out)
    assert code == 0
    assert [(r["InterfaceAlias"], r["IPAddress"], r["PrefixLength"]) for r in rows] == [
        ("Ethernet", host.address, 24),
        ("Loopback Pseudo-Interface 1", "127.0.0.1", 8),
    ]
    assert {r["AddressFamily"] for r in rows} == {"IPv4"}


async def test_get_net_ip_address_for_a_missing_adapter_fails(host, client_key):
    _, err, code = await ps(host, client_key, "Get-NetIPAddress -InterfaceAlias 'Ethernet 9'")
    assert code == 1
    assert err.startswith("Get-NetIPAddress : No matching MSFT_NetIPAddress objects found")


async def test_cmd_expands_percent_variables_before_running_the_program(host, client_key):
    async with await connect(host, client_key) as conn:
        result = await conn.run("icacls %ProgramData%\\ssh")
    assert result.exit_status == 0
    assert str(result.stdout).startswith("C:\\ProgramData\\ssh NT AUTHORITY\\SYSTEM:(OI)(CI)(F)")


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            "New-NetFirewallRule -DisplayName x -Enabled Maybe",
            "Unable to match the identifier name Maybe to a valid enumerator name",
        ),
        (
            "New-NetFirewallRule -DisplayName x -Protocol ICMPv4 -LocalPort 22",
            "The LocalPort parameter can only be used with the TCP or UDP protocol.",
        ),
        (
            "New-NetFirewallRule -Name sshd -DisplayName a; "
            "New-NetFirewallRule -Name sshd -DisplayName b",
            "Cannot create a file when that file already exists.",
        ),
        ("Set-Service -Name nosuch -StartupType Automatic", "Service nosuch was not found"),
        ("Set-Service -Name sshd -StartupType Sometimes", "Unable to match the identifier name"),
        ("Add-WindowsCapability -Name OpenSSH.Server~~~~0.0.1.0", "Parameter set cannot be"),
        ('Write-Output "$env:USERNAME:(R)"', "Variable reference is not valid."),
    ],
)
async def test_what_windows_refuses_the_twin_refuses(host, client_key, script, message):
    _, err, code = await ps(host, client_key, script)
    assert code == 1
    assert message in err


async def test_set_service_changes_the_startup_type_and_status(host, client_key):
    out, err, code = await ps(
        host,
        client_key,
        "Set-Service -Name ssh-agent -StartupType Manual -Status Running; "
        "Get-Service -Name ssh-agent | Select-Object -Property Status,StartType "
        "| ConvertTo-Json -Compress",
    )
    assert code == 0, err
    assert json.loads(out) == {"Status": "Running", "StartType": "Manual"}
