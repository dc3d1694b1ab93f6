"""Remote paths: the WMCO layout, SFTP names, and where payload files land."""

from __future__ import annotations

import pytest

from activities.windows import paths
from activities.windows.paths import WindowsPath


@pytest.mark.parametrize(
    ("constant", "value"),
    [
        (paths.K_DIR, r"C:\k"),
        (paths.CNI_DIR, r"C:\k\cni"),
        (paths.CNI_CONFIG, r"C:\k\cni\config\cni.conf"),
        (paths.IGNITION, r"C:\k\worker.ign"),
        (paths.KUBECONFIG, r"C:\k\kubeconfig"),
        (paths.WMCB, r"C:\k\wmcb.exe"),
        (paths.KUBELET, r"C:\k\kubelet.exe"),
        (paths.HYBRID_OVERLAY, r"C:\k\hybrid-overlay-node.exe"),
        (paths.KUBE_PROXY, r"C:\k\kube-proxy.exe"),
        (paths.HNS_MODULE, r"C:\k\hns.psm1"),
        (paths.LOG_DIR, r"C:\var\log"),
        (paths.AUTHORIZED_KEYS, r"C:\ProgramData\ssh\administrators_authorized_keys"),
    ],
)
def test_remote_paths_follow_the_wmco_layout(constant: str, value: str) -> None:
    assert constant == value


@pytest.mark.parametrize(
    ("windows", "sftp"),
    [
        (r"C:\k\kubelet.exe", "/C:/k/kubelet.exe"),
        (r"C:\k", "/C:/k"),
        (r"C:\k\cni\config\cni.conf", "/C:/k/cni/config/cni.conf"),
        (
            r"C:\ProgramData\ssh\administrators_authorized_keys",
            "/C:/ProgramData/ssh/administrators_authorized_keys",
        ),
    ],
)
def test_sftp_names_drive_paths_the_way_windows_openssh_shows_them(windows: str, sftp: str) -> None:
    assert paths.sftp_path(WindowsPath(windows)) == sftp


@pytest.mark.parametrize("relative_only", [r"k\kubelet.exe", r"\k\kubelet.exe", "C:kubelet.exe"])
def test_sftp_path_refuses_a_path_without_drive_and_root(relative_only: str) -> None:
    with pytest.raises(ValueError, match="absolute"):
        paths.sftp_path(WindowsPath(relative_only))


@pytest.mark.parametrize(
    ("manifest_path", "remote"),
    [
        ("wmcb.exe", r"C:\k\wmcb.exe"),
        ("./kubelet.exe", r"C:\k\kubelet.exe"),
        ("cni/win-overlay.exe", r"C:\k\cni\win-overlay.exe"),
        ("cni/config/cni.conf", r"C:\k\cni\config\cni.conf"),
        (r"cni\host-local.exe", r"C:\k\cni\host-local.exe"),
    ],
)
def test_a_payload_file_lands_under_c_k(manifest_path: str, remote: str) -> None:
    assert paths.remote_path_for(manifest_path) == remote


@pytest.mark.parametrize(
    "escaping", ["../evil.exe", "cni/../../evil.exe", "/etc/passwd", "C:/Windows/x.exe", "", "."]
)
def test_a_payload_path_cannot_escape_c_k(escaping: str) -> None:
    with pytest.raises(ValueError, match=r"inside C:\\k"):
        paths.remote_path_for(escaping)


def test_join_and_parent_use_backslashes() -> None:
    joined = paths.win_join(paths.K_DIR, "cni", "config")
    assert joined == r"C:\k\cni\config"
    assert paths.parent(joined) == paths.CNI_DIR
