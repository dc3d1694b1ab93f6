"""sc.exe and WMCB command lines: exact text, split the way the host splits them."""

from __future__ import annotations

import itertools

import pytest

from activities.windows import sc, wmcb
from activities.windows.powershell import WindowsCommand
from sim.windows import cmdline

KUBE_PROXY_BIN = (
    r"C:\k\kube-proxy.exe --windows-service --proxy-mode=kernelspace "
    r"--feature-gates=WinOverlay=true,WinDSR=true --log-dir=C:\var\log\kube-proxy"
)

TABLE: list[tuple[WindowsCommand, str, str]] = [
    (
        sc.sc_create("kube-proxy", KUBE_PROXY_BIN, depends_on=("kubelet", "hybrid-overlay-node")),
        f'sc.exe create kube-proxy binPath= "{KUBE_PROXY_BIN}" start= auto '
        "depend= kubelet/hybrid-overlay-node",
        "sc create kube-proxy",
    ),
    (
        sc.sc_create("svc", r"C:\k\svc.exe", display_name="OpenShift svc"),
        r'sc.exe create svc binPath= C:\k\svc.exe start= auto DisplayName= "OpenShift svc"',
        "sc create svc",
    ),
    (
        sc.sc_config("kubelet", r'"C:\Program Files\k\kubelet.exe" --v=2'),
        r'sc.exe config kubelet binPath= """C:\Program Files\k\kubelet.exe"" --v=2" start= auto',
        "sc config kubelet",
    ),
    (
        sc.sc_failure("kubelet", 86400, 10000),
        "sc.exe failure kubelet reset= 86400 actions= restart/10000",
        "sc failure kubelet",
    ),
    (
        sc.sc_failure("kubelet", 60, (5000, 30000)),
        "sc.exe failure kubelet reset= 60 actions= restart/5000/restart/30000",
        "sc failure kubelet",
    ),
    (
        sc.sc_description("kubelet", "OpenShift managed kubelet"),
        'sc.exe description kubelet "OpenShift managed kubelet"',
        "sc description kubelet",
    ),
    (sc.sc_query("kubelet"), "sc.exe query kubelet", "sc query kubelet"),
    (sc.sc_start("kubelet"), "sc.exe start kubelet", "sc start kubelet"),
    (sc.sc_stop("kubelet"), "sc.exe stop kubelet", "sc stop kubelet"),
    (sc.sc_delete("kubelet"), "sc.exe delete kubelet", "sc delete kubelet"),
    (
        wmcb.initialize_kubelet(),
        r"C:\k\wmcb.exe initialize-kubelet --ignition-file C:\k\worker.ign "
        r"--kubelet-path C:\k\kubelet.exe",
        "wmcb initialize-kubelet",
    ),
    (
        wmcb.initialize_kubelet("10.0.0.5"),
        r"C:\k\wmcb.exe initialize-kubelet --ignition-file C:\k\worker.ign "
        r"--kubelet-path C:\k\kubelet.exe --node-ip 10.0.0.5",
        "wmcb initialize-kubelet",
    ),
    (
        wmcb.configure_cni(),
        r"C:\k\wmcb.exe configure-cni --cni-dir C:\k\cni --cni-config C:\k\cni\config\cni.conf",
        "wmcb configure-cni",
    ),
    (wmcb.uninstall_kubelet(), r"C:\k\wmcb.exe uninstall-kubelet", "wmcb uninstall-kubelet"),
]


@pytest.mark.parametrize(("cmd", "line", "display"), TABLE, ids=lambda v: str(v)[:30])
def test_each_command_builder_emits_exactly_this_line(
    cmd: WindowsCommand, line: str, display: str
) -> None:
    assert cmd.line == line
    assert cmd.display == display


@pytest.mark.parametrize(("cmd", "_line", "_display"), TABLE, ids=lambda v: str(v)[:30])
def test_sc_options_are_written_as_option_space_value(
    cmd: WindowsCommand, _line: str, _display: str
) -> None:
    argv = cmdline.split(cmd.line)
    assert not argv[-1].endswith("=")
    for word, following in itertools.pairwise(argv):
        assert "= " not in word and not word.startswith("=")
        if word.endswith("=") and word[:-1].isalpha():
            assert not following.endswith("="), f"{word} has no value"
    assert cmdline.unquoted_operator(cmd.line) is None


def test_the_service_command_line_survives_as_one_binpath_argument() -> None:
    argv = cmdline.split(sc.sc_config("kubelet", r'"C:\Program Files\k\kubelet.exe" --v=2').line)
    assert argv[argv.index("binPath=") + 1] == r'"C:\Program Files\k\kubelet.exe" --v=2'


def test_wmcb_steps_are_judged_by_their_success_line() -> None:
    assert wmcb.initialize_kubelet().success_line == "Bootstrapping completed successfully"
    assert wmcb.configure_cni().success_line == "CNI configuration completed successfully"
    assert wmcb.uninstall_kubelet().success_line is None


def test_sc_failure_needs_at_least_one_restart_delay() -> None:
    with pytest.raises(ValueError, match="at least one"):
        sc.sc_failure("kubelet", 60, ())
