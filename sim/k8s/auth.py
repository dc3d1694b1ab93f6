"""Authentication for the SIMULATED Kubernetes API server: who is making a request.

Three authenticators, tried in the real kube-apiserver's order for the credentials present:
- static bearer tokens (the admin token, the bootstrap token served in the worker ignition, and
  tokens minted by `KubeTwin.issue_token`), like `--token-auth-file`;
- ServiceAccount tokens (JWTs from the TokenRequest API, `sim.k8s.tokens`): user
  `system:serviceaccount:<ns>:<name>`, groups `system:serviceaccounts`,
  `system:serviceaccounts:<ns>`, `system:authenticated`;
- a TLS client certificate signed by the twin CA (user = CN, groups = O + system:authenticated).
A request with none of them is refused with 401 (the twin runs with anonymous auth disabled).
Authorization is `sim.k8s.authz`; used by `sim.k8s.handlers`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID

BOOTSTRAP_NAMESPACE = "openshift-machine-config-operator"
BOOTSTRAP_SA = "node-bootstrapper"
BOOTSTRAP_USER = f"system:serviceaccount:{BOOTSTRAP_NAMESPACE}:{BOOTSTRAP_SA}"
BOOTSTRAP_GROUPS = (
    "system:serviceaccounts",
    f"system:serviceaccounts:{BOOTSTRAP_NAMESPACE}",
    "system:authenticated",
)
ADMIN_USER = "system:admin"
ADMIN_GROUPS = ("system:masters", "system:authenticated")


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
        """The node this identity is (`system:node:<name>` in group `system:nodes`), or None."""
        if self.user.startswith("system:node:") and "system:nodes" in self.groups:
            return self.user.removeprefix("system:node:")
        return None


def service_account_identity(namespace: str, name: str, uid: str) -> Identity:
    """The user a ServiceAccount token authenticates as, exactly as kube-apiserver names it."""
    return Identity(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        uid,
    )


INTERNAL = Identity("system:kube-controller-manager", ("system:masters",))

TokenVerifier = Callable[[str], Identity | None]


class Authenticator:
    """Maps bearer tokens and verified peer certificates to identities."""

    def __init__(self) -> None:
        self.admin_token = secrets.token_urlsafe(32)
        self.bootstrap_token = secrets.token_urlsafe(32)
        self._tokens: dict[str, Identity] = {
            self.admin_token: Identity(ADMIN_USER, ADMIN_GROUPS),
            self.bootstrap_token: Identity(BOOTSTRAP_USER, BOOTSTRAP_GROUPS),
        }
        self._verifiers: list[TokenVerifier] = []

    def add_token(self, token: str, identity: Identity) -> None:
        self._tokens[token] = identity

    def add_verifier(self, verifier: TokenVerifier) -> None:
        """Another bearer-token authenticator (ServiceAccount JWTs)."""
        self._verifiers.append(verifier)

    def authenticate_token(self, token: str) -> Identity | None:
        if token in self._tokens:
            return self._tokens[token]
        for verify in self._verifiers:
            who = verify(token)
            if who is not None:
                return who
        return None

    def authenticate(self, authorization: str | None, peer_der: bytes | None) -> Identity | None:
        if authorization and authorization.lower().startswith("bearer "):
            return self.authenticate_token(authorization[7:].strip())
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
