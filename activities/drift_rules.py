"""What counts as drift on one node: the probe's answers against what the node should have.

Pure (tables in tests/unit/test_drift_rules.py); activities/drift_check.py gathers the inputs
over SSH and calls `node_findings`. The services are compared with winfleet's own definitions
(activities/windows/services.py: the same specs onboarding applies; kube-proxy with the source
VIP the host's `VIPEndpoint` has) and kubelet with what WMCB gives it (its binary, and the CNI
flags once `configure-cni` ran); payload files with the node's version manifest; `cni.conf`
with the config rendered for the node's subnet; the overlay HNS network and the VIP endpoint
must exist; kubelet's serving certificate must not be past the point where kubelet should have
renewed it; and the desired-state annotation must equal the node's desired state now.
windows_exporter is checked only where winfleet installed it (its definition marker exists).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from activities import desired_state
from activities.drift_contracts import Check, Finding
from activities.payload import ManifestEntry
from activities.windows import hns, paths, services
from activities.windows.cni import OVERLAY_NETWORK, cni_config
from activities.windows.probe import KUBELET_CNI_FLAGS, Probe, ServiceInfo

RENEW_BY = 0.8
"""kubelet renews its serving certificate at 70-90 % of its lifetime (jittered, as client-go's
certificate manager does): one with less than 20 % left is not being renewed."""

DETAIL_ARGS = 2  # differing arguments named in a finding

SERVING_CERT_GRACE = timedelta(minutes=5)
"""kubelet asks for its serving certificate as it starts and writes it once issued: a node Ready
for less than this may still be fetching it, so a missing one is not drift yet (a node is not
repaired, or replaced, for being a few seconds old)."""


@dataclass(frozen=True)
class Certificate:
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class Expected:
    """What one node should have (built by the check from its Node and the worker's payload)."""

    node: str
    version: str
    node_subnet: str = ""  # empty: not known yet (no CNI or kube-proxy expectations)
    service_cidr: str = "172.30.0.0/16"
    manifest: tuple[ManifestEntry, ...] = ()  # empty: the worker does not hold the version
    exporter_installed: bool = False  # winfleet's windows_exporter definition marker exists
    recorded_state: str = ""  # the desired-hash annotation
    wanted_state: desired_state.DesiredState | None = None
    ready_since: datetime | None = None  # the Node's Ready=True transition (None: not Ready)


@dataclass(frozen=True)
class Seen:
    """What the check saw on the host."""

    probe: Probe
    present: frozenset[str] = field(default_factory=frozenset)  # lowercase paths that exist
    certificate: Certificate | None = None


def _f(check: Check, node: str, subject: str, detail: str) -> Finding:
    return Finding(check=check, node=node, subject=subject, detail=detail)


def _args_differ(actual: str, wanted: str) -> str:
    """How a command line differs, naming a few arguments ("" when equal)."""
    if actual == wanted:
        return ""
    have, want = actual.split(), wanted.split()
    gone = [w for w in want if w not in have][:DETAIL_ARGS]
    extra = [a for a in have if a not in want][:DETAIL_ARGS]
    parts = [f"missing {' '.join(gone)}" if gone else ""]
    parts.append(f"extra {' '.join(extra)}" if extra else "")
    return "; ".join(p for p in parts if p) or "arguments in another order"


def _service(
    node: str, name: str, info: ServiceInfo | None, wanted_line: str | None
) -> list[Finding]:
    if info is None:
        return [_f(Check.SERVICE_MISSING, node, name, "not installed")]
    out = []
    if info.start_mode != "Auto":
        out.append(_f(Check.SERVICE_DISABLED, node, name, f"start mode {info.start_mode}"))
    if not info.running:
        out.append(_f(Check.SERVICE_STOPPED, node, name, f"state {info.state}"))
    if wanted_line is not None:
        differ = _args_differ(info.path_name, wanted_line)
        if differ:
            out.append(_f(Check.SERVICE_ARGUMENTS, node, name, differ))
    return out


def _kubelet(node: str, info: ServiceInfo | None) -> list[Finding]:
    found = _service(node, services.KUBELET_SERVICE, info, None)
    if info is None:
        return found
    words = info.path_name.split()
    missing = [f for f in KUBELET_CNI_FLAGS if f not in words]
    if not words or words[0].lower() != paths.KUBELET.lower():
        missing.insert(0, f"binary {paths.KUBELET}")
    if missing:
        detail = "missing " + " ".join(missing[:DETAIL_ARGS])
        found.append(_f(Check.SERVICE_ARGUMENTS, node, services.KUBELET_SERVICE, detail))
    return found


def _vip(probe: Probe) -> tuple[hns.HnsNetwork | None, str]:
    network = hns.find_network(probe.networks, OVERLAY_NETWORK)
    if network is None:
        return None, ""
    vip = next(
        (
            e.ip_address
            for e in probe.endpoints
            if e.name == hns.VIP_ENDPOINT and e.network_id == network.id
        ),
        "",
    )
    return network, vip


def _network(exp: Expected, seen: Seen) -> tuple[list[Finding], str]:
    """HNS findings, and kube-proxy's command line as it should be ("" if unknown)."""
    if not seen.probe.hns_read:
        return [], ""
    network, vip = _vip(seen.probe)
    if network is None:
        return [_f(Check.HNS, exp.node, f"network {OVERLAY_NETWORK}", "missing")], ""
    if not vip:
        detail = f"missing from {OVERLAY_NETWORK} (deleted, or the network was re-created)"
        return [_f(Check.HNS, exp.node, f"endpoint {hns.VIP_ENDPOINT}", detail)], ""
    if not exp.node_subnet:
        return [], ""
    return [], services.kube_proxy_service(exp.node, exp.node_subnet, vip).binary_path_name


def _payload(exp: Expected, seen: Seen) -> list[Finding]:
    out = []
    for entry in exp.manifest:
        key = entry.remote.lower()
        if key not in seen.present:
            out.append(_f(Check.PAYLOAD_FILE, exp.node, entry.remote, "missing"))
        elif seen.probe.hashes.get(key) != entry.sha256:
            detail = f"SHA256 is not the one of the {exp.version} manifest"
            out.append(_f(Check.PAYLOAD_FILE, exp.node, entry.remote, detail))
    return out


def _cni(exp: Expected, seen: Seen) -> list[Finding]:
    if not exp.node_subnet:
        return []
    wanted = hashlib.sha256(cni_config(exp.node_subnet, exp.service_cidr).encode()).hexdigest()
    key = paths.CNI_CONFIG.lower()
    if key not in seen.present:
        return [_f(Check.CNI_CONFIG, exp.node, paths.CNI_CONFIG, "missing")]
    if seen.probe.hashes.get(key) != wanted:
        detail = f"differs from the config for subnet {exp.node_subnet}"
        return [_f(Check.CNI_CONFIG, exp.node, paths.CNI_CONFIG, detail)]
    return []


def _certificate(exp: Expected, seen: Seen, now: datetime) -> list[Finding]:
    cert = seen.certificate
    subject = "kubelet serving certificate"
    if cert is None:
        if exp.ready_since is not None and now - exp.ready_since < SERVING_CERT_GRACE:
            return []  # kubelet started a moment ago and may still be fetching it
        return [_f(Check.SERVING_CERTIFICATE, exp.node, subject, "none on the host")]
    renew_at = cert.not_before + (cert.not_after - cert.not_before) * RENEW_BY
    if now >= cert.not_after:
        return [_f(Check.SERVING_CERTIFICATE, exp.node, subject, "expired")]
    if now >= renew_at:
        detail = f"expires {cert.not_after.isoformat()} and was not renewed"
        return [_f(Check.SERVING_CERTIFICATE, exp.node, subject, detail)]
    return []


def _desired(exp: Expected) -> list[Finding]:
    if exp.wanted_state is None:
        return []
    changed = desired_state.changed_parts(exp.recorded_state, exp.wanted_state)
    return [
        _f(Check.DESIRED_STATE, exp.node, part, "changed since the node was configured")
        for part in changed
    ]


def node_findings(exp: Expected, seen: Seen, now: datetime) -> tuple[Finding, ...]:
    """Everything that is not as it should be on the node, in onboarding order."""
    svc = seen.probe.services
    out = _desired(exp) + _payload(exp, seen)
    out += _kubelet(exp.node, svc.get(services.KUBELET_SERVICE))
    hybrid = services.hybrid_overlay_service(exp.node)
    out += _service(exp.node, hybrid.name, svc.get(hybrid.name), hybrid.binary_path_name)
    network, proxy_line = _network(exp, seen)
    out += _cni(exp, seen) + network
    proxy = services.KUBE_PROXY_SERVICE
    out += _service(exp.node, proxy, svc.get(proxy), proxy_line or None)
    if exp.exporter_installed:
        exporter = services.windows_exporter_service()
        out += _service(
            exp.node, exporter.name, svc.get(exporter.name.lower()), exporter.binary_path_name
        )
    out += _certificate(exp, seen, now)
    return tuple(out)
