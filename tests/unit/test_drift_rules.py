"""What counts as drift on a node, the probe that reads a host, and the desired-state hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from windows_lines import script_of

from activities import desired_state
from activities.contracts import AwsMachineSpec, ByohHostSpec, Platform
from activities.drift_check import serving_certificate
from activities.drift_contracts import Check
from activities.drift_rules import Certificate, Expected, Seen, node_findings
from activities.errors import RemoteCommandFailed
from activities.payload import ManifestEntry
from activities.windows import hns, paths, services
from activities.windows.cni import OVERLAY_NETWORK, cni_config
from activities.windows.probe import (
    KUBELET_CNI_FLAGS,
    Probe,
    ServiceInfo,
    parse_probe,
    probe_command,
)

NODE, SUBNET, CIDR, VIP = "pool-abcde", "10.132.3.0/24", "172.30.0.0/16", "10.132.3.2"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
KUBELET_EXE = ManifestEntry("kubelet.exe", "aa" * 32, paths.KUBELET)
KUBELET_LINE = " ".join((paths.KUBELET, "--windows-service", *KUBELET_CNI_FLAGS))


def healthy_probe() -> Probe:
    hybrid = services.hybrid_overlay_service(NODE).binary_path_name
    proxy = services.kube_proxy_service(NODE, SUBNET, VIP).binary_path_name
    cni = hashlib.sha256(cni_config(SUBNET, CIDR).encode()).hexdigest()
    net = hns.HnsNetwork(OVERLAY_NETWORK, "NET-1", "Overlay", (SUBNET,))
    vip = hns.HnsEndpoint(hns.VIP_ENDPOINT, "EP-1", VIP, "NET-1", OVERLAY_NETWORK)
    return Probe(
        services={
            "kubelet": ServiceInfo("kubelet", KUBELET_LINE, "Auto", "Running"),
            "hybrid-overlay-node": ServiceInfo("hybrid-overlay-node", hybrid, "Auto", "Running"),
            "kube-proxy": ServiceInfo("kube-proxy", proxy, "Auto", "Running"),
        },
        hashes={paths.KUBELET.lower(): "aa" * 32, paths.CNI_CONFIG.lower(): cni},
        networks=(net,),
        endpoints=(vip,),
        hns_read=True,
    )


EXPECTED = Expected(
    node=NODE, version="1.1.0", node_subnet=SUBNET, service_cidr=CIDR, manifest=(KUBELET_EXE,)
)
CERT = Certificate(NOW - timedelta(days=10), NOW + timedelta(days=355))
HEALTHY = Seen(healthy_probe(), frozenset({paths.KUBELET.lower(), paths.CNI_CONFIG.lower()}), CERT)


def found(exp: Expected = EXPECTED, seen: Seen = HEALTHY) -> set[tuple[Check, str]]:
    return {(f.check, f.subject) for f in node_findings(exp, seen, NOW)}


def with_service(name: str, **changes: str) -> Seen:
    probe = healthy_probe()
    svc = dict(probe.services)
    svc[name] = replace(svc[name], **changes)
    return replace(HEALTHY, probe=replace(probe, services=svc))


def test_a_node_as_it_should_be_has_no_findings() -> None:
    assert found() == set()


@pytest.mark.parametrize(
    ("name", "changes", "check"),
    [
        ("kubelet", {"state": "Stopped"}, Check.SERVICE_STOPPED),
        ("kube-proxy", {"start_mode": "Disabled"}, Check.SERVICE_DISABLED),
        ("kube-proxy", {"start_mode": "Manual"}, Check.SERVICE_DISABLED),
        (
            "hybrid-overlay-node",
            {"path_name": r"C:\k\hybrid-overlay-node.exe --node x"},
            Check.SERVICE_ARGUMENTS,
        ),
        ("kube-proxy", {"path_name": r"C:\k\kube-proxy.exe --v=9"}, Check.SERVICE_ARGUMENTS),
        ("kubelet", {"path_name": r"C:\k\kubelet.exe --windows-service"}, Check.SERVICE_ARGUMENTS),
        (
            "kubelet",
            {"path_name": r"C:\other\kubelet.exe " + " ".join(KUBELET_CNI_FLAGS)},
            Check.SERVICE_ARGUMENTS,
        ),
    ],
)
def test_a_service_stopped_disabled_or_with_other_arguments_is_drift(
    name: str, changes: dict[str, str], check: Check
) -> None:
    assert found(seen=with_service(name, **changes)) == {(check, name)}


def test_a_missing_service_is_drift_and_its_arguments_are_not_compared() -> None:
    probe = healthy_probe()
    gone = {k: v for k, v in probe.services.items() if k != "kube-proxy"}
    seen = replace(HEALTHY, probe=replace(probe, services=gone))
    assert found(seen=seen) == {(Check.SERVICE_MISSING, "kube-proxy")}


def test_a_changed_argument_is_named() -> None:
    seen = with_service("kube-proxy", path_name=r"C:\k\kube-proxy.exe --v=9")
    (finding,) = node_findings(EXPECTED, seen, NOW)
    assert "missing --windows-service" in finding.detail and "extra --v=9" in finding.detail


@pytest.mark.parametrize(
    ("present", "hashes", "detail"),
    [
        (frozenset({paths.CNI_CONFIG.lower()}), None, "missing"),
        (None, {paths.KUBELET.lower(): "bb" * 32}, "SHA256"),
    ],
)
def test_a_payload_file_missing_or_with_another_hash_is_drift(
    present: frozenset[str] | None, hashes: dict[str, str] | None, detail: str
) -> None:
    probe = healthy_probe()
    seen = replace(
        HEALTHY,
        present=present if present is not None else HEALTHY.present,
        probe=replace(probe, hashes={**probe.hashes, **(hashes or {})}),
    )
    (finding,) = node_findings(EXPECTED, seen, NOW)
    assert (finding.check, finding.subject) == (Check.PAYLOAD_FILE, paths.KUBELET)
    assert detail in finding.detail


def test_an_edited_cni_config_is_drift_and_so_is_one_for_another_subnet() -> None:
    probe = healthy_probe()
    edited = replace(probe, hashes={**probe.hashes, paths.CNI_CONFIG.lower(): "00" * 32})
    assert found(seen=replace(HEALTHY, probe=edited)) == {(Check.CNI_CONFIG, paths.CNI_CONFIG)}
    moved = replace(EXPECTED, node_subnet="10.132.9.0/24")
    assert (Check.CNI_CONFIG, paths.CNI_CONFIG) in found(exp=moved)


def test_the_overlay_network_or_the_vip_endpoint_missing_is_hns_drift() -> None:
    probe = healthy_probe()
    no_net = replace(HEALTHY, probe=replace(probe, networks=(), endpoints=()))
    no_vip = replace(HEALTHY, probe=replace(probe, endpoints=()))
    moved = replace(probe, endpoints=(replace(probe.endpoints[0], network_id="NET-OLD"),))
    assert found(seen=no_net) == {(Check.HNS, f"network {OVERLAY_NETWORK}")}
    assert found(seen=no_vip) == {(Check.HNS, "endpoint VIPEndpoint")}
    assert found(seen=replace(HEALTHY, probe=moved)) == {(Check.HNS, "endpoint VIPEndpoint")}


@pytest.mark.parametrize(
    ("days_left", "drift"), [(355, False), (80, False), (60, True), (-1, True), (None, True)]
)
def test_a_serving_certificate_kubelet_did_not_renew_in_time_is_drift(
    days_left: int | None, drift: bool
) -> None:
    cert = None
    if days_left is not None:
        cert = Certificate(NOW - timedelta(days=365 - days_left), NOW + timedelta(days=days_left))
    seen = replace(HEALTHY, certificate=cert)
    assert bool(found(seen=seen)) is drift


@pytest.mark.parametrize(
    ("ready_for", "drift"),
    [(timedelta(seconds=5), False), (timedelta(minutes=4), False), (timedelta(minutes=6), True)],
)
def test_a_node_ready_a_moment_ago_may_still_be_fetching_its_serving_certificate(
    ready_for: timedelta, drift: bool
) -> None:
    fresh = replace(EXPECTED, ready_since=NOW - ready_for)
    missing = replace(HEALTHY, certificate=None)
    assert bool(found(exp=fresh, seen=missing)) is drift
    # An expired one is drift however young the node: kubelet would not have kept it.
    expired = Certificate(NOW - timedelta(days=400), NOW - timedelta(days=1))
    assert found(exp=fresh, seen=replace(HEALTHY, certificate=expired))


def test_windows_exporter_is_checked_only_where_winfleet_installed_it() -> None:
    assert found() == set()  # not installed, not winfleet's: not looked at
    installed = replace(EXPECTED, exporter_installed=True)
    assert found(exp=installed) == {(Check.SERVICE_MISSING, "windows_exporter")}


def test_a_changed_desired_state_names_the_parts_that_changed() -> None:
    old = desired_state.desired_state(
        version="1.1.0",
        machine="m1",
        manifest="p1",
        node=NODE,
        node_subnet=SUBNET,
        service_cidr=CIDR,
    )
    new = desired_state.desired_state(
        version="1.1.0",
        machine="m2",
        manifest="p1",
        node=NODE,
        node_subnet=SUBNET,
        service_cidr=CIDR,
    )
    exp = replace(EXPECTED, recorded_state=old.annotation(), wanted_state=new)
    assert found(exp=exp) == {(Check.DESIRED_STATE, "machine")}
    same = replace(EXPECTED, recorded_state=new.annotation(), wanted_state=new)
    unrecorded = replace(EXPECTED, recorded_state="", wanted_state=new)
    assert found(exp=same) == set() and found(exp=unrecorded) == set()


# --- the desired-state hash ----------------------------------------------------------------------
def test_machine_hashes_differ_by_spec_and_not_by_call() -> None:
    a = desired_state.machine_hash(Platform.AWS, aws=AwsMachineSpec())
    assert a == desired_state.machine_hash(Platform.AWS, aws=AwsMachineSpec())
    assert a != desired_state.machine_hash(
        Platform.AWS, aws=AwsMachineSpec(instance_type="m5.xlarge")
    )
    host = desired_state.machine_hash(Platform.BYOH, byoh=ByohHostSpec("10.0.0.5"))
    assert host != desired_state.machine_hash(Platform.BYOH, byoh=ByohHostSpec("10.0.0.6"))


def test_the_annotation_holds_the_overall_hash_then_each_part() -> None:
    state = desired_state.desired_state(
        version="1.1.0", machine="m", manifest="p", node=NODE, node_subnet=SUBNET, service_cidr=CIDR
    )
    head, parts = desired_state.parse(state.annotation())
    assert len(head) == desired_state.SHORT and list(parts) == list(desired_state.PARTS)
    assert parts["version"] == "1.1.0"
    other_cidr = desired_state.desired_state(
        version="1.1.0",
        machine="m",
        manifest="p",
        node=NODE,
        node_subnet=SUBNET,
        service_cidr="172.31.0.0/16",
    )
    assert desired_state.changed_parts(state.annotation(), other_cidr) == ("cni",)


# --- the probe ------------------------------------------------------------------------------------
def test_the_probe_is_one_read_only_script_asking_only_for_files_that_exist() -> None:
    cmd = probe_command(("kubelet", "kube-proxy"), (paths.KUBELET,), with_hns=True)
    script = script_of(cmd.line)
    assert "Win32_Service -Filter 'Name=''kubelet'' OR Name=''kube-proxy'''" in script
    assert r"Get-FileHash -Path 'C:\k\kubelet.exe' -Algorithm SHA256" in script
    assert "Get-HnsNetwork" in script and "Get-HnsEndpoint" in script
    bare = script_of(probe_command(("kubelet",), (), with_hns=False).line)
    assert "Get-FileHash" not in bare and "Hns" not in bare


def test_the_probe_output_is_read_back_by_its_markers() -> None:
    out = "\r\n".join(
        [
            "##winfleet services",
            json.dumps(
                {
                    "Name": "kubelet",
                    "PathName": KUBELET_LINE,
                    "StartMode": "Auto",
                    "State": "Running",
                }
            ),
            "##winfleet hashes",
            json.dumps([{"Hash": "AB" * 32, "Path": paths.KUBELET}]),
            "##winfleet networks",
            json.dumps(
                {
                    "Name": OVERLAY_NETWORK,
                    "Id": "N1",
                    "Type": "Overlay",
                    "Subnets": [{"AddressPrefix": SUBNET}],
                }
            ),
            "##winfleet endpoints",
            "",
        ]
    )
    probe = parse_probe(out, with_hns=True)
    assert probe.services["kubelet"].running and probe.services["kubelet"].start_mode == "Auto"
    assert probe.hashes == {paths.KUBELET.lower(): "ab" * 32}
    assert probe.networks[0].subnets == (SUBNET,) and probe.endpoints == ()


@pytest.mark.parametrize(
    "out",
    ["", "##winfleet services\r\n{not json", "##winfleet services\r\n[]\r\n"],
)
def test_a_garbled_probe_output_is_refused(out: str) -> None:
    with pytest.raises(RemoteCommandFailed):
        parse_probe(out, with_hns=True)


def test_only_the_certificate_of_the_serving_file_is_read_and_garbage_is_none() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:node:" + NODE)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )  # kubelet writes the certificate and its key into one file
    assert serving_certificate(pem) == Certificate(NOW, NOW + timedelta(days=365))
    assert serving_certificate(b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n") is None
    assert serving_certificate(b"-----BEGIN CERTIFICATE-----\nnot base64\n") is None
    assert serving_certificate(None) is None
