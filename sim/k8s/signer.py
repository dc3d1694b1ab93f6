"""The CSR signer of the SIMULATED cluster (stand-in for kube-controller-manager's signers).

Signs approved CertificateSigningRequests for kubernetes.io/kube-apiserver-client-kubelet and
kubernetes.io/kubelet-serving with the twin CA, after the same shape checks the real signers
make; a request that fails them gets a `Failed` condition (reason SignerValidationFailure)
instead of a certificate:
- client-kubelet: O exactly [system:nodes], CN system:node:<name>, no SANs, usages within
  {digital signature, key encipherment, client auth} and including client auth;
- kubelet-serving: O exactly [system:nodes], CN system:node:<name>, at least one DNS or IP SAN,
  no email/URI SANs, usages within {digital signature, key encipherment, server auth} and
  including server auth.
Called by `sim.k8s.controllers` when a CSR becomes Approved.
"""

from __future__ import annotations

import base64
import copy

from cryptography import x509
from cryptography.x509.oid import NameOID

from sim.k8s.api import Api, now_iso
from sim.pki import CertificateAuthority

CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
SIGNERS = frozenset({CLIENT_KUBELET, KUBELET_SERVING})
_ALLOWED = {
    CLIENT_KUBELET: ({"digital signature", "key encipherment", "client auth"}, "client auth"),
    KUBELET_SERVING: ({"digital signature", "key encipherment", "server auth"}, "server auth"),
}


def validate(signer: str, csr_pem: bytes, usages: list[str]) -> None:
    """Raise ValueError (with the reason) if the request does not fit `signer`."""
    csr = x509.load_pem_x509_csr(csr_pem)
    orgs = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if orgs != ["system:nodes"]:
        raise ValueError(f"subject organization is not system:nodes: {orgs}")
    if not cns or not str(cns[0].value).startswith("system:node:"):
        raise ValueError("subject common name does not begin with system:node:")
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    hosts = sans.get_values_for_type(x509.DNSName) + sans.get_values_for_type(x509.IPAddress)
    other = sans.get_values_for_type(x509.RFC822Name) + sans.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    if signer == CLIENT_KUBELET and (hosts or other):
        raise ValueError("DNS, IP, email and URI subjectAltNames are not allowed")
    if signer == KUBELET_SERVING and (other or not hosts):
        raise ValueError("a DNS or IP subjectAltName is required; email and URI are not allowed")
    allowed, required = _ALLOWED[signer]
    if not set(usages) <= allowed or required not in usages:
        raise ValueError(f"usages did not match {sorted(allowed)}: {usages}")


def sign(api: Api, ca: CertificateAuthority, name: str) -> None:
    """Issue the certificate for approved CSR `name`, or mark it Failed."""
    rt = api.registry.get("certificates.k8s.io", "v1", "certificatesigningrequests")
    entry = api.store.entry(("certificates.k8s.io", "certificatesigningrequests"), "", name)
    if rt is None or entry is None or (entry.obj.get("status") or {}).get("certificate"):
        return
    csr = copy.deepcopy(entry.obj)
    spec = csr.get("spec") or {}
    status = csr.setdefault("status", {})
    days = max(1, int(spec.get("expirationSeconds") or 365 * 86400) // 86400)
    usages = list(spec.get("usages") or [])
    try:
        pem = base64.b64decode(spec["request"])
        validate(spec.get("signerName", ""), pem, usages)
        status["certificate"] = base64.b64encode(ca.sign_csr(pem, usages, days=days)).decode()
    except (ValueError, KeyError) as exc:
        now = now_iso()
        status.setdefault("conditions", []).append(
            {
                "type": "Failed",
                "status": "True",
                "reason": "SignerValidationFailure",
                "message": str(exc),
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            }
        )
    api.update(rt, "", name, csr, sub="status")
