"""Phase 5, approve-csrs: approve the kubelet's client and serving CSRs of the node onboarding.

Called by the onboarding workflow right after kubelet was started. Reads the CSRs that claim
this node from the worker's watch-fed cache (activities/cache.py) and looks again whenever one
of them or the Node changes (heartbeating, bounded by `timeout_s`), validates each pending one
that claims this node with `activities.csr_rules.validate`, approves valid ones through the
`/approval` subresource and records one `CSRRefused` Warning event per refused CSR. It never
denies: a forged CSR stays pending for an admin to look at. Order follows kubelet: client CSR
approved -> Node registers -> serving CSR approved. Returns at once when the Node exists and its
serving CSR is already approved, so a retry after success does nothing.

A client CSR is bound to this host: over SSH (SFTP, into memory) the activity reads the key the
kubelet bootstraps with (`kubelet-client.key.tmp`, or once issued the certificate in
`kubelet-client-current.pem`) and approves only a request carrying its public key — the oldest
one, and only if no matching one is approved already, so a run approves at most one. The key
material never leaves `_KubeletKey` (no log, span or result). A CSR that cannot be parsed is
refused like any other, or ignored when not even its CN can be read; it never fails the round.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from kubernetes.client import V1CertificateSigningRequest
from temporalio import activity

from activities import cache, csr_rules, events, kube, metrics
from activities.errors import CsrRejected, NodeNotReadyYet, boundary
from activities.node import JsonObject, call_json, get_node
from activities.ssh import HostSession, session_for
from activities.windows import paths

APPROVE_ATTEMPTS = 5
APPROVE_REASON = "WinfleetApprove"
KEY_FILE_LIMIT = 64 * 1024  # a PEM key or certificate chain is a few KB


@dataclass(frozen=True)
class ApproveCsrsInput:
    node_name: str
    addresses: tuple[str, ...]  # the instance's IP addresses
    dns_names: tuple[str, ...]  # the instance's hostname (and other names it may claim)
    timeout_s: float
    # Where the kubelet runs (its bootstrap key is read there) and the key to log in with
    # (a secret's name). Empty address: the first of `addresses` (inputs of older runs).
    address: str = ""
    username: str = "Administrator"
    private_key_secret: str = "cloud-private-key"


@dataclass(frozen=True)
class ApproveCsrsResult:
    client_csr: str  # empty when the client CSR had been approved by someone else before
    serving_csr: str


@dataclass
class _Attempt:
    """What one activity attempt has seen (never leaves the activity)."""

    node_exists: bool = False
    client_csr: str = ""
    serving_csr: str = ""
    # name -> (kind, reason) of the CSRs not approved (kind "foreign-approval": approved by
    # someone else although they break the rules; noted once, never counted as ours)
    refused: dict[str, tuple[str, str]] = field(default_factory=dict)
    client_asked: bool = False  # a client CSR needed the kubelet's key
    key_known: bool = False  # ... and the key was found on the host


@activity.defn(name="approve_node_csrs")
@boundary
async def approve_node_csrs(inp: ApproveCsrsInput) -> ApproveCsrsResult:
    """Approve this node's valid client and serving CSRs; refuse (never deny) the others."""
    seen = _Attempt()
    async with contextlib.AsyncExitStack() as stack:
        kubelet = _KubeletKey(inp, stack)

        async def one_round() -> ApproveCsrsResult | None:
            node = await get_node(inp.node_name)
            seen.node_exists = node is not None
            ours = await cache.csrs_claiming(inp.node_name)
            expected = await _expected(inp, kubelet, ours, seen)
            # Approved ones first: an approved client CSR of this kubelet means no other is.
            for csr in sorted(ours, key=lambda c: (not _approved(c), _created(c))):
                await _handle(csr, expected, seen)
            if seen.node_exists and seen.serving_csr:
                return ApproveCsrsResult(client_csr=seen.client_csr, serving_csr=seen.serving_csr)
            return None

        done = await cache.wait_until(
            f"approving CSRs of node {inp.node_name}",
            one_round,
            inp.timeout_s,
            nodes=(inp.node_name,),
            csrs_of=(inp.node_name,),
        )
    if done is None:
        raise _timeout_error(inp, seen)
    return done


class _KubeletKey:
    """The public half of the key the kubelet on the host bootstraps with, read over SFTP.

    `C:\\var\\lib\\kubelet\\pki\\kubelet-client.key.tmp` while the client certificate is pending,
    else the certificate in `kubelet-client-current.pem`. Only the public key (DER) is kept;
    the file's content never leaves this object's method (no log, span or result).
    """

    def __init__(self, inp: ApproveCsrsInput, stack: contextlib.AsyncExitStack) -> None:
        self._inp = inp
        self._stack = stack
        self._session: HostSession | None = None
        self.public_key: bytes | None = None

    async def read(self) -> bytes | None:
        if self._session is None:
            inp = self._inp
            target = _Target(inp.node_name, _host(inp), inp.username, inp.private_key_secret)
            self._session = await self._stack.enter_async_context(session_for(target))
        pending = await self._session.read_bytes(paths.KUBELET_BOOTSTRAP_KEY, limit=KEY_FILE_LIMIT)
        if pending is not None:
            self.public_key = _public_key_of_private_pem(pending)
        else:
            issued = await self._session.read_bytes(
                paths.KUBELET_CLIENT_CURRENT, limit=KEY_FILE_LIMIT
            )
            self.public_key = _public_key_of_certificate_pem(issued) if issued else None
        return self.public_key


def _host(inp: ApproveCsrsInput) -> str:
    return inp.address or (inp.addresses[0] if inp.addresses else "")


@dataclass(frozen=True)
class _Target:
    node_name: str
    address: str
    username: str
    private_key_secret: str


async def _expected(
    inp: ApproveCsrsInput, kubelet: _KubeletKey, ours: list[JsonObject], seen: _Attempt
) -> csr_rules.ExpectedNode:
    """What this round judges against; reads the kubelet's key again whenever a verdict on a
    client CSR would rest on a key not (yet) known or different: never refuse on a stale key."""
    expected = csr_rules.ExpectedNode(
        inp.node_name, inp.addresses, inp.dns_names, client_key=kubelet.public_key
    )
    for csr in ours:
        if _judge(csr, expected, seen).needs_key:
            seen.client_asked = True
            expected = replace(expected, client_key=await kubelet.read())
            seen.key_known = expected.client_key is not None
            break
    return expected


def _approved(csr: JsonObject) -> bool:
    return csr_rules.decision(csr) == "Approved"


def _judge(csr: JsonObject, expected: csr_rules.ExpectedNode, seen: _Attempt) -> csr_rules.Verdict:
    """The verdict on a pending CSR; for an approved one, whether winfleet would have approved
    it (judged as undecided, a client one as before the Node existed)."""
    if _approved(csr):
        kind = csr_rules.kind_of(csr)
        undecided = {**csr, "status": {}}
        return csr_rules.validate(undecided, expected, node_exists=kind == "serving")
    return csr_rules.validate(csr, expected, node_exists=seen.node_exists)


def _public_key_of_private_pem(data: bytes) -> bytes | None:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public_key_of_certificate_pem(data: bytes) -> bytes | None:
    try:
        cert = x509.load_pem_x509_certificate(data)
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm):
        return None


async def _handle(csr: JsonObject, expected: csr_rules.ExpectedNode, seen: _Attempt) -> None:
    name = csr["metadata"]["name"]
    verdict = _judge(csr, expected, seen)
    if _approved(csr):
        _remember_approved(seen, name, csr, verdict)
        return
    kind = verdict.kind
    if kind is None or csr_rules.decision(csr) is not None or verdict.too_early:
        return
    if verdict.approve and kind == "client" and seen.client_csr:
        verdict = replace(
            verdict,
            approve=False,
            reason=(
                f"client CSR {seen.client_csr} of the same kubelet key is already approved; "
                "winfleet approves one client CSR per onboarding"
            ),
        )
    if verdict.approve:
        if await _approve(csr, verdict.reason):
            metrics.csr_approved(kind)
            _remember_approved(seen, name, csr, verdict)
        return
    if name not in seen.refused:
        seen.refused[name] = (kind, verdict.reason)
        metrics.csr_refused(kind, verdict.reason)
        activity.logger.warning("not approving CSR %s: %s", name, verdict.reason)
        await events.record_event(
            reason=events.CSR_REFUSED,
            message=(
                f"winfleet did not approve CSR {name} claiming node {expected.node_name}: "
                f"{verdict.reason}"
            ),
            involved={
                "apiVersion": "certificates.k8s.io/v1",
                "kind": "CertificateSigningRequest",
                "name": name,
                "uid": csr["metadata"].get("uid", ""),
            },
            type_="Warning",
            name=f"{name}.csrrefused",
        )


def _remember_approved(
    seen: _Attempt, name: str, csr: JsonObject, verdict: csr_rules.Verdict
) -> None:
    """Note an approved CSR of this node, if it is one winfleet would have approved itself.

    A CSR someone else approved against our rules (a foreign SAN, another key, say) does not
    count: the activity keeps waiting for a good one rather than call the phase done.
    """
    kind = csr_rules.kind_of(csr)
    if not verdict.approve:
        if name not in seen.refused:
            seen.refused[name] = ("foreign-approval", verdict.reason)
            activity.logger.warning("CSR %s was approved elsewhere: %s", name, verdict.reason)
    elif kind == "client":
        seen.client_csr = seen.client_csr or name
    else:
        seen.serving_csr = seen.serving_csr or name


async def _approve(csr: JsonObject, why: str) -> bool:
    """Add the Approved condition; on conflict re-read and retry. False if someone decided."""
    name = csr["metadata"]["name"]
    api = kube.certificates()
    csr = copy.deepcopy(csr)  # the cache's object is shared
    for _ in range(APPROVE_ATTEMPTS):
        status = csr.setdefault("status", {})
        status["conditions"] = [
            *(status.get("conditions") or ()),
            {
                "type": "Approved",
                "status": "True",
                "reason": APPROVE_REASON,
                "message": f"Approved by winfleet: {why}",
                "lastUpdateTime": datetime.now(UTC),
            },
        ]
        body = V1CertificateSigningRequest.from_dict(csr)
        try:
            approved = await call_json(
                f"approve CSR {name}", api.replace_certificate_signing_request_approval, name, body
            )
            cache.observe_csr(approved)
            activity.logger.info("approved CSR %s: %s", name, why)
            return True
        except kube.Conflict:
            csr = await call_json(f"read CSR {name}", api.read_certificate_signing_request, name)
            decided = csr_rules.decision(csr)
            if decided is not None:
                return decided == "Approved"
    raise kube.Conflict(f"approve CSR {name}: still conflicting after {APPROVE_ATTEMPTS} tries")


def _created(csr: JsonObject) -> tuple[str, str]:
    meta = csr.get("metadata") or {}
    return (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))


def _timeout_error(inp: ApproveCsrsInput, seen: _Attempt) -> CsrRejected | NodeNotReadyYet:
    waited = f"{inp.timeout_s:.0f}s"
    phase = "serving" if seen.node_exists else "client"
    approved = seen.serving_csr if seen.node_exists else seen.client_csr
    refused = sorted((n, r) for n, (k, r) in seen.refused.items() if k == phase)
    if refused and not approved:
        reasons = "; ".join(f"{n}: {r}" for n, r in refused)
        return CsrRejected(
            f"node {inp.node_name}: no valid {phase} CSR within {waited}, only refused ones "
            f"({reasons}); see the CSRRefused events and check who else asks for this name"
        )
    if seen.node_exists:
        return NodeNotReadyYet(
            f"node {inp.node_name} registered but kubelet has not asked for its serving "
            f"certificate within {waited}; check kubelet on the host"
        )
    if seen.client_asked and not seen.key_known:
        return NodeNotReadyYet(
            f"node {inp.node_name}: a client CSR asks in its name, but the kubelet's bootstrap "
            f"key {paths.KUBELET_BOOTSTRAP_KEY} is not on host {_host(inp)} within {waited}; "
            "check that kubelet runs there with --cert-dir C:\\var\\lib\\kubelet\\pki"
        )
    if seen.client_csr:
        return NodeNotReadyYet(
            f"node {inp.node_name}: client CSR {seen.client_csr} approved but the Node has not "
            f"registered within {waited}; check kubelet on the host"
        )
    return NodeNotReadyYet(
        f"node {inp.node_name}: kubelet has not asked for a certificate within {waited}; "
        "check that the kubelet service runs on the host"
    )
