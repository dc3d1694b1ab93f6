"""The rules a node's CertificateSigningRequest must pass before winfleet approves it.

Pure (no I/O): `validate` takes a raw CSR object (JSON-like dict, as the API server returns it)
and what winfleet knows about the instance it is onboarding, and returns a `Verdict`. Called by
`activities/csr.py` for every pending CSR whose common name claims the node.

Stricter than WMCO: besides CN, organization, usages, signer and the Node's existence, a client
CSR's public key must be the key the kubelet on this very host bootstraps with (read from its
disk by `csr.py`), a serving CSR's SANs must all be addresses/names of this instance, the
requester must be the identity that kubelet really uses for that kind of CSR, and the request's
self-signature must verify. A request that cannot be parsed is refused, never a crash: the CN
is read from the raw DER (`csr_der`) so even such a request is recognised as claiming its node.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from activities import csr_der
from activities.windows.paths import KUBELET_BOOTSTRAP_KEY

Kind = Literal["client", "serving"]

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
AUTHENTICATED_GROUP = "system:authenticated"
NODE_BOOTSTRAPPER = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"

CLIENT_USAGES = frozenset({"key encipherment", "digital signature", "client auth"})
SERVING_USAGES = frozenset({"key encipherment", "digital signature", "server auth"})
MIN_USAGES = 2

NOT_OURS = "not ours"


@dataclass(frozen=True)
class ExpectedNode:
    """What winfleet knows about the instance: node name, addresses, the kubelet's key."""

    node_name: str
    addresses: tuple[str, ...] = ()  # IP addresses of the instance
    dns_names: tuple[str, ...] = ()  # its hostname (and any other DNS names it may claim)
    # SubjectPublicKeyInfo (DER) of the key the kubelet on this host bootstraps with, read
    # from the host; None: not known (yet), so no client CSR can be approved.
    client_key: bytes | None = None


@dataclass(frozen=True)
class Verdict:
    kind: Kind | None  # None: the CSR is not about this node (or is unreadable)
    approve: bool
    reason: str
    # True when the only fault is that something has not happened yet (the Node registering,
    # the kubelet's key appearing on the host): may pass in a moment; not worth an event.
    too_early: bool = False
    # True when the verdict rests on the kubelet's key as winfleet last read it (unknown or
    # different): read it again before acting on the verdict.
    needs_key: bool = False


def decision(csr: Mapping[str, Any]) -> str | None:
    """ "Approved", "Denied" or "Failed" when the CSR carries such a condition, else None."""
    for cond in (csr.get("status") or {}).get("conditions") or ():
        if cond.get("type") in ("Approved", "Denied", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def kind_of(csr: Mapping[str, Any]) -> Kind:
    """Client or serving, from the signer (or, for an unknown signer, from the usages)."""
    spec = csr.get("spec") or {}
    signer = spec.get("signerName")
    if signer == CLIENT_SIGNER:
        return "client"
    if signer == SERVING_SIGNER:
        return "serving"
    return "serving" if "server auth" in (spec.get("usages") or ()) else "client"


_PEM = re.compile(
    rb"-----BEGIN CERTIFICATE REQUEST-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*"
    rb"-----END CERTIFICATE REQUEST-----"
)


def request_der(csr: Mapping[str, Any]) -> bytes | None:
    """The DER of the PKCS#10 request in spec.request (base64 of PEM), or None."""
    raw = (csr.get("spec") or {}).get("request")
    if not isinstance(raw, str):
        return None
    try:
        pem = base64.b64decode(raw, validate=True)
    except ValueError:
        return None
    m = _PEM.search(pem)
    if m is None:
        return None
    try:
        return base64.b64decode(b"".join(m["body"].split()), validate=True)
    except ValueError:
        return None


def claimed_node(csr: Mapping[str, Any]) -> str | None:
    """The node name the request's CN claims (`system:node:<name>`), or None.

    Read from the raw DER, so a request `cryptography` cannot parse (but the API server
    accepted) is still recognised as claiming its node, and then refused.
    """
    der = request_der(csr)
    names = csr_der.subject_common_names(der) if der is not None else None
    if not names or len(names) != 1:
        return None
    cn = names[0]
    return cn[len(NODE_PREFIX) :] if cn.startswith(NODE_PREFIX) else None


READ_CACHE_SIZE = 2048  # decoded requests kept: a few per node of a large fleet onboarding


@dataclass(frozen=True)
class _Request:
    """What the rules look at, decoded once; building it is where parsing can fail."""

    subject: tuple[tuple[str, object], ...]  # (OID, value) in order
    sans: tuple[x509.GeneralName, ...] | None  # None: no SAN extension
    signature_valid: bool
    public_key: bytes  # SubjectPublicKeyInfo DER


@functools.lru_cache(maxsize=READ_CACHE_SIZE)
def _read(der: bytes) -> _Request:
    """Decode the request; _Unreadable (with what could not be read) for anything odd.

    A CSR's request never changes, and approval judges every CSR of a node again whenever it
    or the Node changes: decoded requests are remembered (a refusal is not, it is rare).
    """
    try:
        req = x509.load_der_x509_csr(der)
    except ValueError as exc:
        raise _Unreadable("the request is not a well-formed PKCS#10 request") from exc
    try:
        subject = tuple((a.oid.dotted_string, a.value) for a in req.subject)
    except Exception as exc:  # a library that cannot decode it raises whatever it raises
        raise _Unreadable(f"the request's subject cannot be decoded ({_what(exc)})") from exc
    try:
        ext = req.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        sans: tuple[x509.GeneralName, ...] | None = tuple(ext.value)
    except x509.ExtensionNotFound:
        sans = None
    except Exception as exc:
        raise _Unreadable(f"the request's extensions cannot be parsed ({_what(exc)})") from exc
    try:
        signature_valid = req.is_signature_valid
        public_key = req.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception as exc:
        raise _Unreadable(f"the request's key or signature cannot be read ({_what(exc)})") from exc
    return _Request(subject, sans, signature_valid, public_key)


def _what(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:120]


def public_key_of(csr: Mapping[str, Any]) -> bytes | None:
    """The request's SubjectPublicKeyInfo (DER), or None when it cannot be read."""
    der = request_der(csr)
    try:
        return _read(der).public_key if der is not None else None
    except _Unreadable:
        return None


def validate(csr: Mapping[str, Any], expected: ExpectedNode, *, node_exists: bool) -> Verdict:
    """Decide whether winfleet may approve `csr` for the node it is onboarding. Never raises."""
    name = (csr.get("metadata") or {}).get("name", "?")
    der = request_der(csr)
    if der is None:
        return Verdict(None, False, f"CSR {name}: spec.request is not a PEM certificate request")
    if claimed_node(csr) != expected.node_name:
        return Verdict(None, False, NOT_OURS)
    kind = kind_of(csr)
    decided = decision(csr)
    if decided is not None:
        return Verdict(kind, False, f"CSR {name} is already {decided.lower()}")
    try:
        req = _read(der)
        problem = _common_problem(csr, req, kind) or (
            _client_problem(csr, req, expected, node_exists)
            if kind == "client"
            else _serving_problem(csr, req, expected, node_exists)
        )
    except _Unreadable as exc:
        problem = str(exc)
    if problem:
        early = problem in (_NO_NODE_YET.format(node=expected.node_name), NO_KEY_YET)
        needs_key = problem in (NO_KEY_YET, KEY_MISMATCH)
        return Verdict(kind, False, problem, too_early=early, needs_key=needs_key)
    who = (csr.get("spec") or {}).get("username", "")
    return Verdict(kind, True, f"{kind} CSR for node {expected.node_name} from {who} passed")


def _common_problem(csr: Mapping[str, Any], req: _Request, kind: Kind) -> str:
    spec = csr.get("spec") or {}
    signer = spec.get("signerName")
    want_signer = CLIENT_SIGNER if kind == "client" else SERVING_SIGNER
    if signer != want_signer:
        return f"the signerName is {signer!r}, not {want_signer!r}"
    if not req.signature_valid:
        return "the request's self-signature does not verify"
    orgs = [v for oid, v in req.subject if oid == NameOID.ORGANIZATION_NAME.dotted_string]
    if orgs != [NODES_GROUP]:
        return f"the subject organization is {orgs!r}, not exactly ['{NODES_GROUP}']"
    known = {NameOID.COMMON_NAME.dotted_string, NameOID.ORGANIZATION_NAME.dotted_string}
    others = sorted({oid for oid, _ in req.subject} - known)
    if others:
        return f"the subject has attributes other than CN and O ({', '.join(others)})"
    usages = set(spec.get("usages") or ())
    allowed = CLIENT_USAGES if kind == "client" else SERVING_USAGES
    if not usages <= allowed:
        return f"the usages include {sorted(usages - allowed)!r}, not allowed for a {kind} CSR"
    if len(usages) < MIN_USAGES:
        return f"the usages {sorted(usages)!r} name fewer than {MIN_USAGES} of {sorted(allowed)!r}"
    required = "client auth" if kind == "client" else "server auth"
    if required not in usages:
        return f"the usages {sorted(usages)!r} lack {required!r}, which a {kind} CSR needs"
    return ""


def _client_problem(
    csr: Mapping[str, Any], req: _Request, expected: ExpectedNode, node_exists: bool
) -> str:
    spec = csr.get("spec") or {}
    user = spec.get("username", "")
    groups = spec.get("groups") or ()
    bootstrap_user = user.startswith(BOOTSTRAP_USER_PREFIX) and BOOTSTRAPPERS_GROUP in groups
    if user != NODE_BOOTSTRAPPER and not bootstrap_user:
        return f"the requester {user!r} is neither the node-bootstrapper nor a bootstrap token"
    if req.sans is not None:
        return "the client request carries subject alternative names"
    if node_exists:
        return f"a Node named {expected.node_name} already exists"
    if expected.client_key is None:
        return NO_KEY_YET
    if req.public_key != expected.client_key:
        return KEY_MISMATCH
    return ""


def _serving_problem(
    csr: Mapping[str, Any], req: _Request, expected: ExpectedNode, node_exists: bool
) -> str:
    spec = csr.get("spec") or {}
    user = spec.get("username", "")
    groups = set(spec.get("groups") or ())
    if user != NODE_PREFIX + expected.node_name:
        return f"the requester {user!r} is not {NODE_PREFIX + expected.node_name!r}"
    missing = sorted({NODES_GROUP, AUTHENTICATED_GROUP} - groups)
    if missing:
        return f"the requester's groups lack {missing!r}"
    if not req.sans:
        return "the serving request has no subject alternative names"
    for general in req.sans:
        if isinstance(general, x509.IPAddress):
            if not _ip_expected(general.value, expected.addresses):
                return f"the IP SAN {general.value} is not an address of this instance"
        elif isinstance(general, x509.DNSName):
            if general.value.lower() not in {d.lower() for d in expected.dns_names}:
                return f"the DNS SAN {general.value!r} is not a name of this instance"
        else:
            return f"the request has a {type(general).__name__} SAN; only IP and DNS are allowed"
    if not node_exists:
        return _NO_NODE_YET.format(node=expected.node_name)
    return ""


_NO_NODE_YET = "no Node named {node} exists yet"
NO_KEY_YET = (
    "the kubelet's bootstrap key could not be read from the host yet "
    f"({KUBELET_BOOTSTRAP_KEY}), so no client CSR can be matched to it"
)
KEY_MISMATCH = (
    "the request's public key is not the one of the kubelet's bootstrap key on this host "
    f"({KUBELET_BOOTSTRAP_KEY}): another machine asked in this node's name"
)


class _Unreadable(Exception):
    """A part of the request cannot be decoded; the CSR is refused with this message."""


def _ip_expected(value: object, addresses: tuple[str, ...]) -> bool:
    known = set()
    for a in addresses:
        try:
            known.add(ipaddress.ip_address(a))
        except ValueError:
            continue
    return value in known
