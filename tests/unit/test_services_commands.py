"""Service definitions and the check-then-act plan that ensures them (pure)."""

from __future__ import annotations

import pytest
from windows_lines import script_of

from activities.errors import RemoteCommandFailed
from activities.windows import services
from activities.windows.services import (
    ServiceSpec,
    ServiceState,
    ensure_service_commands,
    hybrid_overlay_service,
    kube_proxy_service,
    parse_service_state,
)

KUBE_PROXY_LINE = (
    r"C:\k\kube-proxy.exe --windows-service --proxy-mode=kernelspace "
    r"--feature-gates=WinOverlay=true,WinDSR=true --hostname-override=win-a "
    r"--kubeconfig=C:\k\kubeconfig --cluster-cidr=10.132.1.0/24 "
    r"--network-name=OVNKubernetesHybridOverlayNetwork --source-vip=10.132.1.2 "
    r"--enable-dsr=true --log-dir=C:\var\log\kube-proxy --logtostderr=false"
)
HYBRID_OVERLAY_LINE = (
    r"C:\k\hybrid-overlay-node.exe --node win-a --k8s-kubeconfig C:\k\kubeconfig "
    r"--windows-service --logfile C:\var\log\hybrid-overlay\hybrid-overlay.log"
)


def test_kube_proxy_runs_kernelspace_on_the_overlay_with_the_vip_as_source() -> None:
    spec = kube_proxy_service("win-a", "10.132.1.0/24", "10.132.1.2")
    assert spec.binary_path_name == KUBE_PROXY_LINE
    assert spec.depends_on == ("hybrid-overlay-node",)
    assert spec.description == "OpenShift managed kube-proxy"
    assert spec.restart_on_failure


def test_hybrid_overlay_names_the_node_and_its_kubeconfig() -> None:
    spec = hybrid_overlay_service("win-a")
    assert spec.binary_path_name == HYBRID_OVERLAY_LINE
    assert spec.depends_on == ("kubelet",)
    assert spec.description == "OpenShift managed hybrid-overlay-node"


def test_windows_exporter_stands_alone_with_its_collectors() -> None:
    spec = services.windows_exporter_service()
    assert spec.binary_path_name == (
        r"C:\k\windows_exporter.exe --collectors.enabled "
        "cpu,cs,logical_disk,net,os,service,system,textfile,container,memory"
    )
    assert spec.depends_on == ()
    assert spec.description == "OpenShift managed windows_exporter"


def test_services_are_ordered_kubelet_then_hybrid_overlay_then_kube_proxy() -> None:
    assert services.SERVICE_ORDER == ("kubelet", "hybrid-overlay-node", "kube-proxy")


@pytest.mark.parametrize(
    ("node", "subnet", "vip"),
    [
        ("win a", "10.132.1.0/24", "10.132.1.2"),  # a space would split the command line
        ('win"a', "10.132.1.0/24", "10.132.1.2"),
        ("WIN-A", "10.132.1.0/24", "10.132.1.2"),  # node names are lowercase
        ("win-a", "10.132.1.5/24", "10.132.1.2"),  # host bits set: not a subnet
        ("win-a", "10.132.1.0/24", "10.132.1.2 --evil"),
        ("win-a", "not-a-cidr", "10.132.1.2"),
    ],
)
def test_kube_proxy_definition_refuses_values_that_are_not_what_they_claim(
    node: str, subnet: str, vip: str
) -> None:
    with pytest.raises(ValueError):
        kube_proxy_service(node, subnet, vip)


def test_a_changed_vip_changes_the_definition_the_host_keeps() -> None:
    a = kube_proxy_service("win-a", "10.132.1.0/24", "10.132.1.2")
    b = kube_proxy_service("win-a", "10.132.1.0/24", "10.132.1.3")
    assert a.definition() != b.definition()
    assert a.definition() == kube_proxy_service("win-a", "10.132.1.0/24", "10.132.1.2").definition()


def test_the_definition_marker_lives_in_the_payload_directory() -> None:
    assert services.definition_marker("kube-proxy") == r"C:\k\kube-proxy.service"


# --- parsing Get-Service ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        (
            '{"Name":"kube-proxy","Status":"Running","StartType":"Automatic"}',
            ServiceState("kube-proxy", "Running", "Automatic"),
        ),
        (
            '{"Name":"kube-proxy","Status":1,"StartType":3}',  # Windows PowerShell prints enums
            ServiceState("kube-proxy", "Stopped", "Manual"),
        ),
    ],
)
def test_get_service_json_becomes_a_service_state(stdout: str, expected: ServiceState) -> None:
    assert parse_service_state("kube-proxy", 0, stdout, "") == expected


def test_a_missing_service_is_reported_as_none() -> None:
    stderr = "Get-Service : Cannot find any service with service name 'kube-proxy'."
    assert parse_service_state("kube-proxy", 1, "", stderr) is None


def test_any_other_get_service_failure_is_a_remote_command_failure() -> None:
    with pytest.raises(RemoteCommandFailed, match="Access is denied"):
        parse_service_state("kube-proxy", 1, "", "Get-Service : Access is denied")


# --- the plan --------------------------------------------------------------------------------
SPEC = ServiceSpec(
    name="svc",
    binary_path_name=r"C:\k\svc.exe --flag=1",
    display_name="svc",
    description="OpenShift managed svc",
    depends_on=("kubelet",),
)
RUNNING = ServiceState("svc", "Running", "Automatic")
STOPPED = ServiceState("svc", "Stopped", "Automatic")
DISABLED_RUNNING = ServiceState("svc", "Running", "Disabled")


@pytest.mark.parametrize(
    ("observed", "current", "configure", "start"),
    [
        # not installed: create, failure actions, start
        (None, False, ["create service svc", "sc failure svc"], "start service svc"),
        (None, True, ["create service svc", "sc failure svc"], "start service svc"),
        # installed with an outdated definition: reconfigure, restart if it was running
        (RUNNING, False, ["sc config svc", "sc description svc", "sc failure svc"], "restart"),
        (STOPPED, False, ["sc config svc", "sc description svc", "sc failure svc"], "start"),
        # someone changed the start type: reconfigure too
        (
            DISABLED_RUNNING,
            True,
            ["sc config svc", "sc description svc", "sc failure svc"],
            "restart",
        ),
        # current and running: nothing at all; current and stopped: only start
        (RUNNING, True, [], None),
        (STOPPED, True, [], "start service svc"),
    ],
)
def test_ensure_service_acts_only_where_the_host_differs(
    observed: ServiceState | None, current: bool, configure: list[str], start: str | None
) -> None:
    plan = ensure_service_commands(SPEC, observed, current)
    assert [c.display for c in plan.configure] == configure
    if start is None:
        assert plan.start is None
    else:
        assert plan.start is not None
        assert plan.start.display.startswith(start)


def test_creating_a_service_passes_its_whole_definition() -> None:
    plan = ensure_service_commands(SPEC, None, False)
    line = script_of(plan.configure[0].line)
    assert "New-Service -Name 'svc'" in line
    assert r"-BinaryPathName 'C:\k\svc.exe --flag=1'" in line
    assert "-Description 'OpenShift managed svc'" in line
    assert "-StartupType Automatic" in line
    assert "-DependsOn 'kubelet'" in line
    assert plan.configure[1].line == "sc.exe failure svc reset= 5 actions= restart/1000"


def test_reconfiguring_points_the_service_at_the_new_command_line() -> None:
    plan = ensure_service_commands(SPEC, STOPPED, False)
    assert plan.configure[0].line == (
        r'sc.exe config svc binPath= "C:\k\svc.exe --flag=1" start= auto depend= kubelet'
    )
    assert plan.configure[1].line == 'sc.exe description svc "OpenShift managed svc"'


def test_a_service_without_restart_on_failure_gets_no_failure_actions() -> None:
    spec = ServiceSpec("x", r"C:\k\x.exe", "x", "OpenShift managed x", restart_on_failure=False)
    plan = ensure_service_commands(spec, None, False)
    assert [c.display for c in plan.configure] == ["create service x"]
