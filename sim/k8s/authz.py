"""Authorization of the SIMULATED Kubernetes API server: kube-apiserver's authorizer chain.

`Authorizer.authorize(attrs)` answers as `--authorization-mode=Node,RBAC` behind the privileged
group check: `system:masters` may do everything; kubelets are decided by the Node authorizer
(`sim.k8s.node_authz`); everyone else by RBAC (`sim.k8s.rbac`). Reasons from the authorizers
are joined with newlines, as the union authorizer does. `check()` turns a denial into the real
403 Status. `admit()` runs the validating admission plugins that need the authorizer or the
caller: CertificateSigningRequest approval (`approve` on `signers`, for the signerName or
`<domain>/*`), signing (`sign` on `signers` when status.certificate changes) and
NodeRestriction. Used by `sim.k8s.handlers`, `sim.k8s.api` and `sim.k8s.reviews`.
"""

from __future__ import annotations

from sim.k8s import node_authz
from sim.k8s.auth import Identity
from sim.k8s.errors import forbidden, forbidden_because, forbidden_path
from sim.k8s.node_authz import NodeAuthorizer
from sim.k8s.rbac import Attributes, Rbac
from sim.k8s.store import Obj, Store

CSR_GROUP = "certificates.k8s.io"


class Authorizer:
    """The union of privileged groups, the Node authorizer and RBAC."""

    def __init__(self, store: Store) -> None:
        self.rbac = Rbac(store)
        self.node = NodeAuthorizer(store)

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        if attrs.who.is_admin:
            return True, ""
        reasons = []
        for decide in (self.node.authorize, self.rbac.authorize):
            allowed, reason = decide(attrs)
            if allowed:
                return True, reason
            if reason:
                reasons.append(reason)
        return False, "\n".join(reasons)

    def check(self, attrs: Attributes) -> None:
        """Raise the real 403 if `attrs` is not allowed."""
        allowed, reason = self.authorize(attrs)
        if allowed:
            return
        user = attrs.who.user
        if not attrs.resource_request:
            raise forbidden_path(user, attrs.verb, attrs.path, reason)
        raise forbidden(
            user,
            attrs.verb,
            attrs.group,
            attrs.resource,
            attrs.name,
            attrs.namespace,
            attrs.subresource,
            reason,
        )

    def may_use_signer(self, who: Identity, verb: str, signer: str) -> bool:
        """`IsAuthorizedForSignerName`: `verb` on signers/<name>, or on signers/<domain>/*."""
        for name in (signer, signer.split("/")[0] + "/*"):
            attrs = Attributes(who, verb, CSR_GROUP, "signers", name=name)
            if self.authorize(attrs)[0]:
                return True
        return False

    def admit(
        self,
        who: Identity,
        op: str,
        group: str,
        plural: str,
        sub: str,
        old: Obj | None,
        new: Obj | None,
    ) -> None:
        """Validating admission that depends on who is asking (raises 403)."""
        node_authz.admit(who, op, group, plural, sub, old, new)
        if (group, plural) != (CSR_GROUP, "certificatesigningrequests") or old is None:
            return
        signer = (old.get("spec") or {}).get("signerName", "")
        name = old["metadata"]["name"]
        if sub == "approval" and not self.may_use_signer(who, "approve", signer):
            why = f'user not permitted to approve requests with signerName "{signer}"'
            raise forbidden_because(group, plural, name, why)
        old_cert = (old.get("status") or {}).get("certificate")
        new_cert = ((new or {}).get("status") or {}).get("certificate")
        if (
            sub == "status"
            and old_cert != new_cert
            and not self.may_use_signer(who, "sign", signer)
        ):
            why = f'user not permitted to sign requests with signerName "{signer}"'
            raise forbidden_because(group, plural, name, why)
