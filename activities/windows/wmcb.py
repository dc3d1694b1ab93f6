"""Command lines for WMCB, the Windows Machine Config Bootstrapper (`C:\\k\\wmcb.exe`).

WMCB writes kubelet's configuration from the worker ignition and manages the kubelet service;
`configure-cni` must follow every `initialize-kubelet`. Success is judged by the line WMCB prints,
not only by its exit status (as WMCO does). Used by the kubelet and CNI activities.
"""

from __future__ import annotations

from activities.windows.paths import CNI_CONFIG, CNI_DIR, IGNITION, KUBELET, WMCB
from activities.windows.powershell import WindowsCommand
from activities.windows.quoting import cmd_quote

BOOTSTRAP_SUCCEEDED = "Bootstrapping completed successfully"
CNI_SUCCEEDED = "CNI configuration completed successfully"


def initialize_kubelet(node_ip: str | None = None) -> WindowsCommand:
    """Configure kubelet from the ignition file and (re)create + start its service."""
    words = [
        WMCB,
        "initialize-kubelet",
        "--ignition-file",
        cmd_quote(IGNITION),
        "--kubelet-path",
        cmd_quote(KUBELET),
    ]
    if node_ip is not None:
        words += ["--node-ip", cmd_quote(node_ip)]
    return WindowsCommand(
        " ".join(words), display="wmcb initialize-kubelet", success_line=BOOTSTRAP_SUCCEEDED
    )


def configure_cni() -> WindowsCommand:
    """Give kubelet its CNI flags (config and plugin dir) and restart it."""
    words = [
        WMCB,
        "configure-cni",
        "--cni-dir",
        cmd_quote(CNI_DIR),
        "--cni-config",
        cmd_quote(CNI_CONFIG),
    ]
    return WindowsCommand(" ".join(words), display="wmcb configure-cni", success_line=CNI_SUCCEEDED)


def uninstall_kubelet() -> WindowsCommand:
    """Stop and remove the kubelet service."""
    return WindowsCommand(f"{WMCB} uninstall-kubelet", display="wmcb uninstall-kubelet")
