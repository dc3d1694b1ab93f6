"""The simulated kubelet keeps its bootstrap key on disk the way the real one does.

k8s.io/kubernetes pkg/kubelet/certificate/bootstrap: the key of the client CSR waits in
`<cert-dir>\\kubelet-client.key.tmp` until the certificate is issued (a restart before that
reuses it, and with it the CSR, named `node-csr-<digest>`); then cert and key go to
`kubelet-client-current.pem` and the .tmp file is removed. Read over SFTP, as winfleet does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sim.k8s.mcs import worker_ignition
from sim.k8s.server import KubeTwin
from sim.windows.fleet import HostFleet, HostSpec
from sim.windows.host import SimulatedWindowsHost
from tests.sim_windows.conftest import connect, install_payload, next_address
from tests.sim_windows.test_kubelet_flow import approve, csrs, eventually, run

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
BOOTSTRAP_KEY = "/C:/var/lib/kubelet/pki/kubelet-client.key.tmp"
CURRENT = "/C:/var/lib/kubelet/pki/kubelet-client-current.pem"


def spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


async def read(conn: asyncssh.SSHClientConnection, path: str) -> bytes | None:
    async with conn.start_sftp_client() as sftp:
        if not await sftp.exists(path):
            return None
        async with sftp.open(path, "rb") as f:
            return bytes(await f.read())


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[KubeTwin]:
    twin = await KubeTwin(tmp_path / "k8s").start()
    yield twin
    await twin.stop()


@pytest.fixture
async def joined(
    tmp_path: Path, twin: KubeTwin, payload: Path
) -> tuple[SimulatedWindowsHost, asyncssh.SSHKey, HostFleet]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    fleet = HostFleet(tmp_path / "fleet", kube_ca_pem=twin.ca.ca_pem)
    await fleet.start()
    host = await fleet.add_host(
        HostSpec(next_address(), "WIN-KEY1", authorized_keys=(key.export_public_key().decode(),))
    )
    install_payload(host, payload)
    ign = worker_ignition(twin.url, twin.ca.ca_pem, twin.bootstrap_token)
    (host.root / "C" / "k" / "worker.ign").write_text(json.dumps(ign))
    return host, key, fleet


async def test_the_client_csr_key_waits_on_disk_until_the_certificate_is_issued(
    twin: KubeTwin, joined: tuple[SimulatedWindowsHost, asyncssh.SSHKey, HostFleet]
) -> None:
    host, key, fleet = joined
    try:
        async with await connect(host, key) as conn:
            await run(
                conn,
                r"C:\k\wmcb.exe initialize-kubelet --ignition-file C:\k\worker.ign "
                r"--kubelet-path C:\k\kubelet.exe",
            )
            (pending,) = await eventually("a client CSR", lambda: csrs(twin, CLIENT_SIGNER))
            assert pending["metadata"]["name"].startswith("node-csr-")
            key_pem = await read(conn, BOOTSTRAP_KEY)
            assert key_pem is not None and b"PRIVATE KEY" in key_pem
            request = x509.load_pem_x509_csr(base64.b64decode(pending["spec"]["request"]))
            on_disk = serialization.load_pem_private_key(key_pem, password=None)
            assert spki(request.public_key()) == spki(on_disk.public_key())

            # A restart before issuance reuses the key, and so finds its own CSR again.
            await run(conn, "sc.exe stop kubelet")
            await run(conn, "sc.exe start kubelet")
            assert await read(conn, BOOTSTRAP_KEY) == key_pem
            assert [c["metadata"]["name"] for c in csrs(twin, CLIENT_SIGNER)] == [
                pending["metadata"]["name"]
            ]

            await approve(twin, pending["metadata"]["name"])
            current = await eventually("the issued certificate", lambda: _current(host))
            assert await read(conn, BOOTSTRAP_KEY) is None
            issued = x509.load_pem_x509_certificate(current)
            assert spki(issued.public_key()) == spki(on_disk.public_key())
            assert await read(conn, CURRENT) == current
    finally:
        await fleet.stop()


def _current(host: SimulatedWindowsHost) -> bytes | None:
    path = host.root / "C" / "var" / "lib" / "kubelet" / "pki" / "kubelet-client-current.pem"
    return path.read_bytes() if path.is_file() else None
