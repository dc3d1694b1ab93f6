"""A node's desired state, hashed: what "drifted" means in one comparison, and which part did.

The parts: `version` (the payload version), `machine` (the machine spec it was created from:
AWS/Azure spec or the BYOH host), `payload` (that version's manifest), `cni` (the rendered
`cni.conf`) and `services` (hybrid-overlay's and kube-proxy's definitions; kube-proxy's source
VIP is observed on the host, not desired, so it is hashed as 0.0.0.0). The annotation
`winfleet.io/desired-hash` holds the hash of all parts, then each part's short hash:
`<hash>;version=1.1.0;machine=<h>;payload=<h>;cni=<h>;services=<h>`. Onboarding's finalize step
writes it (activities/node.py), drift checks compare it (activities/drift_check.py) and a
repair rewrites it. Pure, except `manifest_hash`, which reads the payload manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from activities import blocking
from activities.config import settings
from activities.contracts import AwsMachineSpec, AzureMachineSpec, ByohHostSpec, Platform
from activities.errors import InvalidRequest
from activities.windows import services
from activities.windows.cni import cni_config

PARTS = ("version", "machine", "payload", "cni", "services")
SHORT = 12  # hex digits of each part's hash: enough to tell versions apart, short to read
NO_VIP = "0.0.0.0"


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:SHORT]


def machine_hash(
    platform: Platform,
    aws: AwsMachineSpec | None = None,
    azure: AzureMachineSpec | None = None,
    byoh: ByohHostSpec | None = None,
) -> str:
    """The short hash of a node's machine spec (deterministic: safe inside a workflow)."""
    spec = {Platform.AWS: aws, Platform.AZURE: azure, Platform.BYOH: byoh}.get(platform)
    body = dataclasses.asdict(spec) if spec is not None else {}
    return _short(json.dumps({"platform": str(platform), **body}, sort_keys=True))


@dataclass(frozen=True)
class DesiredState:
    parts: tuple[tuple[str, str], ...]  # (part, value or short hash), in PARTS order

    def annotation(self) -> str:
        body = ";".join(f"{k}={v}" for k, v in self.parts)
        return f"{_short(body)};{body}"


def desired_state(
    *, version: str, machine: str, manifest: str, node: str, node_subnet: str, service_cidr: str
) -> DesiredState:
    """The desired state of `node`; ValueError when the subnet or CIDR is not a network."""
    services_text = "\n".join(
        (
            services.hybrid_overlay_service(node).definition().decode(),
            services.kube_proxy_service(node, node_subnet, NO_VIP).definition().decode(),
        )
    )
    return DesiredState(
        (
            ("version", version),
            ("machine", machine),
            ("payload", manifest),
            ("cni", _short(cni_config(node_subnet, service_cidr))),
            ("services", _short(services_text)),
        )
    )


def parse(annotation: str) -> tuple[str, dict[str, str]]:
    """(overall hash, parts) of an annotation value; ("", {}) when there is none."""
    head, _, body = annotation.partition(";")
    parts = dict(p.partition("=")[::2] for p in body.split(";") if "=" in p)
    return head, parts


def changed_parts(recorded: str, wanted: DesiredState) -> tuple[str, ...]:
    """The parts of `wanted` that differ from the annotation `recorded` ("" : none recorded)."""
    if not recorded:
        return ()
    head, parts = parse(recorded)
    if head == wanted.annotation().partition(";")[0]:
        return ()
    return tuple(k for k, v in wanted.parts if parts.get(k) != v)


_manifests: dict[tuple[str, int, int], str] = {}


def _manifest_hash(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _manifests:
        _manifests[key] = _short(path.read_text())
    return _manifests[key]


async def manifest_hash(version: str) -> str:
    """The short hash of `version`'s payload manifest ("" if the worker does not hold it)."""
    try:
        path = settings().payload_dir_for(version) / "sha256sum"
        return await blocking.run(_manifest_hash, path)
    except (InvalidRequest, OSError):
        return ""


async def for_node(*, node: str, version: str, machine: str, node_subnet: str) -> DesiredState:
    """`desired_state` with the manifest and service CIDR the worker holds."""
    return desired_state(
        version=version,
        machine=machine,
        manifest=await manifest_hash(version),
        node=node,
        node_subnet=node_subnet,
        service_cidr=settings().service_cidr,
    )
