"""Callers of the Kubernetes API twin, for the CSR and Node activity tests.

`Caller` talks to the twin as one identity (admin token, bootstrap token or a node's client
certificate), the way kubelet or an impostor would; every call runs in a thread because the twin
serves on the test's own event loop. `eventually` waits on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from sim.k8s.server import KubeTwin
from sim.pki import make_csr, new_private_key_pem
from sim.windows.host import SimulatedWindowsHost

NAMESPACE = "winfleet"
KUBELET_IP = "127.5.0.7"
KUBELET_HOSTNAME = "WINWORKER-7"
PKI = "C/var/lib/kubelet/pki"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
CLIENT_USAGES = ("digital signature", "key encipherment", "client auth")
SERVING_USAGES = ("digital signature", "key encipherment", "server auth")


OPEN_CLIENTS: list[client.ApiClient] = []  # closed by the `twin` fixture


class Caller:
    """One identity's view of the twin's API."""

    def __init__(
        self,
        twin: KubeTwin,
        workdir: Path,
        *,
        token: str = "",
        cert: tuple[bytes, bytes] | None = None,
    ) -> None:
        ca = workdir / "ca.crt"
        ca.write_bytes(twin.ca.ca_pem)
        cfg = client.Configuration(host=twin.url, ssl_ca_cert=str(ca))
        if token:
            cfg.api_key = {"authorization": f"Bearer {token}"}
        if cert is not None:
            n = len(list(workdir.glob("client-*.crt")))
            cert_file, key_file = workdir / f"client-{n}.crt", workdir / f"client-{n}.key"
            cert_file.write_bytes(cert[0])
            key_file.write_bytes(cert[1])
            cfg.cert_file, cfg.key_file = str(cert_file), str(key_file)
        self.api = client.ApiClient(cfg)
        OPEN_CLIENTS.append(self.api)
        self.core = client.CoreV1Api(self.api)
        self.certs = client.CertificatesV1Api(self.api)

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call `fn` in a thread; the reply as JSON (the typed models are too strict)."""

        def call() -> Any:
            response = fn(*args, _preload_content=False, **kwargs)
            body = response.data
            response.release_conn()
            return json.loads(body or b"null")

        return await asyncio.to_thread(call)

    async def create_csr(
        self,
        name: str,
        node: str,
        *,
        signer: str = CLIENT_SIGNER,
        usages: tuple[str, ...] = CLIENT_USAGES,
        orgs: tuple[str, ...] = ("system:nodes",),
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        cn: str | None = None,
        key_pem: bytes | None = None,
        request_pem: bytes | None = None,
    ) -> str:
        """Create a CSR: made from the arguments (and `key_pem`, else a new key), or exactly
        `request_pem` (a hand-built request)."""
        pem = request_pem or make_csr(
            key_pem or new_private_key_pem(), cn or f"system:node:{node}", orgs, dns, ips
        )
        body = client.V1CertificateSigningRequest.from_dict(
            {
                "apiVersion": "certificates.k8s.io/v1",
                "kind": "CertificateSigningRequest",
                "metadata": {"name": name},
                "spec": {
                    "request": base64.b64encode(pem).decode(),
                    "signerName": signer,
                    "usages": list(usages),
                },
            }
        )
        await self.run(self.certs.create_certificate_signing_request, body)
        return name

    async def create_node(
        self, name: str, *, ip: str, os: str = "windows", unschedulable: bool = False
    ) -> None:
        body = client.V1Node.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {"kubernetes.io/os": os, "node.openshift.io/os_id": "Windows"},
                },
                "spec": {
                    "unschedulable": unschedulable,
                    "taints": [{"key": "os", "value": "Windows", "effect": "NoSchedule"}],
                },
            }
        )
        await self.run(self.core.create_node, body)
        await self.set_ready(name, ready=False, ip=ip)

    async def set_ready(self, name: str, *, ready: bool, ip: str) -> None:
        status = {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {"kubeletVersion": "v1.31.4", "operatingSystem": "windows"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                    "message": "kubelet is posting ready status" if ready else "CNI not configured",
                }
            ],
        }
        await self.run(
            self.core.patch_node_status,
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    async def annotate_node(self, name: str, annotations: dict[str, str]) -> None:
        await self.run(
            self.core.patch_node,
            name,
            {"metadata": {"annotations": annotations}},
            _content_type="application/merge-patch+json",
        )


class KubeletHost:
    """The simulated host a node runs on; tests play its kubelet's part on its disk."""

    def __init__(self, host: SimulatedWindowsHost) -> None:
        self.host = host
        self.pki = host.root / PKI

    def keep_bootstrap_key(self, key_pem: bytes) -> None:
        """As kubelet does before it sends its client CSR: the key waits in a .tmp file."""
        self.pki.mkdir(parents=True, exist_ok=True)
        (self.pki / "kubelet-client.key.tmp").write_bytes(key_pem)

    def certificate_issued(self, cert_pem: bytes, key_pem: bytes) -> None:
        """As kubelet does once its certificate is issued: -current.pem, and no .tmp key."""
        (self.pki / "kubelet-client-current.pem").write_bytes(cert_pem + key_pem)
        (self.pki / "kubelet-client.key.tmp").unlink(missing_ok=True)


async def eventually(what: str, check: Callable[[], Any], within: float = 10.0) -> Any:
    """Wait (on a deadline, not a sleep) until `check()` returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def events_for(twin: KubeTwin, reason: str, name: str) -> list[dict[str, Any]]:
    """The twin's Events with this reason about the object called `name`."""
    return [
        e
        for e in twin.store.list("events", NAMESPACE)
        if e.get("reason") == reason and e["involvedObject"].get("name") == name
    ]
