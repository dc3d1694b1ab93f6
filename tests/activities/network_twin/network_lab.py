"""The test lab for the kubelet, network and deconfigure activity tests (see conftest.py).

A Kubernetes API twin (with its Machine Config Server) and a fleet of simulated Windows hosts
on 127.6.0.0/16 port 22 that trust the twin's CA; the operator key in Secret
`cloud-private-key`. `Cluster.add_host()` powers on a host that trusts that key, with the
stand-in payload already in `C:\\k` (the payload copy has its own tests); `Cluster.join()`
approves a node's CSRs as the CSR activity would; `target()` is the host part of every input.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
from kubernetes import client

from activities import kube
from activities.keys import public_key_openssh
from sim.k8s.server import KubeTwin
from sim.windows.fleet import HostFleet, HostSpec
from sim.windows.host import SimulatedWindowsHost

NAMESPACE = "winfleet"
KEY_SECRET = "cloud-private-key"
CSRS = ("certificates.k8s.io", "certificatesigningrequests")
NODES = ("", "nodes")
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
_numbers = itertools.count(os.getpid() * 41 % 60000)
T = TypeVar("T")


def fresh_address() -> str:
    """An unused address in 127.6.0.0/16 (each test's hosts get their own)."""
    n = next(_numbers) % (254 * 254)
    return f"127.6.{n // 254 + 1}.{n % 254 + 1}"


async def eventually(what: str, probe: Callable[[], T | None], within: float = 20.0) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def target(host: SimulatedWindowsHost, node: str) -> dict[str, str]:
    """The fields every host activity input starts with."""
    return {
        "node_name": node,
        "address": host.address,
        "username": "Administrator",
        "private_key_secret": KEY_SECRET,
    }


@dataclass
class Cluster:
    twin: KubeTwin
    fleet: HostFleet
    key: asyncssh.SSHKey
    payload_dir: Path
    hosts: list[SimulatedWindowsHost] = field(default_factory=list)

    async def add_host(self, hostname: str, *, payload: bool = True) -> SimulatedWindowsHost:
        host = await self.fleet.add_host(
            HostSpec(fresh_address(), hostname, authorized_keys=(public_key_openssh(self.key),))
        )
        await host.wait_up()
        if payload:
            self.install_payload(host)
        self.hosts.append(host)
        return host

    def install_payload(self, host: SimulatedWindowsHost) -> None:
        """Put the stand-in payload in C:\\k, as the payload copy activity would."""
        target = host.root / "C" / "k"
        for src in self.payload_dir.rglob("*"):
            if src.is_file():
                dst = target / src.relative_to(self.payload_dir)
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())

    def csrs(self, signer: str) -> list[dict[str, Any]]:
        return [
            e.obj for e in self.twin.store.entries(CSRS) if e.obj["spec"]["signerName"] == signer
        ]

    def node(self, name: str) -> dict[str, Any] | None:
        entry = self.twin.store.entry(NODES, "", name)
        return entry.obj if entry else None

    def node_ready(self, name: str) -> bool:
        for cond in (self.node(name) or {}).get("status", {}).get("conditions", []):
            if cond["type"] == "Ready":
                return bool(cond["status"] == "True")
        return False

    async def approve(self, csr: dict[str, Any]) -> None:
        """Approve a CSR through the API, as the CSR activity would (its rules tested apart)."""
        name = csr["metadata"]["name"]
        body = client.V1CertificateSigningRequest(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1CertificateSigningRequestSpec(
                request=csr["spec"]["request"], signer_name=csr["spec"]["signerName"]
            ),
            status=client.V1CertificateSigningRequestStatus(
                conditions=[
                    client.V1CertificateSigningRequestCondition(
                        type="Approved", status="True", reason="WMCOApprove", message="test"
                    )
                ]
            ),
        )
        await kube.call(
            "approve csr",
            kube.certificates().replace_certificate_signing_request_approval,
            name,
            body,
        )

    async def join(self, node: str) -> None:
        """Approve the node's client CSR, wait for the Node, approve its serving CSR."""
        client_csr = await eventually(
            "a client CSR", lambda: self._pending(CLIENT_SIGNER), within=20
        )
        await self.approve(client_csr)
        await eventually(f"Node {node}", lambda: self.node(node))
        serving = await eventually("a serving CSR", lambda: self._pending(SERVING_SIGNER))
        await self.approve(serving)

    async def serving_certificate(
        self, host: SimulatedWindowsHost, node: str, within: float = 30.0
    ) -> None:
        """Approve `node`'s serving CSRs until its kubelet holds the certificate: a kubelet
        restarted (`wmcb configure-cni` restarts it) before it fetched an approved certificate
        asks again with a new CSR, as the real one does, and the approver approves that too."""
        pem = host.root / "C" / "var" / "lib" / "kubelet" / "pki" / "kubelet-server-current.pem"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not pem.is_file():
            for csr in self.csrs(SERVING_SIGNER):
                if csr["spec"].get("username") == f"system:node:{node}" and not _approved(csr):
                    await self.approve(csr)
            assert loop.time() < deadline, f"timed out waiting for {node}'s serving certificate"
            await asyncio.sleep(0.1)

    def _pending(self, signer: str) -> dict[str, Any] | None:
        for e in self.twin.store.entries(CSRS):
            if e.obj["spec"]["signerName"] == signer and not _approved(e.obj):
                return e.obj
        return None


def _approved(csr: dict[str, Any]) -> bool:
    return any(c["type"] == "Approved" for c in csr.get("status", {}).get("conditions", []))
