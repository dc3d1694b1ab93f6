"""Certificate requests of the SIMULATED kubelet (cryptography + certificates.k8s.io/v1).

`new_key_and_csr` makes an ECDSA P-256 key and a PKCS#10 request (CN `system:node:<name>`,
O `system:nodes`, optional SANs); `request_certificate` POSTs it as a CertificateSigningRequest
and polls (about once a second) until the signer has filled `status.certificate`, re-creating
the request if it is deleted and failing if it is denied. The client bootstrap works like the
real kubelet's (k8s.io/kubernetes pkg/kubelet/certificate/bootstrap): `load_or_generate_key`
keeps the key in `kubelet-client.key.tmp` until the certificate is issued (a restart reuses it),
and the client CSR is named `node-csr-<digest of key, subject and usages>` (`digested_name`),
so a restarted kubelet finds its own pending request again. Used by `kubelet.py`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sim.pki import make_csr
from sim.windows.kubeapi import KubeClient, KubeUnreachable

CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
CLIENT_USAGES = ["digital signature", "key encipherment", "client auth"]
SERVING_USAGES = ["digital signature", "key encipherment", "server auth"]
POLL_SECONDS = 1.0


class CsrDenied(Exception):
    """The cluster denied (or failed) the request: the kubelet gives up, as the real one would."""


def new_key_and_csr(
    node_name: str, dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = ()
) -> tuple[bytes, bytes]:
    """(key PEM, CSR PEM) for `system:node:<node_name>` in group `system:nodes`."""
    key_pem = _new_key_pem()
    return key_pem, csr_for(key_pem, node_name, dns_names, ips)


def _new_key_pem() -> bytes:
    """An ECDSA P-256 key as `EC PRIVATE KEY` PEM (what client-go's keyutil generates)."""
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def load_or_generate_key(path: Path) -> bytes:
    """The key PEM in `path`, or a new one written there (keyutil.LoadOrGenerateKeyFile)."""
    if path.is_file():
        data = path.read_bytes()
        try:
            serialization.load_pem_private_key(data, password=None)
            return data
        except ValueError:
            pass  # unreadable: generate a new one, as the real kubelet does
    key_pem = _new_key_pem()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key_pem)
    return key_pem


def digested_name(key_pem: bytes, node_name: str, usages: list[str]) -> str:
    """`node-csr-...`: SHA-512/256 over key, CN, O and usages, as kubelet names its client CSR."""
    digest = hashlib.new("sha512_256")
    for part in (key_pem, f"system:node:{node_name}".encode(), b"system:nodes", *usages):
        chunk = part if isinstance(part, bytes) else part.encode()
        digest.update(base64.urlsafe_b64encode(chunk).rstrip(b"=") + b"|")
    return "node-csr-" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def csr_for(
    key_pem: bytes, node_name: str, dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = ()
) -> bytes:
    """A PKCS#10 request (PEM) for `system:node:<node_name>` in `system:nodes`, by `key_pem`."""
    return make_csr(key_pem, f"system:node:{node_name}", ("system:nodes",), dns_names, ips)


async def request_certificate(
    client: KubeClient,
    csr_pem: bytes,
    signer: str,
    usages: list[str],
    poll_seconds: float = POLL_SECONDS,
    name: str | None = None,
) -> bytes:
    """Create a CSR and wait for its certificate (PEM). Transport errors are retried.

    With `name`, an existing CSR of that name is this requester's own (client-go's
    RequestCertificate on AlreadyExists): it is waited for, not created again.
    """
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": f"csr-{secrets.token_hex(3)}"},
        "spec": {
            "request": base64.b64encode(csr_pem).decode(),
            "signerName": signer,
            "usages": usages,
        },
    }
    fixed, name = name, None
    while True:
        try:
            if name is None:
                body["metadata"]["name"] = fixed or f"csr-{secrets.token_hex(3)}"  # type: ignore[index]
                status, obj = await client.post(CSR_PATH, body)
                if status in (200, 201):
                    name = obj["metadata"]["name"]
                elif status == 409 and fixed:
                    name = fixed
                elif status != 409:
                    raise KubeUnreachable(f"CSR create answered {status}: {obj}")
            else:
                status, obj = await client.get(f"{CSR_PATH}/{name}")
                if status == 404:
                    name = None
                elif status == 200:
                    st = obj.get("status") or {}
                    for cond in st.get("conditions") or []:
                        if cond.get("type") in ("Denied", "Failed"):
                            raise CsrDenied(
                                f"CSR {name} {cond.get('type').lower()}: {cond.get('message', '')}"
                            )
                    if st.get("certificate"):
                        return base64.b64decode(st["certificate"])
        except KubeUnreachable:
            pass
        await asyncio.sleep(poll_seconds)
