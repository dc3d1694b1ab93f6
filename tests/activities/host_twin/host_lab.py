"""The test lab for the SSH, payload and host activity tests (see conftest.py's `lab`).

A Kubernetes API twin plus a fleet of simulated Windows hosts on 127.4.0.0/16 port 22, and the
operator key stored in Secret `cloud-private-key`; helpers to add hosts, create Nodes, read pins
and lay out a payload.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from kubernetes import client

from activities import cache, kube
from activities.keys import public_key_openssh
from sim.k8s.server import KubeTwin
from sim.windows.fleet import HostFleet, HostSpec
from sim.windows.host import SimulatedWindowsHost

NAMESPACE = "winfleet"
KEY_SECRET = "cloud-private-key"
SEEN_WITHIN_S = 10.0
_numbers = itertools.count(os.getpid() * 37 % 60000)


def fresh_address() -> str:
    """An unused address in 127.4.0.0/16 (each test's hosts get their own)."""
    n = next(_numbers) % (254 * 254)
    return f"127.4.{n // 254 + 1}.{n % 254 + 1}"


@dataclass
class Lab:
    twin: KubeTwin
    fleet: HostFleet
    key: asyncssh.SSHKey
    payload_dir: Path
    hosts: list[SimulatedWindowsHost] = field(default_factory=list)

    async def add_host(self, hostname: str = "winworker-1", **spec: Any) -> SimulatedWindowsHost:
        spec.setdefault("authorized_keys", (public_key_openssh(self.key),))
        host = await self.fleet.add_host(HostSpec(fresh_address(), hostname, **spec))
        self.hosts.append(host)
        return host

    async def create_node(self, name: str) -> None:
        """Create the Node and wait until the worker's cache has it (as a Node registered
        seconds before winfleet's next session would be)."""
        body = client.V1Node(metadata=client.V1ObjectMeta(name=name))
        await kube.call("create node", kube.core().create_node, body)
        deadline = time.monotonic() + SEEN_WITHIN_S
        while await cache.node(name) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker's cache never saw node {name}")
            await asyncio.sleep(0.02)

    async def node_annotations(self, name: str) -> dict[str, str]:
        node = await kube.call("read node", kube.core().read_node, name)
        return dict(node.metadata.annotations or {})

    async def pinned_in_configmap(self) -> dict[str, str]:
        try:
            cm = await kube.call(
                "read cm",
                kube.core().read_namespaced_config_map,
                "windows-ssh-host-keys",
                NAMESPACE,
            )
        except kube.NotFound:
            return {}
        return dict(cm.data or {})

    def write_payload(self, files: dict[str, bytes]) -> dict[str, str]:
        """Lay out payload files plus their `sha256sum`; returns path → sha256."""
        hashes = {}
        for rel, data in files.items():
            target = self.payload_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            hashes[rel] = hashlib.sha256(data).hexdigest()
        manifest = "".join(f"{h}  {rel}\n" for rel, h in hashes.items())
        (self.payload_dir / "sha256sum").write_text(manifest)
        return hashes
