"""Where things live on a Windows node, and how to name them over SFTP.

Constants follow WMCO's layout (`C:\\k` for the payload, the CNI directory under it). Pure; used
by the command builders, the payload copy and the kubelet/network activities.
"""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import NewType

WindowsPath = NewType("WindowsPath", str)
"""An absolute Windows path on the remote host, e.g. `C:\\k\\kubelet.exe`."""

K_DIR = WindowsPath(r"C:\k")
CNI_DIR = WindowsPath(r"C:\k\cni")
CNI_CONFIG_DIR = WindowsPath(r"C:\k\cni\config")
CNI_CONFIG = WindowsPath(r"C:\k\cni\config\cni.conf")
IGNITION = WindowsPath(r"C:\k\worker.ign")
KUBECONFIG = WindowsPath(r"C:\k\kubeconfig")
WMCB = WindowsPath(r"C:\k\wmcb.exe")
KUBELET = WindowsPath(r"C:\k\kubelet.exe")
HYBRID_OVERLAY = WindowsPath(r"C:\k\hybrid-overlay-node.exe")
KUBE_PROXY = WindowsPath(r"C:\k\kube-proxy.exe")
HNS_MODULE = WindowsPath(r"C:\k\hns.psm1")
LOG_DIR = WindowsPath(r"C:\var\log")
AUTHORIZED_KEYS = WindowsPath(r"C:\ProgramData\ssh\administrators_authorized_keys")
# Where Azure writes a Windows VM's decoded `osProfile.customData` (it never runs it).
AZURE_CUSTOM_DATA = WindowsPath(r"C:\AzureData\CustomData.bin")
AZURE_BOOTSTRAP_SCRIPT = WindowsPath(r"C:\AzureData\winfleet-bootstrap.ps1")
# kubelet's --cert-dir (WMCB sets it). Until its client certificate is issued, kubelet keeps the
# key of its client CSR in `kubelet-client.key.tmp` (reused across restarts); then it writes
# cert + key to `kubelet-client-current.pem` and removes the .tmp file.
KUBELET_PKI_DIR = WindowsPath(r"C:\var\lib\kubelet\pki")
KUBELET_BOOTSTRAP_KEY = WindowsPath(r"C:\var\lib\kubelet\pki\kubelet-client.key.tmp")
KUBELET_CLIENT_CURRENT = WindowsPath(r"C:\var\lib\kubelet\pki\kubelet-client-current.pem")


def win_join(base: WindowsPath, *parts: str) -> WindowsPath:
    """`base` with `parts` appended, backslash-separated."""
    return WindowsPath(str(PureWindowsPath(base, *parts)))


def parent(p: WindowsPath) -> WindowsPath:
    """The directory holding `p`."""
    return WindowsPath(str(PureWindowsPath(p).parent))


def sftp_path(p: WindowsPath) -> str:
    r"""The SFTP form of a Windows path, as Windows OpenSSH shows it: `C:\k\x` → `/C:/k/x`."""
    w = PureWindowsPath(p)
    if not w.drive or not w.root:
        raise ValueError(f"not an absolute Windows path: {p!r}")
    return "/" + w.as_posix()


def remote_path_for(relative_manifest_path: str) -> WindowsPath:
    r"""Where a payload file goes: `cni/win-overlay.exe` → `C:\k\cni\win-overlay.exe`.

    Raises ValueError for absolute paths or `..` parts (the manifest must stay inside C:\k).
    """
    rel = PurePosixPath(relative_manifest_path.replace("\\", "/"))
    parts = [p for p in rel.parts if p not in ("", ".")]
    if rel.is_absolute() or not parts or ".." in parts or any(":" in p for p in parts):
        raise ValueError(f"payload path must be relative and stay inside C:\\k: {rel}")
    return win_join(K_DIR, *parts)
