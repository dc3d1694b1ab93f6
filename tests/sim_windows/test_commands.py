"""The Windows vocabulary of a simulated host: PowerShell, sc.exe, WMCB, tar, cmd.exe errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import tarfile

import pytest

from sim.payload import build_sample_payload
from tests.sim_windows.conftest import install_payload


def ps(script: str) -> str:
    return f'powershell.exe -NoLogo -NoProfile -NonInteractive -Command "{script}"'


async def test_get_file_hash_matches_sha256_of_the_uploaded_file(host, payload):
    install_payload(host, payload)
    out, err, code = await host.run(
        ps(
            r"Get-FileHash -Path 'C:\k\kubelet.exe' -Algorithm SHA256 "
            "| ConvertTo-Json -Compress"
        )
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["Hash"] == hashlib.sha256((payload / "kubelet.exe").read_bytes()).hexdigest().upper()
    assert doc["Path"] == r"C:\k\kubelet.exe"


async def test_get_file_hash_of_a_missing_file_fails_like_windows(host):
    _out, err, code = await host.run(ps(r"Get-FileHash -Path C:\k\nope.exe -Algorithm SHA256"))
    assert code == 1
    assert err.startswith("Get-FileHash : Cannot find path")


@pytest.mark.parametrize(("path", "expected"), [(r"C:\Windows", "True"), (r"C:\k", "False")])
async def test_test_path_answers_true_or_false(host, path, expected):
    out, _, code = await host.run(ps(f"Test-Path -Path '{path}'"))
    assert (out.strip(), code) == (expected, 0)


async def test_files_can_be_created_read_and_removed(host):
    script = (
        r"New-Item -ItemType Directory -Path C:\k\cni\config -Force | Out-Null; "
        r"Set-Content -Path C:\k\note.txt -Value 'it''s done'; "
        r"Add-Content -Path C:\k\note.txt -Value second; "
        r"Get-Content -Path C:\k\note.txt -Raw"
    )
    out, err, code = await host.run(ps(script))
    assert code == 0, err
    assert out == "it's done\r\nsecond\r\n\r\n"
    _, err, code = await host.run(ps(r"Remove-Item -Path C:\k"))
    assert code == 1 and "has children" in err
    _, err, code = await host.run(ps(r"Remove-Item -Path C:\k -Recurse -Force; Test-Path C:\k"))
    assert code == 0 and not (host.root / "C" / "k").exists()


async def test_an_unknown_cmdlet_fails_with_the_windows_message(host):
    _, err, code = await host.run(ps("Get-Frobnicator -Name x"))
    assert code == 1
    assert "The term 'Get-Frobnicator' is not recognized as the name of a cmdlet" in err


async def test_an_unknown_program_fails_like_cmd_exe(host):
    _out, err, code = await host.run("curl.exe http://example")
    assert code == 1
    assert err.startswith("'curl.exe' is not recognized as an internal or external command")


async def test_unknown_parameters_are_rejected(host):
    _, err, code = await host.run(ps(r"Test-Path -LiteralPathX C:\k"))
    assert code == 1 and "A parameter cannot be found that matches parameter name" in err


async def test_service_lifecycle_with_powershell(host, payload):
    install_payload(host, payload)
    create = ps(
        r"New-Service -Name 'windows_exporter' -BinaryPathName "
        r"'C:\k\windows_exporter.exe --collectors.enabled cpu' -DisplayName 'windows_exporter' "
        r"-Description 'OpenShift managed windows_exporter' -StartupType Automatic | Out-Null"
    )
    _, err, code = await host.run(create)
    assert code == 0, err
    _, err, code = await host.run(create)
    assert code == 1 and "already exists" in err
    out, err, code = await host.run(
        ps(
            "Start-Service -Name windows_exporter; "
            "Get-Service -Name windows_exporter | ConvertTo-Json"
        )
    )
    assert code == 0, err
    assert json.loads(out) == {
        "Name": "windows_exporter",
        "DisplayName": "windows_exporter",
        "Status": "Running",
        "StartType": "Automatic",
    }
    out, _, _ = await host.run(
        ps(
            "Stop-Service -Name windows_exporter -Force; "
            "Get-Service -Name windows_exporter | "
            "Select-Object -ExpandProperty Status"
        )
    )
    assert out.strip() == "Stopped"
    _, err, code = await host.run(ps("Get-Service -Name nosuch"))
    assert code == 1 and "Cannot find any service with service name 'nosuch'." in err


async def test_a_service_whose_dependency_cannot_start_fails_with_1068(host, payload):
    install_payload(host, payload)
    (host.root / "C" / "k" / "wmcb.exe").unlink()
    await host.run(r'sc.exe create dep binPath= "C:\k\wmcb.exe run" start= auto')
    await host.run(
        r'sc.exe create top binPath= "C:\k\windows_exporter.exe" start= auto depend= dep'
    )
    out, _, code = await host.run("sc.exe start top")
    assert code == 1068
    assert "The dependency service or group failed to start." in out
    out, _, code = await host.run("sc.exe start dep")
    assert code == 2 and "The system cannot find the file specified." in out
    _, err, code = await host.run(ps("Start-Service -Name top"))
    assert code == 1 and "cannot be started" in err


async def test_sc_exe_create_query_failure_delete(host, payload):
    install_payload(host, payload)
    out, _, code = await host.run(
        r"sc.exe create windows_exporter "
        r'binPath= "C:\k\windows_exporter.exe --telemetry.addr=:9182" '
        r'start= auto DisplayName= "windows exporter"'
    )
    assert (out.strip(), code) == ("[SC] CreateService SUCCESS", 0)
    assert (await host.run('sc.exe description windows_exporter "OpenShift managed"'))[2] == 0
    out, _, code = await host.run(
        "sc.exe failure windows_exporter reset= 86400 actions= restart/10000/restart/10000"
    )
    assert code == 0, out
    out, _, code = await host.run("sc.exe query windows_exporter")
    assert code == 0 and "STATE              : 1  STOPPED" in out
    await host.run("sc.exe start windows_exporter")
    out, _, _ = await host.run("sc.exe query windows_exporter")
    assert "4  RUNNING" in out
    await host.run("sc.exe stop windows_exporter")
    out, _, code = await host.run("sc.exe delete windows_exporter")
    assert (out.strip(), code) == ("[SC] DeleteService SUCCESS", 0)
    out, _, code = await host.run("sc.exe query windows_exporter")
    assert code == 1060 and "does not exist as an installed service" in out


async def test_sc_exe_requires_the_space_after_the_equals_sign(host, payload):
    install_payload(host, payload)
    out, _, code = await host.run(r'sc.exe create kubelet binPath="C:\k\kubelet.exe" start= auto')
    assert code == 1639
    assert "A space is required between the equal sign and the value." in out
    assert host.scm.find("kubelet") is None


async def test_wmcb_initialize_kubelet_refuses_without_an_ignition_file(host, payload):
    install_payload(host, payload)
    out, err, code = await host.run(
        r"C:\k\wmcb.exe initialize-kubelet --ignition-file "
        r"C:\k\worker.ign --kubelet-path C:\k\kubelet.exe"
    )
    assert code == 1 and "Bootstrapping completed successfully" not in out
    assert "worker.ign" in err
    _, err, code = await host.run(
        r"C:\k\wmcb.exe initialize-kubelet --kubelet-path C:\k\kubelet.exe"
    )
    assert code == 1 and 'required flag(s) "ignition-file" not set' in err


async def test_wmcb_is_not_there_until_the_payload_is_copied(host):
    _, err, code = await host.run(r"C:\k\wmcb.exe uninstall-kubelet")
    assert code == 1 and "is not recognized as an internal or external command" in err


async def test_hns_cmdlets_need_import_module_in_the_same_script(host, payload):
    install_payload(host, payload)
    host.hns.create_network(
        "OVNKubernetesHybridOverlayNetwork", "Overlay", "10.132.0.0/24", "10.132.0.1"
    )
    _, err, code = await host.run(ps("Get-HnsNetwork"))
    assert code == 1 and "The term 'Get-HnsNetwork' is not recognized" in err
    out, err, code = await host.run(
        ps(
            r"Import-Module C:\k\hns.psm1; Get-HnsNetwork | Where-Object -Property Name -EQ "
            r"-Value OVNKubernetesHybridOverlayNetwork | ConvertTo-Json -Depth 5"
        )
    )
    assert code == 0, err
    net = json.loads(out)
    assert net["Subnets"] == [{"AddressPrefix": "10.132.0.0/24", "GatewayAddress": "10.132.0.1"}]
    out, err, code = await host.run(
        ps(
            rf"Import-Module C:\k\hns.psm1; New-HnsEndpoint -NetworkId {net['Id']} "
            "-Name VIPEndpoint "
            "| ConvertTo-Json"
        )
    )
    assert code == 0, err
    assert json.loads(out)["IPAddress"] == "10.132.0.2"


async def test_a_reboot_loses_the_non_persistent_network_and_restarts_automatic_services(
    host, payload
):
    install_payload(host, payload)
    host.hns.create_network(
        "BaseOVNKubernetesHybridOverlayNetwork",
        "Overlay",
        "100.64.0.0/16",
        "100.64.0.1",
        persistent=True,
    )
    host.hns.create_network(
        "OVNKubernetesHybridOverlayNetwork", "Overlay", "10.132.0.0/24", "10.132.0.1"
    )
    await host.run(
        r'sc.exe create windows_exporter binPath= "C:\k\windows_exporter.exe" start= auto'
    )
    await host.run("sc.exe start windows_exporter")
    await host.reboot()
    await host.wait_up()
    assert set(host.hns_networks) == {"BaseOVNKubernetesHybridOverlayNetwork"}
    assert host.services["windows_exporter"] == "Running"


async def test_tar_extracts_an_archive_and_the_os_build_is_reported(host):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"payload"
        info = tarfile.TarInfo("bin/thing.exe")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (host.root / "C" / "k").mkdir()
    (host.root / "C" / "k" / "p.tar.gz").write_bytes(buf.getvalue())
    _, err, code = await host.run(r"tar -xzf C:\k\p.tar.gz -C C:\k")
    assert code == 0, err
    assert (host.root / "C" / "k" / "bin" / "thing.exe").read_bytes() == b"payload"
    host.faults.os_build = "10.0.20348.169"
    out, _, _ = await host.run(
        ps("Get-CimInstance -ClassName Win32_OperatingSystem | ConvertTo-Json")
    )
    assert json.loads(out)["BuildNumber"] == "20348"


async def test_injected_command_failures_hit_only_matching_commands(host):
    host.faults.fail_command("Get-Service", times=1, exit_code=5, stderr="Access is denied.")
    assert (await host.run("hostname"))[2] == 0
    _, err, code = await host.run(ps("Get-Service -Name x"))
    assert (code, err.strip()) == (5, "Access is denied.")
    _, _, code = await host.run(ps("Get-Service -Name x"))
    assert code == 1  # the real error now


async def test_encoded_commands_and_payload_manifest(host, tmp_path):
    script = "Write-Output 'hi'"
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    out, _, code = await host.run(f"powershell.exe -NoProfile -EncodedCommand {encoded}")
    assert (out, code) == ("hi\r\n", 0)
    hashes = build_sample_payload(tmp_path / "p")
    manifest = (tmp_path / "p" / "sha256sum").read_text().splitlines()
    assert f"{hashes['kubelet.exe']}  kubelet.exe" in manifest
    assert (tmp_path / "p" / "kubelet.exe").stat().st_size > 1_000_000


async def test_a_crashing_service_is_restarted_by_its_failure_actions(host, payload, monkeypatch):
    from sim.windows import overlay

    monkeypatch.setattr(overlay, "KUBE_PROXY_STARTUP_SECONDS", 0.2)
    install_payload(host, payload)
    (host.root / "C" / "k" / "kubeconfig").write_text("apiVersion: v1\n")
    net = host.hns.create_network(
        "OVNKubernetesHybridOverlayNetwork", "Overlay", "10.132.0.0/24", "10.132.0.1"
    )
    await host.run(
        r'sc.exe create kube-proxy binPath= "C:\k\kube-proxy.exe --kubeconfig=C:\k\kubeconfig '
        r'--network-name=OVNKubernetesHybridOverlayNetwork --source-vip=10.132.0.2" start= auto'
    )
    await host.run("sc.exe failure kube-proxy reset= 0 actions= restart/100")
    await host.run("sc.exe start kube-proxy")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while host.services["kube-proxy"] == "Running":  # no VIP endpoint yet: it crashes
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    host.hns.create_endpoint(net.id, "VIPEndpoint")  # gets 10.132.0.2
    deadline = loop.time() + 5
    while host.services["kube-proxy"] != "Running":
        assert loop.time() < deadline, "the SCM never restarted kube-proxy"
        await asyncio.sleep(0.05)


async def test_copy_item_copies_a_file_and_fails_like_windows_for_a_missing_one(host):
    script = (
        r"Set-Content -Path C:\Windows\a.txt -Value one; "
        r"Copy-Item -Path C:\Windows\a.txt -Destination C:\Windows\b.txt -Force; "
        r"Get-Content -Path C:\Windows\b.txt"
    )
    out, err, code = await host.run(ps(script))
    assert (out, code) == ("one\r\n", 0), err
    _, err, code = await host.run(ps(r"Copy-Item -Path C:\nope.txt -Destination C:\b.txt"))
    assert code == 1 and err.startswith("Copy-Item : Cannot find path 'C:\\nope.txt'")


async def test_powershell_file_runs_only_an_existing_ps1_script(host):
    (host.root / "C" / "Windows" / "s.ps1").write_text("Set-Content -Path C:\\Windows\\r.txt 1\n")
    (host.root / "C" / "Windows" / "s.bin").write_text("hostname\n")

    _, err, code = await host.run(
        r"powershell.exe -ExecutionPolicy Bypass -NoProfile -File C:\Windows\s.ps1"
    )
    assert code == 0, err
    assert (host.root / "C" / "Windows" / "r.txt").read_bytes() == b"1\r\n"
    _, err, code = await host.run(r"powershell.exe -File C:\Windows\s.bin")
    assert code == 1 and "does not have a '.ps1' extension" in err
    _, err, code = await host.run(r"powershell.exe -File C:\Windows\none.ps1")
    assert code == 1 and "does not exist" in err
    _, err, code = await host.run(r"powershell.exe -ExecutionPolicy RemoteSigned -Command hostname")
    assert code == 1


async def test_a_script_run_from_a_script_reports_its_exit_code_in_lastexitcode(host):
    (host.root / "C" / "Windows" / "fails.ps1").write_text("Get-Service -Name nope\n")
    child = r"powershell.exe -ExecutionPolicy Unrestricted -File 'C:\Windows\fails.ps1'"

    # a failing native program does not stop the script, as in Windows PowerShell 5.1 ...
    out, err, code = await host.run(ps(f"{child}; hostname"))
    assert (out.strip(), code) == ("WIN-SIM01", 0)
    assert "Cannot find any service" in err
    # ... but fails -Command when it is the last statement, and `exit $LASTEXITCODE` keeps it
    assert (await host.run(ps(child)))[2] == 1
    assert (await host.run(ps(f"{child}; exit $LASTEXITCODE")))[2] == 1
