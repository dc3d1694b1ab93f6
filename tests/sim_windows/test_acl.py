"""NTFS ACLs on a simulated host as icacls shows and changes them (from cmd and PowerShell)."""

from __future__ import annotations

import pytest

from tests.sim_windows.conftest import connect

NEW_FOLDER_UNDER_C = [
    "BUILTIN\\Administrators:(I)(OI)(CI)(F)",
    "NT AUTHORITY\\SYSTEM:(I)(OI)(CI)(F)",
    "BUILTIN\\Users:(I)(OI)(CI)(RX)",
    "NT AUTHORITY\\Authenticated Users:(I)(M)",
    "NT AUTHORITY\\Authenticated Users:(I)(OI)(CI)(IO)(M)",
]


async def run(host, client_key, line: str) -> tuple[str, str, int]:
    async with await connect(host, client_key) as conn:
        result = await conn.run(line)
    return str(result.stdout), str(result.stderr), int(result.exit_status or 0)


def aces(listing: str, path: str) -> list[str]:
    """The ACE lines of `icacls <path>` output (principal:flags(rights))."""
    lines = listing.split("\r\n")
    assert lines[0].startswith(path + " ")
    body = [lines[0][len(path) + 1 :]]
    for line in lines[1:]:
        if not line.strip():
            break
        assert line.startswith(" " * (len(path) + 1))
        body.append(line.strip())
    return body


async def mkdir(host, client_key, path: str) -> None:
    _, err, code = await run(
        host,
        client_key,
        f'powershell.exe -NoProfile -Command "New-Item -ItemType Directory -Path {path} -Force"',
    )
    assert code == 0, err


async def touch(host, client_key, path: str) -> None:
    _, err, code = await run(
        host, client_key, f'powershell.exe -NoProfile -Command "Set-Content -Path {path} -Value x"'
    )
    assert code == 0, err


async def test_the_drive_root_has_the_windows_server_acl(host, client_key):
    out, _, code = await run(host, client_key, "icacls C:\\")
    assert code == 0
    assert aces(out, "C:\\") == [
        "BUILTIN\\Administrators:(OI)(CI)(F)",
        "NT AUTHORITY\\SYSTEM:(OI)(CI)(F)",
        "BUILTIN\\Users:(OI)(CI)(RX)",
        "NT AUTHORITY\\Authenticated Users:(OI)(CI)(IO)(M)",
        "NT AUTHORITY\\Authenticated Users:(AD)",
        "Mandatory Label\\High Mandatory Level:(OI)(NP)(IO)(NW)",
    ]
    assert out.endswith("\r\n\r\nSuccessfully processed 1 files; Failed processing 0 files\r\n")


async def test_folders_created_under_c_inherit_its_acl_and_files_in_them_too(host, client_key):
    await mkdir(host, client_key, "C:\\k")
    await mkdir(host, client_key, "C:\\var\\log")
    await touch(host, client_key, "C:\\k\\kubelet.conf")

    for path in ("C:\\k", "C:\\var"):
        out, _, _ = await run(host, client_key, f"icacls {path}")
        assert aces(out, path) == NEW_FOLDER_UNDER_C
    out, _, _ = await run(host, client_key, "icacls C:\\var\\log")
    assert aces(out, "C:\\var\\log") == NEW_FOLDER_UNDER_C
    out, _, _ = await run(host, client_key, "icacls C:\\k\\kubelet.conf")
    assert aces(out, "C:\\k\\kubelet.conf") == [
        "BUILTIN\\Administrators:(I)(F)",
        "NT AUTHORITY\\SYSTEM:(I)(F)",
        "BUILTIN\\Users:(I)(RX)",
        "NT AUTHORITY\\Authenticated Users:(I)(M)",
    ]


async def test_the_sshd_folder_is_created_with_its_own_protected_acl(host, client_key):
    out, _, _ = await run(host, client_key, "icacls C:\\ProgramData\\ssh")
    assert aces(out, "C:\\ProgramData\\ssh") == [
        "NT AUTHORITY\\SYSTEM:(OI)(CI)(F)",
        "BUILTIN\\Administrators:(OI)(CI)(F)",
        "NT AUTHORITY\\Authenticated Users:(OI)(CI)(RX)",
    ]


async def test_removing_inheritance_and_granting_leaves_exactly_the_grants(host, client_key):
    await touch(host, client_key, "C:\\ProgramData\\ssh\\administrators_authorized_keys")
    key_file = "C:\\ProgramData\\ssh\\administrators_authorized_keys"

    out, _, code = await run(
        host,
        client_key,
        f'icacls.exe "{key_file}" /inheritance:r /grant "Administrators:F" /grant "SYSTEM:F"',
    )
    assert code == 0
    assert out == (
        f"processed file: {key_file}\r\n"
        "Successfully processed 1 files; Failed processing 0 files\r\n"
    )
    out, _, _ = await run(host, client_key, f"icacls {key_file}")
    assert aces(out, key_file) == ["BUILTIN\\Administrators:(F)", "NT AUTHORITY\\SYSTEM:(F)"]


async def test_grant_r_replaces_remove_drops_and_inheritance_d_copies(host, client_key):
    await mkdir(host, client_key, "C:\\data")
    steps = [
        "icacls C:\\data /inheritance:d",
        "icacls C:\\data /remove:g *S-1-5-11",
        'icacls C:\\data /grant "Users:(OI)(CI)(F)"',
        "icacls C:\\data /grant:r Users:(OI)(CI)R",
        "icacls C:\\data /deny Everyone:(WD,AD)",
    ]
    for step in steps:
        _, err, code = await run(host, client_key, step)
        assert code == 0, (step, err)
    out, _, _ = await run(host, client_key, "icacls C:\\data")
    assert aces(out, "C:\\data") == [
        "Everyone:(DENY)(WD,AD)",
        "BUILTIN\\Administrators:(OI)(CI)(F)",
        "NT AUTHORITY\\SYSTEM:(OI)(CI)(F)",
        "BUILTIN\\Users:(OI)(CI)(R)",
    ]


async def test_an_inheritable_grant_reaches_files_created_later(host, client_key):
    await mkdir(host, client_key, "C:\\shared")
    await run(host, client_key, "icacls C:\\shared /inheritance:r /grant Administrators:(OI)(CI)F")
    await touch(host, client_key, "C:\\shared\\a.txt")

    out, _, _ = await run(host, client_key, "icacls C:\\shared\\a.txt")
    assert aces(out, "C:\\shared\\a.txt") == ["BUILTIN\\Administrators:(I)(F)"]


async def test_a_deleted_and_recreated_file_gets_a_fresh_inherited_acl(host, client_key):
    await touch(host, client_key, "C:\\f.txt")
    await run(host, client_key, "icacls C:\\f.txt /inheritance:r /grant SYSTEM:F")
    await run(host, client_key, 'powershell.exe -Command "Remove-Item -Path C:\\f.txt"')
    await touch(host, client_key, "C:\\f.txt")

    out, _, _ = await run(host, client_key, "icacls C:\\f.txt")
    assert "BUILTIN\\Administrators:(I)(F)" in aces(out, "C:\\f.txt")


@pytest.mark.parametrize(
    ("args", "stdout", "stderr", "code"),
    [
        (
            "C:\\nothere /grant Users:F",
            "Successfully processed 0 files; Failed processing 1 files\r\n",
            "C:\\nothere: The system cannot find the file specified.\r\n",
            2,
        ),
        (
            "C:\\ProgramData\\ssh /grant Nobody:F",
            "Successfully processed 0 files; Failed processing 1 files\r\n",
            "C:\\ProgramData\\ssh: No mapping between account names and security IDs was done.\r\n",
            1332,
        ),
        ("C:\\ProgramData\\ssh /grant Users:Q", 'Invalid parameter "Users:Q"\r\n', "", 87),
        ("C:\\ProgramData\\ssh /inheritance:x", 'Invalid parameter "/inheritance:x"\r\n', "", 87),
    ],
)
async def test_icacls_errors_look_like_windows(host, args, stdout, stderr, code):
    # through host.run: asyncssh's server cuts exit codes to 8 bits, Windows sshd does not
    assert await host.run(f"icacls {args}") == (stdout, stderr, code)


async def test_icacls_from_powershell_sets_lastexitcode_without_stopping_the_script(
    host, client_key
):
    out, _, code = await run(
        host,
        client_key,
        'powershell.exe -NoProfile -Command "icacls C:\\nothere /grant Users:F; '
        'Write-Output \\"exit $LASTEXITCODE\\""',
    )
    assert code == 0
    assert out.splitlines()[-1] == "exit 2"


async def test_acls_survive_a_reboot(host, client_key):
    await touch(host, client_key, "C:\\keep.txt")
    await run(host, client_key, "icacls C:\\keep.txt /inheritance:r /grant SYSTEM:F")
    await host.reboot()
    await host.wait_up()

    out, _, _ = await run(host, client_key, "icacls C:\\keep.txt")
    assert aces(out, "C:\\keep.txt") == ["NT AUTHORITY\\SYSTEM:(F)"]
