"""A small certificate authority for the SIMULATED cluster, clouds and hosts.

Used by the Kubernetes API server twin (`sim.k8s`) for its serving certificate, client
certificates and the CSR signer, and reusable by the other twins (Azure ARM endpoint, simulated
Windows hosts) so every simulated endpoint chains to one trust root. Never used by the product.

Keys are ECDSA P-256: fast to generate, accepted by OpenSSL, Go and Python TLS stacks.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_BACKDATE = datetime.timedelta(minutes=5)

# Kubernetes CSR usage names -> what they mean in X.509 terms.
_KEY_USAGES = {"digital signature", "key encipherment", "signing"}
_EXT_USAGES = {
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str, orgs: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _sans(dns_names: Iterable[str], ip_addresses: Iterable[str]) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    return sans


def new_private_key_pem() -> bytes:
    """A fresh ECDSA P-256 private key (PKCS#8 PEM), e.g. for a simulated kubelet's CSR."""
    return _key_pem(ec.generate_private_key(ec.SECP256R1()))


def make_csr(
    key_pem: bytes,
    cn: str,
    orgs: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
) -> bytes:
    """A PEM certificate signing request for `key_pem` (what a kubelet would send)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(cn, orgs))
    sans = _sans(dns_names, ip_addresses)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class CertificateAuthority:
    """A self-signed CA that issues server, client and CSR-requested leaf certificates."""

    def __init__(self, common_name: str = "winfleet-sim-ca", days: int = 3650) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        name = _name(common_name)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem: bytes = self._cert.public_bytes(serialization.Encoding.PEM)
        self.ca_key_pem: bytes = _key_pem(self._key)

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    def _issue(
        self,
        subject: x509.Name,
        public_key: object,
        *,
        server: bool,
        client: bool,
        sans: list[x509.GeneralName],
        days: int,
    ) -> bytes:
        now = _now()
        ext_usages = []
        if server:
            ext_usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            ext_usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if ext_usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ext_usages), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM)

    def issue_server_cert(
        self,
        dns_names: Sequence[str] = ("localhost",),
        ip_addresses: Sequence[str] = ("127.0.0.1",),
        days: int = 365,
    ) -> tuple[bytes, bytes]:
        """(cert_pem, key_pem) for a TLS server reachable by those names/addresses."""
        key = ec.generate_private_key(ec.SECP256R1())
        cn = dns_names[0] if dns_names else (ip_addresses[0] if ip_addresses else "server")
        cert = self._issue(
            _name(cn),
            key.public_key(),
            server=True,
            client=False,
            sans=_sans(dns_names, ip_addresses),
            days=days,
        )
        return cert, _key_pem(key)

    def issue_client_cert(
        self, cn: str, orgs: Sequence[str] = (), days: int = 365
    ) -> tuple[bytes, bytes]:
        """(cert_pem, key_pem) for a TLS client; Kubernetes reads user=CN, groups=O."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(
            _name(cn, orgs), key.public_key(), server=False, client=True, sans=[], days=days
        )
        return cert, _key_pem(key)

    def sign_csr(
        self, csr_pem: bytes, usages: Sequence[str] = ("client auth",), days: int = 365
    ) -> bytes:
        """Sign a PEM CSR; subject (CN/O) and SANs come from the CSR, usages from Kubernetes."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("CSR signature is invalid")
        try:
            san_ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            sans = list(san_ext.value)
        except x509.ExtensionNotFound:
            sans = []
        unknown = set(usages) - _KEY_USAGES - set(_EXT_USAGES)
        if unknown:
            raise ValueError(f"unsupported usages: {sorted(unknown)}")
        return self._issue(
            csr.subject,
            csr.public_key(),
            server="server auth" in usages,
            client="client auth" in usages,
            sans=sans,
            days=days,
        )

    def verify(self, cert_pem: bytes) -> x509.Certificate:
        """Parse `cert_pem` and check it was signed by this CA (raises if not)."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        cert.verify_directly_issued_by(self._cert)
        return cert

    def write(self, directory: str | Path) -> Path:
        """Write ca.crt and ca.key into `directory`; returns the ca.crt path."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "ca.crt").write_bytes(self.ca_pem)
        key_path = d / "ca.key"
        key_path.write_bytes(self.ca_key_pem)
        key_path.chmod(0o600)
        return d / "ca.crt"
