"""The rules a node's CertificateSigningRequest must pass before winfleet approves it.

Pure (no I/O): `validate` takes a raw CSR object (JSON-like dict, as the API server returns it)
and what winfleet knows about the instance it is onboarding, and returns a `Verdict`. Called by
`activities/csr.py` for every pending CSR whose common name claims the node.

Stricter than WMCO: besides CN, organization, usages, signer and the Node's existence, a serving
CSR's SANs must all be addresses/names of this instance, the requester must be the identity that
kubelet really uses for that kind of CSR, and the request's self-signature must verify.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from cryptography.x509.oid import NameOID

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
    """What the onboarding workflow knows about the instance: its node name and addresses."""

    node_name: str
    addresses: tuple[str, ...] = ()  # IP addresses of the instance
    dns_names: tuple[str, ...] = ()  # its hostname (and any other DNS names it may claim)


@dataclass(frozen=True)
class Verdict:
    kind: Kind | None  # None: the CSR is not about this node (or is unreadable)
    approve: bool
    reason: str
    # True when the only fault is that the Node has not registered yet: a serving CSR that
    # may pass in a moment (kubelet registers, then asks); not worth a refusal event.
    too_early: bool = False


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


def parse_request(csr: Mapping[str, Any]) -> x509.CertificateSigningRequest | None:
    """The PKCS#10 request in spec.request (base64 of PEM), or None if it is not one."""
    raw = (csr.get("spec") or {}).get("request")
    if not isinstance(raw, str):
        return None
    try:
        return x509.load_pem_x509_csr(base64.b64decode(raw, validate=True))
    except ValueError:
        return None


def claimed_node(csr: Mapping[str, Any]) -> str | None:
    """The node name the request's CN claims (`system:node:<name>`), or None."""
    req = parse_request(csr)
    if req is None:
        return None
    cns = req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or not isinstance(cns[0].value, str):
        return None
    cn = cns[0].value
    return cn[len(NODE_PREFIX) :] if cn.startswith(NODE_PREFIX) else None


def validate(csr: Mapping[str, Any], expected: ExpectedNode, *, node_exists: bool) -> Verdict:
    """Decide whether winfleet may approve `csr` for the node it is onboarding."""
    name = (csr.get("metadata") or {}).get("name", "?")
    req = parse_request(csr)
    if req is None:
        return Verdict(None, False, f"CSR {name}: spec.request is not a PEM certificate request")
    if claimed_node(csr) != expected.node_name:
        return Verdict(None, False, NOT_OURS)
    kind = kind_of(csr)
    decided = decision(csr)
    if decided is not None:
        return Verdict(kind, False, f"CSR {name} is already {decided.lower()}")
    try:
        problem = _common_problem(csr, req, kind) or (
            _client_problem(csr, req, expected, node_exists)
            if kind == "client"
            else _serving_problem(csr, req, expected, node_exists)
        )
    except _Unreadable as exc:
        problem = str(exc)
    if problem:
        early = problem == _NO_NODE_YET.format(node=expected.node_name)
        return Verdict(kind, False, problem, too_early=early)
    who = (csr.get("spec") or {}).get("username", "")
    return Verdict(kind, True, f"{kind} CSR for node {expected.node_name} from {who} passed")


def _common_problem(csr: Mapping[str, Any], req: x509.CertificateSigningRequest, kind: Kind) -> str:
    spec = csr.get("spec") or {}
    signer = spec.get("signerName")
    want_signer = CLIENT_SIGNER if kind == "client" else SERVING_SIGNER
    if signer != want_signer:
        return f"the signerName is {signer!r}, not {want_signer!r}"
    if not req.is_signature_valid:
        return "the request's self-signature does not verify"
    orgs = [a.value for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if orgs != [NODES_GROUP]:
        return f"the subject organization is {orgs!r}, not exactly ['{NODES_GROUP}']"
    others = sorted(
        {a.oid.dotted_string for a in req.subject}
        - {NameOID.COMMON_NAME.dotted_string, NameOID.ORGANIZATION_NAME.dotted_string}
    )
    if others:
        return f"the subject has attributes other than CN and O ({', '.join(others)})"
    usages = set(spec.get("usages") or ())
    allowed = CLIENT_USAGES if kind == "client" else SERVING_USAGES
    if not usages <= allowed:
        return f"the usages include {sorted(usages - allowed)!r}, not allowed for a {kind} CSR"
    if len(usages) < MIN_USAGES:
        return f"the usages {sorted(usages)!r} name fewer than {MIN_USAGES} of {sorted(allowed)!r}"
    return ""


def _client_problem(
    csr: Mapping[str, Any],
    req: x509.CertificateSigningRequest,
    expected: ExpectedNode,
    node_exists: bool,
) -> str:
    spec = csr.get("spec") or {}
    user = spec.get("username", "")
    groups = spec.get("groups") or ()
    bootstrap_user = user.startswith(BOOTSTRAP_USER_PREFIX) and BOOTSTRAPPERS_GROUP in groups
    if user != NODE_BOOTSTRAPPER and not bootstrap_user:
        return f"the requester {user!r} is neither the node-bootstrapper nor a bootstrap token"
    if _sans(req) is not None:
        return "the client request carries subject alternative names"
    if node_exists:
        return f"a Node named {expected.node_name} already exists"
    return ""


def _serving_problem(
    csr: Mapping[str, Any],
    req: x509.CertificateSigningRequest,
    expected: ExpectedNode,
    node_exists: bool,
) -> str:
    spec = csr.get("spec") or {}
    user = spec.get("username", "")
    groups = set(spec.get("groups") or ())
    if user != NODE_PREFIX + expected.node_name:
        return f"the requester {user!r} is not {NODE_PREFIX + expected.node_name!r}"
    missing = sorted({NODES_GROUP, AUTHENTICATED_GROUP} - groups)
    if missing:
        return f"the requester's groups lack {missing!r}"
    sans = _sans(req)
    if sans is None or len(sans) == 0:
        return "the serving request has no subject alternative names"
    for general in sans:
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


def _sans(req: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    except (x509.DuplicateExtension, ValueError) as exc:
        raise _Unreadable("the request's extensions cannot be parsed") from exc


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
