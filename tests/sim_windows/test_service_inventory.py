"""What the drift probe asks a simulated host: Win32_Service through CIM, several file hashes."""

from __future__ import annotations

import hashlib
import json

from sim.windows.host import SimulatedWindowsHost
from tests.sim_windows.conftest import install_payload


def ps(script: str) -> str:
    return f'powershell.exe -NoLogo -NoProfile -NonInteractive -Command "{script}"'


async def services(host: SimulatedWindowsHost, wql: str) -> tuple[object, str, int]:
    out, err, code = await host.run(
        ps(
            f"Get-CimInstance -ClassName Win32_Service -Filter '{wql}' "
            "| Select-Object -Property Name,PathName,StartMode,State | ConvertTo-Json -Compress"
        )
    )
    return (json.loads(out) if out.strip() else None), err, code


async def test_win32_service_shows_each_services_command_line_start_mode_and_state(host, payload):
    install_payload(host, payload)
    line = r"C:\k\kube-proxy.exe --v=2"
    _, err, code = await host.run(f'sc.exe create kube-proxy binPath= "{line}" start= auto')
    assert code == 0, err
    _, err, code = await host.run(ps("Set-Service -Name kube-proxy -StartupType Disabled"))
    assert code == 0, err

    found, err, code = await services(host, "Name=''kube-proxy'' OR Name=''sshd''")

    assert code == 0, err
    by_name = {s["Name"]: s for s in found}  # type: ignore[union-attr]
    assert by_name["kube-proxy"] == {
        "Name": "kube-proxy",
        "PathName": line,
        "StartMode": "Disabled",  # Win32_Service says Auto/Manual/Disabled, not Automatic
        "State": "Stopped",
    }
    assert by_name["sshd"]["StartMode"] == "Auto" and by_name["sshd"]["State"] == "Running"


async def test_a_filter_naming_no_service_returns_nothing_and_other_wql_is_refused(host):
    found, err, code = await services(host, "Name=''nope''")
    assert (found, code) == (None, 0), err
    _, err, code = await services(host, "State=''Running''")
    assert code == 1 and "Invalid query" in err


async def test_get_file_hash_takes_several_paths_and_stops_at_a_missing_one(host, payload):
    install_payload(host, payload)
    out, err, code = await host.run(
        ps(
            r"Get-FileHash -Path 'C:\k\kubelet.exe','C:\k\wmcb.exe' -Algorithm SHA256 "
            "| ConvertTo-Json -Compress"
        )
    )
    assert code == 0, err
    hashes = {h["Path"]: h["Hash"] for h in json.loads(out)}
    for name in ("kubelet.exe", "wmcb.exe"):
        assert (
            hashes["C:\\k\\" + name]
            == hashlib.sha256((payload / name).read_bytes()).hexdigest().upper()
        )
    _, err, code = await host.run(
        ps(r"Get-FileHash -Path 'C:\k\kubelet.exe','C:\k\nope.exe' -Algorithm SHA256")
    )
    assert code == 1 and "Cannot find path" in err
