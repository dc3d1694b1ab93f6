"""Which node CSRs winfleet approves: a table of real PKCS#10 requests and their verdicts."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any

import csr_forge as forge
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from activities.csr_rules import (
    CLIENT_SIGNER,
    NODE_BOOTSTRAPPER,
    NOT_OURS,
    SERVING_SIGNER,
    ExpectedNode,
    claimed_node,
    validate,
)

NODE = "winworker-1"
IP = "10.0.5.7"
KEY = ec.generate_private_key(ec.SECP256R1())  # the key the kubelet on the host bootstraps with
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
EXPECTED = ExpectedNode(
    NODE,
    addresses=(IP,),
    dns_names=(NODE,),
    client_key=KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ),
)


@dataclass(frozen=True)
class Req:
    """A CSR as a kubelet (or an impostor) would send it, and who the API server says sent it."""

    cn: str = f"system:node:{NODE}"
    orgs: tuple[str, ...] = ("system:nodes",)
    extra_subject: tuple[tuple[x509.ObjectIdentifier, str], ...] = ()
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    signer: str = CLIENT_SIGNER
    usages: tuple[str, ...] = ("digital signature", "key encipherment", "client auth")
    username: str = NODE_BOOTSTRAPPER
    groups: tuple[str, ...] = (
        "system:serviceaccounts",
        "system:serviceaccounts:openshift-machine-config-operator",
        "system:authenticated",
    )
    conditions: tuple[dict[str, str], ...] = field(default=())
    request_override: str | None = None
    key: ec.EllipticCurvePrivateKey = KEY

    def obj(self) -> dict[str, Any]:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in self.orgs]
        attrs += [x509.NameAttribute(oid, v) for oid, v in self.extra_subject]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, self.cn))
        builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in self.dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in self.ips]
        sans += [x509.RFC822Name(e) for e in self.emails]
        sans += [x509.UniformResourceIdentifier(u) for u in self.uris]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        pem = builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        request = self.request_override or base64.b64encode(pem).decode()
        return {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": "csr-test", "uid": "u-1"},
            "spec": {
                "request": request,
                "signerName": self.signer,
                "usages": list(self.usages),
                "username": self.username,
                "groups": list(self.groups),
            },
            "status": {"conditions": list(self.conditions)} if self.conditions else {},
        }


CLIENT = Req()
BOOTSTRAP_TOKEN_CLIENT = replace(
    CLIENT, username="system:bootstrap:abcdef", groups=("system:bootstrappers",)
)
SERVING = Req(
    dns=(NODE,),
    ips=(IP,),
    signer=SERVING_SIGNER,
    usages=("digital signature", "key encipherment", "server auth"),
    username=f"system:node:{NODE}",
    groups=("system:nodes", "system:authenticated"),
)
APPROVED = {"type": "Approved", "status": "True", "reason": "Someone"}
DENIED = {"type": "Denied", "status": "True", "reason": "Someone"}


def forged(pem: bytes) -> str:
    """spec.request for a hand-built PEM request."""
    return base64.b64encode(pem).decode()


T61_ORG = forged(forge.request_pem(KEY, forge.node_subject(NODE, org=forge.t61(b"syst\xe8me"))))
T61_CN = forge.seq(
    forge.attribute(forge.ORGANIZATION, forge.utf8("system:nodes")),
    forge.attribute(forge.COMMON_NAME, forge.t61(f"system:node:{NODE}\xe9".encode("latin-1"))),
)
ASCII_T61_CN = forge.seq(
    forge.attribute(forge.ORGANIZATION, forge.utf8("system:nodes")),
    forge.attribute(forge.COMMON_NAME, forge.t61(f"system:node:{NODE}".encode())),
)


def _with_sans(*names: bytes) -> str:
    san = forge.extension(forge.SAN, forge.seq(forge.dns_name(NODE), *names))
    return forged(forge.request_pem(KEY, forge.node_subject(NODE), (san,)))


X400_SAN = _with_sans(forge.x400_address())
EDI_SAN = _with_sans(forge.edi_party_name())
BROKEN_KEY_USAGE = forged(
    forge.request_pem(
        KEY, forge.node_subject(NODE), (forge.extension(forge.KEY_USAGE, b"\x01\x02junk"),)
    )
)
TWO_SAN_EXTENSIONS = forged(
    forge.request_pem(
        KEY,
        forge.node_subject(NODE),
        (
            forge.extension(forge.SAN, forge.seq(forge.dns_name(NODE))),
            forge.extension(forge.SAN, forge.seq(forge.dns_name(NODE))),
        ),
    )
)
PEM_OF_GARBAGE = forged(
    b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
)

# (sentence, request, node exists, expected kind, approve, words the reason must contain)
TABLE: list[tuple[str, Req, bool, str | None, bool, str]] = [
    ("kubelet's client CSR via node-bootstrapper is approved", CLIENT, False, "client", True, ""),
    ("a client CSR sent with a bootstrap token is approved",
     BOOTSTRAP_TOKEN_CLIENT, False, "client", True, ""),
    ("kubelet's serving CSR with its own IP and hostname is approved",
     SERVING, True, "serving", True, ""),
    ("a serving CSR with only the IP SAN is approved",
     replace(SERVING, dns=()), True, "serving", True, ""),
    ("a CSR for another node is not ours",
     replace(CLIENT, cn="system:node:linux-0"), False, None, False, NOT_OURS),
    ("a CSR whose CN is not a node identity is not ours",
     replace(CLIENT, cn="winworker-1"), False, None, False, NOT_OURS),
    ("a client CSR for a node that already exists is refused",
     CLIENT, True, "client", False, "already exists"),
    ("a client CSR with an extra organization is refused",
     replace(CLIENT, orgs=("system:nodes", "system:masters")), False, "client", False,
     "organization"),
    ("a client CSR without organization is refused",
     replace(CLIENT, orgs=()), False, "client", False, "organization"),
    ("a client CSR with an organizational unit is refused",
     replace(CLIENT, extra_subject=((NameOID.ORGANIZATIONAL_UNIT_NAME, "x"),)), False,
     "client", False, "attributes other than CN and O"),
    ("a client CSR with SANs is refused",
     replace(CLIENT, ips=(IP,)), False, "client", False, "subject alternative names"),
    ("a client CSR asking for server auth is refused",
     replace(CLIENT, usages=("digital signature", "client auth", "server auth")), False,
     "client", False, "server auth"),
    ("a client CSR with a single usage is refused",
     replace(CLIENT, usages=("client auth",)), False, "client", False, "fewer than 2"),
    ("a client CSR from an ordinary user is refused",
     replace(CLIENT, username="alice", groups=("system:authenticated",)), False, "client",
     False, "requester 'alice'"),
    ("a client CSR from a bootstrap user outside system:bootstrappers is refused",
     replace(BOOTSTRAP_TOKEN_CLIENT, groups=("system:authenticated",)), False, "client",
     False, "requester"),
    ("a client CSR renewed by the node itself is refused",
     replace(CLIENT, username=f"system:node:{NODE}", groups=("system:nodes",)), False,
     "client", False, "requester"),
    ("a client CSR with an unknown signer is refused",
     replace(CLIENT, signer="example.com/custom"), False, "client", False, "signerName"),
    ("a serving CSR with the client signer is refused",
     replace(SERVING, signer=CLIENT_SIGNER), True, "client", False, "usages"),
    ("a serving CSR before the Node exists is refused",
     SERVING, False, "serving", False, "no Node named"),
    ("a serving CSR with a foreign IP SAN is refused",
     replace(SERVING, ips=(IP, "10.0.9.9")), True, "serving", False, "IP SAN 10.0.9.9"),
    ("a serving CSR with a foreign DNS SAN is refused",
     replace(SERVING, dns=(NODE, "api.example.com")), True, "serving", False,
     "DNS SAN 'api.example.com'"),
    ("a serving CSR with an email SAN is refused",
     replace(SERVING, emails=("root@example.com",)), True, "serving", False, "RFC822Name"),
    ("a serving CSR with a URI SAN is refused",
     replace(SERVING, uris=("spiffe://x/y",)), True, "serving", False,
     "UniformResourceIdentifier"),
    ("a serving CSR without SANs is refused",
     replace(SERVING, dns=(), ips=()), True, "serving", False, "no subject alternative names"),
    ("a serving CSR with client auth is refused",
     replace(SERVING, usages=("digital signature", "server auth", "client auth")), True,
     "serving", False, "client auth"),
    ("a serving CSR from another node is refused",
     replace(SERVING, username="system:node:linux-0"), True, "serving", False,
     "requester 'system:node:linux-0'"),
    ("a serving CSR from the bootstrapper is refused",
     replace(SERVING, username=NODE_BOOTSTRAPPER, groups=CLIENT.groups), True, "serving",
     False, "requester"),
    ("a serving CSR whose requester lacks system:nodes is refused",
     replace(SERVING, groups=("system:authenticated",)), True, "serving", False,
     "system:nodes"),
    ("a serving CSR with an extra organization is refused",
     replace(SERVING, orgs=("system:nodes", "system:masters")), True, "serving", False,
     "organization"),
    ("an already approved CSR is not approved again",
     replace(CLIENT, conditions=(APPROVED,)), False, "client", False, "already approved"),
    ("an already denied CSR is left alone",
     replace(SERVING, conditions=(DENIED,)), True, "serving", False, "already denied"),
    ("a request that is not PEM is unreadable, not ours to judge",
     replace(CLIENT, request_override=base64.b64encode(b"junk").decode()), False, None, False,
     "not a PEM certificate request"),
    ("a request that is not even base64 is unreadable, not ours to judge",
     replace(CLIENT, request_override="%%% not base64 %%%"), False, None, False,
     "not a PEM certificate request"),
    ("a PEM block of garbage is ignored: not even its CN can be read",
     replace(CLIENT, request_override=PEM_OF_GARBAGE), False, None, False, NOT_OURS),
    # bound to the host's own kubelet key
    ("a client CSR with the right name but another key is refused",
     replace(CLIENT, key=OTHER_KEY), False, "client", False,
     "not the one of the kubelet's bootstrap key on this host"),
    ("a client CSR from a bootstrap token with another key is refused",
     replace(BOOTSTRAP_TOKEN_CLIENT, key=OTHER_KEY), False, "client", False,
     "another machine asked"),
    ("a serving CSR signed with any key is judged by its names only",
     replace(SERVING, key=OTHER_KEY), True, "serving", True, ""),
    # usages each kind needs
    ("a client CSR without client auth is refused",
     replace(CLIENT, usages=("digital signature", "key encipherment")), False, "client", False,
     "lack 'client auth'"),
    ("a serving CSR without server auth is refused",
     replace(SERVING, usages=("digital signature", "key encipherment")), True, "serving",
     False, "lack 'server auth'"),
    # requests the API server accepts but cryptography cannot parse
    ("a client CSR with a T61String organization of non-ASCII bytes is refused",
     replace(CLIENT, request_override=T61_ORG), False, "client", False,
     "subject cannot be decoded"),
    ("a client CSR whose T61String CN has a non-ASCII byte claims another name",
     replace(CLIENT, request_override=forged(forge.request_pem(KEY, T61_CN))), False, None,
     False, NOT_OURS),
    ("a serving CSR with an x400Address SAN is refused",
     replace(SERVING, request_override=X400_SAN), True, "serving", False,
     "extensions cannot be parsed"),
    ("a serving CSR with an ediPartyName SAN is refused",
     replace(SERVING, request_override=EDI_SAN), True, "serving", False,
     "extensions cannot be parsed"),
    ("a client CSR with an undecodable key usage extension is refused",
     replace(CLIENT, request_override=BROKEN_KEY_USAGE), False, "client", False,
     "extensions cannot be parsed"),
    ("a serving CSR with its SAN extension twice is refused",
     replace(SERVING, request_override=TWO_SAN_EXTENSIONS), True, "serving", False,
     "extensions cannot be parsed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("req", "node_exists", "kind", "approve", "words"),
    [pytest.param(*row[1:], id=row[0]) for row in TABLE],
)
def test_csr_verdicts(
    req: Req, node_exists: bool, kind: str | None, approve: bool, words: str
) -> None:
    verdict = validate(req.obj(), EXPECTED, node_exists=node_exists)
    assert (verdict.kind, verdict.approve) == (kind, approve), verdict.reason
    assert words in verdict.reason


def test_a_request_with_a_broken_self_signature_is_refused() -> None:
    csr = SERVING.obj()
    # The signature is the DER's tail: flipping one of its bits keeps the encoding valid.
    der = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"])).public_bytes(
        serialization.Encoding.DER
    )
    tampered = der[:-2] + bytes([der[-2] ^ 0x01]) + der[-1:]
    pem = x509.load_der_x509_csr(tampered).public_bytes(serialization.Encoding.PEM)
    csr["spec"]["request"] = base64.b64encode(pem).decode()
    verdict = validate(csr, EXPECTED, node_exists=True)
    assert not verdict.approve
    assert "self-signature" in verdict.reason


def test_a_good_serving_csr_before_the_node_registers_is_only_too_early() -> None:
    verdict = validate(SERVING.obj(), EXPECTED, node_exists=False)
    assert (verdict.approve, verdict.too_early) == (False, True)


def test_a_forged_serving_csr_before_the_node_registers_is_refused_for_its_fault() -> None:
    verdict = validate(replace(SERVING, ips=("10.9.9.9",)).obj(), EXPECTED, node_exists=False)
    assert (verdict.approve, verdict.too_early) == (False, False)
    assert "10.9.9.9" in verdict.reason


def test_hostnames_in_serving_sans_compare_case_insensitively() -> None:
    csr = replace(SERVING, dns=(NODE.upper(),)).obj()
    assert validate(csr, EXPECTED, node_exists=True).approve


def test_the_claimed_node_is_read_from_the_request_not_from_the_requester() -> None:
    csr = replace(CLIENT, username=f"system:node:{NODE}").obj()
    assert claimed_node(csr) == NODE
    assert claimed_node(replace(CLIENT, cn="system:admin").obj()) is None


def test_reasons_name_the_field_that_failed() -> None:
    verdict = validate(replace(SERVING, ips=("10.9.9.9",)).obj(), EXPECTED, node_exists=True)
    assert verdict.reason == "the IP SAN 10.9.9.9 is not an address of this instance"


def test_a_client_csr_before_the_kubelets_key_is_known_is_only_too_early() -> None:
    unknown = replace(EXPECTED, client_key=None)
    verdict = validate(CLIENT.obj(), unknown, node_exists=False)
    assert (verdict.approve, verdict.too_early, verdict.needs_key) == (False, True, True)


def test_a_key_mismatch_asks_for_the_key_to_be_read_again_before_refusing() -> None:
    verdict = validate(replace(CLIENT, key=OTHER_KEY).obj(), EXPECTED, node_exists=False)
    assert (verdict.approve, verdict.too_early, verdict.needs_key) == (False, False, True)


def test_a_t61string_cn_of_ascii_bytes_is_read_like_any_other() -> None:
    csr = replace(CLIENT, request_override=forged(forge.request_pem(KEY, ASCII_T61_CN))).obj()
    assert claimed_node(csr) == NODE


@pytest.mark.parametrize(
    "request_b64", [T61_ORG, X400_SAN, EDI_SAN, BROKEN_KEY_USAGE, TWO_SAN_EXTENSIONS]
)
def test_an_unparseable_request_still_names_the_node_it_claims(request_b64: str) -> None:
    assert claimed_node(replace(CLIENT, request_override=request_b64).obj()) == NODE
