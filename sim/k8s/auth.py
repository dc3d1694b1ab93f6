"""Authentication and a minimal authorization for the SIMULATED Kubernetes API server.

Authentication: a bearer token (the admin token, the bootstrap token served in the worker
ignition) or a TLS client certificate signed by the twin CA (user = CN, groups = O +
system:authenticated), read from the TLS transport. Authorization: admins (system:masters) may do
everything; the node-bootstrapper service account may only create/get/list/watch CSRs; nodes
(system:node:<name>) may manage their own Node, create CSRs, read nodes/CSRs, create events and
manage leases — a small stand-in for RBAC + the Node authorizer, used by `sim.k8s.handlers`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID

BOOTSTRAP_USER = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
BOOTSTRAP_GROUPS = (
    "system:serviceaccounts",
    "system:serviceaccounts:openshift-machine-config-operator",
    "system:authenticated",
)
ADMIN_USER = "system:admin"
ADMIN_GROUPS = ("system:masters", "system:authenticated")
READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups

    @property
    def node_name(self) -> str | None:
        if self.user.startswith("system:node:") and "system:nodes" in self.groups:
            return self.user.removeprefix("system:node:")
        return None


INTERNAL = Identity("system:kube-controller-manager", ("system:masters",))


class Authenticator:
    """Maps tokens and verified peer certificates to identities."""

    def __init__(self) -> None:
        self.admin_token = secrets.token_urlsafe(32)
        self.bootstrap_token = secrets.token_urlsafe(32)
        self._tokens: dict[str, Identity] = {
            self.admin_token: Identity(ADMIN_USER, ADMIN_GROUPS),
            self.bootstrap_token: Identity(
                BOOTSTRAP_USER, BOOTSTRAP_GROUPS, uid="6c0ffee0-b007-4bad-9a11-000000000001"
            ),
        }

    def add_token(self, token: str, identity: Identity) -> None:
        self._tokens[token] = identity

    def authenticate(self, authorization: str | None, peer_der: bytes | None) -> Identity | None:
        if authorization and authorization.lower().startswith("bearer "):
            return self._tokens.get(authorization[7:].strip())
        if peer_der:
            cert = x509.load_der_x509_certificate(peer_der)
            cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            orgs = [
                str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            ]
            if not cns:
                return None
            return Identity(str(cns[0].value), (*orgs, "system:authenticated"))
        return None


def allowed(who: Identity, verb: str, group: str, plural: str, sub: str, name: str) -> bool:
    """May `who` perform `verb` on `plural[/sub]` (named `name`, "" for collections)?"""
    if who.is_admin:
        return True
    if group == "certificates.k8s.io" and plural == "certificatesigningrequests" and not sub:
        if who.user == BOOTSTRAP_USER or who.node_name is not None:
            return verb in READ_VERBS or verb == "create"
    node = who.node_name
    if node is None:
        return False
    if group == "" and plural == "nodes":
        if verb in READ_VERBS and not sub:
            return True
        return (
            verb in ("create", "update", "patch", "get") and name == node and sub in ("", "status")
        )
    if group == "" and plural == "events":
        return verb in ("create", "patch", "update")
    if group == "coordination.k8s.io" and plural == "leases":
        return True
    return False
