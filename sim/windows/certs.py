"""Certificate requests of the SIMULATED kubelet (cryptography + certificates.k8s.io/v1).

`new_key_and_csr` makes an ECDSA P-256 key and a PKCS#10 request (CN `system:node:<name>`,
O `system:nodes`, optional SANs); `request_certificate` POSTs it as a CertificateSigningRequest
and polls (about once a second) until the signer has filled `status.certificate`, re-creating
the request if it is deleted and failing if it is denied. Used by `kubelet.py`.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}"),
            ]
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


async def request_certificate(
    client: KubeClient,
    csr_pem: bytes,
    signer: str,
    usages: list[str],
    poll_seconds: float = POLL_SECONDS,
) -> bytes:
    """Create a CSR and wait for its certificate (PEM). Transport errors are retried."""
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
    name: str | None = None
    while True:
        try:
            if name is None:
                body["metadata"]["name"] = f"csr-{secrets.token_hex(3)}"  # type: ignore[index]
                status, obj = await client.post(CSR_PATH, body)
                if status in (200, 201):
                    name = obj["metadata"]["name"]
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
