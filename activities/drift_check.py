"""Drift reconciliation, node level: look at a batch of a pool's nodes over SSH. Read-only.

`check_nodes` (called by `ReconcileWindowsPool`, one activity per batch, batches in parallel)
lists the pool's Nodes itself and takes its share (`shard` of `shards` by name order), so no
per-node detail travels through history: the result names only the nodes on which something
was found. Each node gets one SSH session (`activities/ssh.py`): SFTP stats of the files it
should have, one read-only PowerShell probe (services, file hashes, HNS: activities/windows/
probe.py) and, over SFTP into memory, the certificate blocks of kubelet's serving certificate
file (the key beside them is skipped, never kept). activities/drift_rules.py judges what was
seen. Up to `CONCURRENCY` nodes at a time per batch; a node that cannot be reached (or whose
check hangs past `NODE_CHECK_TIMEOUT_S`) is reported, not retried. Heartbeats count progress.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from temporalio import activity

from activities import blocking, desired_state, metrics
from activities.cloud import aws, azure
from activities.config import settings
from activities.contracts import ByohHostSpec, Platform
from activities.drift_contracts import (
    DESIRED_STATE_ANNOTATION,
    Check,
    CheckNodesInput,
    CheckNodesResult,
    Finding,
    NodeDrift,
)
from activities.drift_rules import Certificate, Expected, Seen, node_findings
from activities.errors import WinfleetError, boundary
from activities.node import JsonObject, facts
from activities.payload import MANIFEST, ManifestEntry, parse_manifest
from activities.polling import heartbeating
from activities.pool_contracts import VERSION_ANNOTATION
from activities.pool_state import byoh_hosts, node_view, pool_nodes
from activities.ssh import HostSession, open_session
from activities.windows import paths, services
from activities.windows.probe import parse_probe, probe_command

CONCURRENCY = 16  # SSH sessions at once per batch
NODE_CHECK_TIMEOUT_S = 120.0  # one node's whole check; a host that hangs is reported
CERT_FILE_LIMIT = 15 * 1024  # a certificate and its key; below one SFTP read (16 KiB)
SUBNET_ANNOTATION = "k8s.ovn.org/hybrid-overlay-node-subnet"
SERVING_CERT = paths.win_join(paths.KUBELET_PKI_DIR, "kubelet-server-current.pem")
EXPORTER_MARKER = services.definition_marker(services.WINDOWS_EXPORTER_SERVICE)
PROBED_SERVICES = (
    services.KUBELET_SERVICE,
    services.HYBRID_OVERLAY_SERVICE,
    services.KUBE_PROXY_SERVICE,
    services.WINDOWS_EXPORTER_SERVICE,
)
USERNAMES = {Platform.AWS: aws.USERNAME, Platform.AZURE: azure.USERNAME}
_CERT_BEGIN, _CERT_END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"


_manifests: dict[tuple[str, int], tuple[ManifestEntry, ...]] = {}


def _read_manifest(path: Path) -> tuple[ManifestEntry, ...]:
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _manifests:
        _manifests[key] = parse_manifest(path.read_text())
    return _manifests[key]


async def manifest(version: str) -> tuple[ManifestEntry, ...]:
    """The payload manifest of `version` (empty when the worker does not hold it)."""
    try:
        return await blocking.run(_read_manifest, settings().payload_dir_for(version) / MANIFEST)
    except (WinfleetError, OSError):
        return ()


def serving_certificate(pem: bytes | None) -> Certificate | None:
    """Validity of the first certificate in kubelet's serving certificate file; the private key
    the file also holds is never parsed or kept."""
    if not pem or _CERT_BEGIN not in pem:
        return None
    start = pem.index(_CERT_BEGIN)
    end = pem.find(_CERT_END, start)
    if end < 0:
        return None
    try:
        cert = x509.load_pem_x509_certificate(pem[start : end + len(_CERT_END)])
    except ValueError:
        return None
    return Certificate(cert.not_valid_before_utc, cert.not_valid_after_utc)


async def _look(host: HostSession, exp: Expected) -> Seen:
    wanted = [e.remote for e in exp.manifest] + [paths.CNI_CONFIG]
    extra = [paths.HNS_MODULE, EXPORTER_MARKER, SERVING_CERT]
    present = frozenset(p.lower() for p in await host.existing([*wanted, *extra]))
    hashed = tuple(p for p in wanted if p.lower() in present)
    with_hns = paths.HNS_MODULE.lower() in present
    result = await host.run(probe_command(PROBED_SERVICES, hashed, with_hns=with_hns))
    probe = parse_probe(result.stdout, with_hns=with_hns)
    pem = None
    if SERVING_CERT.lower() in present:
        pem = await host.read_bytes(SERVING_CERT, limit=CERT_FILE_LIMIT)
    return Seen(probe=probe, present=present, certificate=serving_certificate(pem))


async def _expected(node: JsonObject, inp: CheckNodesInput, username: str) -> Expected:
    view = node_view(node)
    notes = (node.get("metadata") or {}).get("annotations") or {}
    version = str(notes.get(VERSION_ANNOTATION) or inp.pool_version or settings().version)
    subnet = str(notes.get(SUBNET_ANNOTATION) or "")
    machine = inp.machine_hash
    if inp.platform == Platform.BYOH:
        machine = desired_state.machine_hash(
            Platform.BYOH, byoh=ByohHostSpec(address=view.address, username=username)
        )
    wanted = None
    if subnet and machine:
        wanted = await desired_state.for_node(
            node=view.name, version=version, machine=machine, node_subnet=subnet
        )
    return Expected(
        node=view.name,
        version=version,
        node_subnet=subnet,
        service_cidr=settings().service_cidr,
        manifest=await manifest(version),
        recorded_state=str(notes.get(DESIRED_STATE_ANNOTATION) or ""),
        wanted_state=wanted,
        ready_since=_ready_since(node),
    )


def _ready_since(node: JsonObject) -> datetime | None:
    """When the Node's Ready condition last turned True (None: not Ready, or not told)."""
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "True":
            try:
                since = datetime.fromisoformat(str(c.get("lastTransitionTime")))
            except ValueError:
                return None
            return since if since.tzinfo else since.replace(tzinfo=UTC)
    return None


async def check_node(node: JsonObject, inp: CheckNodesInput, username: str) -> NodeDrift | None:
    """The drift found on one node (None: none). Never raises for the host's sake."""
    view = node_view(node)
    exp = await _expected(node, inp, username)
    try:
        async with asyncio.timeout(NODE_CHECK_TIMEOUT_S):
            async with open_session(
                view.address,
                username,
                private_key_secret=inp.private_key_secret,
                node_name=view.name,
            ) as host:
                seen = await _look(host, exp)
                if EXPORTER_MARKER.lower() in seen.present:
                    exp = dataclasses.replace(exp, exporter_installed=True)
    except WinfleetError as exc:
        unreachable = Finding(Check.UNREACHABLE, view.name, view.address, exc.message[:300])
        return _drift(node, username, exp, (unreachable,))
    except TimeoutError:
        detail = f"the check did not finish within {NODE_CHECK_TIMEOUT_S:.0f}s"
        unreachable = Finding(Check.UNREACHABLE, view.name, view.address, detail)
        return _drift(node, username, exp, (unreachable,))
    found = node_findings(exp, seen, datetime.now(UTC))
    return _drift(node, username, exp, found) if found else None


def _drift(node: JsonObject, username: str, exp: Expected, found: tuple[Finding, ...]) -> NodeDrift:
    view = node_view(node)
    return NodeDrift(
        node=view.name,
        address=view.address,
        username=username,
        findings=found,
        node_subnet=exp.node_subnet,
        version=exp.version,
        node_ip=facts(node).internal_ip or view.address,
    )


async def _usernames(inp: CheckNodesInput) -> dict[str, str]:
    if inp.platform != Platform.BYOH:
        return {}
    return {h.address: h.username for h in await byoh_hosts(())}


@activity.defn(name="check_nodes")
@boundary
async def check_nodes(inp: CheckNodesInput) -> CheckNodesResult:
    """Check one batch of the pool's nodes; only drifted nodes are named in the result."""
    listed = sorted(await pool_nodes(inp.pool), key=lambda n: str(n["metadata"]["name"]))
    skip = set(inp.skip)
    mine = [
        n
        for i, n in enumerate(listed)
        if i % max(inp.shards, 1) == inp.shard
        and node_view(n).name not in skip
        and (not inp.only or node_view(n).name in inp.only)
        and not node_view(n).deleting
    ]
    names = await _usernames(inp)
    gate = asyncio.Semaphore(CONCURRENCY)
    done = 0

    async def one(node: JsonObject) -> NodeDrift | None:
        nonlocal done
        address = node_view(node).address
        username = USERNAMES.get(inp.platform) or names.get(address, ByohHostSpec().username)
        async with gate:
            drift = await check_node(node, inp, username)
        done += 1
        activity.heartbeat(f"{done}/{len(mine)} nodes checked")
        return drift

    results = await heartbeating(asyncio.gather(*(one(n) for n in mine)))
    drifted = tuple(d for d in results if d is not None)
    for d in drifted:
        for f in d.findings:
            metrics.reconcile_finding(f.check.value)
    return CheckNodesResult(checked=len(mine), clean=len(mine) - len(drifted), drifted=drifted)
