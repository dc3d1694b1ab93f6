"""PowerShell statement builders: exact text, and every one inside the twin's vocabulary."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from windows_lines import script_of

import sim.windows.exec
import sim.windows.pwsh_capability
import sim.windows.pwsh_files
import sim.windows.pwsh_network
import sim.windows.pwsh_pipeline
import sim.windows.pwsh_system  # noqa: F401  (they register the cmdlets)
from activities.windows import powershell as ps
from activities.windows.paths import CNI_CONFIG, HNS_MODULE, K_DIR, KUBELET, WindowsPath
from sim.windows import cmdline, pwsh, pwsh_parser

STATEMENTS: list[tuple[str, str]] = [
    (ps.get_file_hash(KUBELET), r"Get-FileHash -Path 'C:\k\kubelet.exe' -Algorithm SHA256"),
    (ps.test_path(CNI_CONFIG), r"Test-Path -Path 'C:\k\cni\config\cni.conf'"),
    (ps.new_directory(K_DIR), r"New-Item -ItemType Directory -Path 'C:\k' -Force"),
    (ps.remove_item(K_DIR), r"Remove-Item -Path 'C:\k' -Force"),
    (ps.remove_item(K_DIR, recurse=True), r"Remove-Item -Path 'C:\k' -Recurse -Force"),
    (ps.get_content(CNI_CONFIG), r"Get-Content -Path 'C:\k\cni\config\cni.conf' -Raw"),
    (
        ps.set_content(WindowsPath(r"C:\k\note.txt"), "it's done"),
        r"Set-Content -Path 'C:\k\note.txt' -Value 'it''s done'",
    ),
    (ps.get_service("kubelet"), "Get-Service -Name 'kubelet'"),
    (
        ps.new_service(
            "kube-proxy",
            r'C:\k\kube-proxy.exe --windows-service --log-dir="C:\var\log\kube-proxy"',
            "kube-proxy",
            "OpenShift managed kube-proxy",
            depends_on=("kubelet", "hybrid-overlay-node"),
        ),
        "New-Service -Name 'kube-proxy' -BinaryPathName "
        r"""'C:\k\kube-proxy.exe --windows-service --log-dir="C:\var\log\kube-proxy"' """
        "-DisplayName 'kube-proxy' -Description 'OpenShift managed kube-proxy' "
        "-StartupType Automatic -DependsOn 'kubelet','hybrid-overlay-node'",
    ),
    (
        ps.new_service("svc", r"C:\k\svc.exe", "svc", "OpenShift managed svc"),
        r"New-Service -Name 'svc' -BinaryPathName 'C:\k\svc.exe' -DisplayName 'svc' "
        "-Description 'OpenShift managed svc' -StartupType Automatic",
    ),
    (ps.start_service("kubelet"), "Start-Service -Name 'kubelet'"),
    (ps.stop_service("kubelet"), "Stop-Service -Name 'kubelet' -Force"),
    (ps.restart_service("kubelet"), "Restart-Service -Name 'kubelet' -Force"),
    (ps.get_os(), "Get-CimInstance -ClassName Win32_OperatingSystem"),
    (ps.hostname(), "hostname"),
    (ps.rename_computer("winworker-1"), "Rename-Computer -NewName 'winworker-1' -Force"),
    (ps.restart_computer(), "Restart-Computer -Force"),
    (ps.import_hns(), r"Import-Module 'C:\k\hns.psm1'"),
    (ps.get_hns_networks(), "Get-HnsNetwork"),
    (ps.get_hns_endpoints(), "Get-HnsEndpoint"),
    (
        ps.new_hns_endpoint("5c1f-net", "VIPEndpoint"),
        "New-HnsEndpoint -NetworkId '5c1f-net' -Name 'VIPEndpoint'",
    ),
    (
        ps.remove_hns_network("OVNKubernetesHybridOverlayNetwork"),
        "Get-HnsNetwork | Where-Object -Property Name -EQ -Value "
        "'OVNKubernetesHybridOverlayNetwork' | Remove-HnsNetwork",
    ),
    (
        ps.remove_hns_endpoint("VIPEndpoint"),
        "Get-HnsEndpoint | Where-Object -Property Name -EQ -Value 'VIPEndpoint' "
        "| Remove-HnsEndpoint",
    ),
    (
        ps.to_json(ps.get_service("kubelet")),
        "Get-Service -Name 'kubelet' | ConvertTo-Json -Compress -Depth 5",
    ),
    (
        ps.add_windows_capability(ps.OPENSSH_SERVER),
        "Add-WindowsCapability -Online -Name 'OpenSSH.Server~~~~0.0.1.0'",
    ),
    (
        ps.set_service_startup_type(ps.SSHD, "Automatic"),
        "Set-Service -Name 'sshd' -StartupType Automatic",
    ),
    (
        ps.new_firewall_rule("winfleet-kubelet", 10250),
        "New-NetFirewallRule -DisplayName 'winfleet-kubelet' -Direction Inbound -Action Allow "
        "-Protocol TCP -LocalPort 10250",
    ),
]


@pytest.mark.parametrize(("built", "expected"), STATEMENTS, ids=lambda v: str(v)[:40])
def test_each_statement_builder_emits_exactly_this_text(built: str, expected: str) -> None:
    assert built == expected


def test_powershell_sends_the_statements_encoded_in_one_command_that_stops_on_error() -> None:
    cmd = ps.powershell(ps.test_path(KUBELET), ps.get_service("kubelet"), display="look")
    argv = cmdline.split(cmd.line)
    assert argv[:5] == [
        "powershell.exe",
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-EncodedCommand",
    ]
    assert len(argv) == 6
    assert base64.b64decode(argv[5]).decode("utf-16-le") == (
        "$ErrorActionPreference = 'Stop'; Test-Path -Path 'C:\\k\\kubelet.exe'; "
        "Get-Service -Name 'kubelet'"
    )
    assert cmd.display == "look"
    assert cmd.success_line is None


@pytest.mark.parametrize("value", ['say "hi"', "100%PATH%", "a & b | c > d", "line\nbreak", "^"])
def test_nothing_cmd_exe_would_act_on_appears_in_the_line(value: str) -> None:
    cmd = ps.powershell(ps.set_content(WindowsPath(r"C:\k\q.txt"), value), display="q")
    assert set(cmd.line) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=.- "
    )
    assert script_of(cmd.line).endswith(ps.ps_quote(value))
    assert value not in cmd.display


def test_a_script_longer_than_cmd_exe_takes_is_refused_when_built() -> None:
    long_value = "x" * 4000  # UTF-16 and base64 make the line about 2.7 times the script
    with pytest.raises(ValueError, match="8191"):
        ps.powershell(ps.set_content(WindowsPath(r"C:\k\big.txt"), long_value), display="big")


def _cmdlet_params(command: pwsh_parser.Command) -> set[str]:
    return {a.name.lower() for a in command.args if isinstance(a, pwsh_parser.Param)}


@pytest.mark.parametrize(("built", "_expected"), STATEMENTS, ids=lambda v: str(v)[:40])
def test_each_statement_uses_only_cmdlets_and_parameters_the_twin_knows(
    built: str, _expected: str
) -> None:
    script = "; ".join([ps.STOP_ON_ERROR, ps.import_hns(), built])
    assert script_of(ps.powershell(ps.import_hns(), built, display="x").line) == script
    for statement in pwsh_parser.parse(script):
        if isinstance(statement, pwsh_parser.Assignment):
            continue
        assert isinstance(statement, list)
        for command in statement:
            assert command.name is not None
            spec = pwsh.CMDLETS.get(command.name.lower())
            assert spec is not None, f"{command.name} is not in the twin's vocabulary"
            known = {p.lower() for p in (*spec.values, *spec.switches)}
            assert _cmdlet_params(command) <= known, command.name


BUILDERS_TAKING_A_NAME: list[Callable[[str], str]] = [
    ps.get_service,
    ps.start_service,
    ps.stop_service,
    ps.restart_service,
    ps.rename_computer,
    ps.remove_hns_network,
    ps.remove_hns_endpoint,
]


@pytest.mark.parametrize("builder", BUILDERS_TAKING_A_NAME, ids=lambda b: b.__name__)
def test_a_hostile_name_stays_one_quoted_argument(builder: Callable[[str], str]) -> None:
    hostile = "x'; Remove-Item -Path 'C:\\' -Recurse; '"
    statements = pwsh_parser.parse(builder(hostile))
    assert len(statements) == 1
    values = [a for cmd in statements[0] for a in cmd.args if not isinstance(a, pwsh_parser.Param)]
    assert hostile in values


def test_the_hns_module_path_is_the_payload_copy() -> None:
    assert ps.import_hns() == f"Import-Module '{HNS_MODULE}'"


def test_a_script_with_a_percent_sign_is_sent_encoded_so_cmd_cannot_expand_it() -> None:
    cmd = ps.powershell(ps.set_content(WindowsPath(r"C:\k\p.txt"), "100%PATH%"), display="p")
    argv = cmdline.split(cmd.line)
    assert argv[:5] == [
        "powershell.exe",
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-EncodedCommand",
    ]
    assert "%" not in cmd.line
    assert base64.b64decode(argv[5]).decode("utf-16-le") == (
        "$ErrorActionPreference = 'Stop'; Set-Content -Path 'C:\\k\\p.txt' -Value '100%PATH%'"
    )


def test_grant_full_control_only_names_the_principals_by_sid_for_any_display_language() -> None:
    built = ps.grant_full_control_only(
        WindowsPath(r"C:\ProgramData\ssh\administrators_authorized_keys"),
        ps.ADMINISTRATORS_SID,
        ps.SYSTEM_SID,
    )
    assert built == (
        r"icacls.exe 'C:\ProgramData\ssh\administrators_authorized_keys' /inheritance:r "
        "/grant '*S-1-5-32-544:F' /grant '*S-1-5-18:F'"
    )
    (statement,) = pwsh_parser.parse(built)
    assert statement[0].name == "icacls.exe"
    assert "icacls" in pwsh.NATIVE  # a native program the twin runs, not a cmdlet


@pytest.mark.parametrize("bad", [(), ("Boot",)])
def test_builders_refuse_what_windows_would_not_take(bad: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        if bad:
            ps.set_service_startup_type("sshd", bad[0])
        else:
            ps.grant_full_control_only(WindowsPath(r"C:\k\x"))
