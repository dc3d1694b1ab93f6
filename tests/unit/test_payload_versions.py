"""Payload versions: the worker's settings and the twin's sample payloads (one directory each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.config import Settings
from activities.errors import InvalidRequest
from activities.payload import parse_manifest
from sim.payload import PAYLOAD_VERSIONS, build_sample_payloads


@pytest.mark.parametrize(
    ("env", "versions", "default", "dir_of_default"),
    [
        (
            {"WINFLEET_PAYLOAD_DIR": "/p", "WINFLEET_PAYLOAD_VERSIONS": "1.0.0, 1.1.0"},
            ("1.0.0", "1.1.0"),
            "1.1.0",
            "/p/1.1.0",
        ),
        (
            {
                "WINFLEET_PAYLOAD_DIR": "/p",
                "WINFLEET_PAYLOAD_VERSIONS": "1.0.0,1.1.0",
                "WINFLEET_VERSION": "1.0.0",
            },
            ("1.0.0", "1.1.0"),
            "1.0.0",
            "/p/1.0.0",
        ),
        ({"WINFLEET_PAYLOAD_DIR": "/p", "WINFLEET_VERSION": "4.2"}, ("4.2",), "4.2", "/p"),
        ({"WINFLEET_PAYLOAD_DIR": "/p"}, ("0.1.0",), "0.1.0", "/p"),
    ],
)
def test_payload_versions_come_from_the_environment_and_old_setups_keep_working(
    env: dict[str, str], versions: tuple[str, ...], default: str, dir_of_default: str
) -> None:
    s = Settings.from_env(env)
    assert s.payload_versions == versions
    assert s.version == default
    assert s.payload_dir_for() == s.payload_dir_for(default) == Path(dir_of_default)


def test_an_unknown_payload_version_is_refused_naming_the_available_ones() -> None:
    s = Settings.from_env(
        {"WINFLEET_PAYLOAD_DIR": "/p", "WINFLEET_PAYLOAD_VERSIONS": "1.0.0,1.1.0"}
    )
    with pytest.raises(InvalidRequest) as caught:
        s.payload_dir_for("9.9.9")
    assert "'9.9.9'" in caught.value.message and "1.0.0, 1.1.0" in caught.value.message


def test_the_twins_sample_payload_versions_really_differ(tmp_path: Path) -> None:
    hashes = build_sample_payloads(tmp_path)
    assert tuple(hashes) == PAYLOAD_VERSIONS and len(PAYLOAD_VERSIONS) >= 2
    old, new = hashes[PAYLOAD_VERSIONS[0]], hashes[PAYLOAD_VERSIONS[-1]]
    assert set(old) == set(new)
    changed = {name for name in old if old[name] != new[name]}
    assert changed == {"kubelet.exe", "kube-proxy.exe", "hybrid-overlay-node.exe"}
    for version in PAYLOAD_VERSIONS:
        manifest = parse_manifest((tmp_path / version / "sha256sum").read_text())
        assert {e.path: e.sha256 for e in manifest} == hashes[version]
    kubelet_lines = [
        (tmp_path / v / "kubelet.exe").read_bytes().split(b"\n")[2] for v in PAYLOAD_VERSIONS
    ]
    assert kubelet_lines == [b"version: v1.19.0-rc.2+simulated", b"version: v1.20.0+simulated"]
