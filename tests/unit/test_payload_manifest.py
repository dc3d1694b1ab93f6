"""The payload's `sha256sum` manifest: parsing, and checking local files against it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from activities.errors import PayloadInvalid
from activities.payload import (
    ManifestEntry,
    PayloadFile,
    parse_manifest,
    remote_directories,
    verified_payload,
)
from activities.windows.paths import WindowsPath

A = "a" * 64
B = "B" * 64


def test_sha256sum_text_and_binary_lines_both_parse() -> None:
    text = f"{A}  wmcb.exe\n{B} *cni/win-overlay.exe\r\n\n"
    assert parse_manifest(text) == (
        ManifestEntry("wmcb.exe", A, WindowsPath(r"C:\k\wmcb.exe")),
        ManifestEntry("cni/win-overlay.exe", B.lower(), WindowsPath(r"C:\k\cni\win-overlay.exe")),
    )


def test_a_file_name_with_spaces_is_kept_whole() -> None:
    (entry,) = parse_manifest(f"{A}  docs/read me.txt\n")
    assert entry.remote == r"C:\k\docs\read me.txt"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "empty"),
        (f"{A} wmcb.exe\n", "line 1"),
        ("abc  wmcb.exe\n", "line 1"),
        (f"{A}  wmcb.exe\n{A}  ../escape.exe\n", r"line 2.*inside C:\\k"),
        (f"{A}  wmcb.exe\n{B}  WMCB.exe\n", "twice"),
    ],
)
def test_a_malformed_manifest_is_refused_with_the_reason(text: str, complaint: str) -> None:
    with pytest.raises(PayloadInvalid, match=complaint):
        parse_manifest(text)


def _payload(tmp_path: Path, files: dict[str, bytes]) -> Path:
    lines = []
    for rel, data in files.items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {rel}")
    (tmp_path / "sha256sum").write_text("\n".join(lines) + "\n")
    return tmp_path


async def test_a_payload_that_matches_its_manifest_is_listed_with_sizes(tmp_path: Path) -> None:
    root = _payload(tmp_path, {"wmcb.exe": b"wmcb", "cni/host-local.exe": b"hl" * 10})
    files = await verified_payload(root)
    assert [(f.entry.path, f.size, f.local) for f in files] == [
        ("wmcb.exe", 4, root / "wmcb.exe"),
        ("cni/host-local.exe", 20, root / "cni" / "host-local.exe"),
    ]


async def test_a_local_file_that_differs_from_the_manifest_is_refused(tmp_path: Path) -> None:
    root = _payload(tmp_path, {"wmcb.exe": b"wmcb"})
    (root / "wmcb.exe").write_bytes(b"tampered")
    with pytest.raises(PayloadInvalid, match=r"wmcb.exe has SHA256 .* but .* says"):
        await verified_payload(root)


async def test_a_listed_file_that_is_missing_is_refused(tmp_path: Path) -> None:
    root = _payload(tmp_path, {"wmcb.exe": b"wmcb"})
    (root / "wmcb.exe").unlink()
    with pytest.raises(PayloadInvalid, match="missing"):
        await verified_payload(root)


async def test_a_payload_directory_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PayloadInvalid, match="no sha256sum manifest"):
        await verified_payload(tmp_path)


def test_remote_directories_cover_c_k_cni_and_every_parent_shallowest_first() -> None:
    files = tuple(
        PayloadFile(
            ManifestEntry(
                p,
                A,
                WindowsPath(r),
            ),
            Path(p),
            1,
        )
        for p, r in [
            ("wmcb.exe", r"C:\k\wmcb.exe"),
            ("cni/config/cni.conf", r"C:\k\cni\config\cni.conf"),
        ]
    )
    assert remote_directories(files) == (r"C:\k", r"C:\k\cni", r"C:\k\cni\config")
