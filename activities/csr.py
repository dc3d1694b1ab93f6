"""Phase 5, approve-csrs: approve the kubelet's client and serving CSRs of the node onboarding.

Called by the onboarding workflow right after kubelet was started. Polls the cluster's CSRs
about every second (heartbeating, bounded by `timeout_s`), validates each pending one that
claims this node with `activities.csr_rules.validate`, approves valid ones through the
`/approval` subresource and records one `CSRRefused` Warning event per refused CSR. It never
denies: a forged CSR stays pending for an admin to look at. Order follows kubelet: client CSR
approved -> Node registers -> serving CSR approved. Returns at once when the Node exists and its
serving CSR is already approved, so a retry after success does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubernetes.client import V1CertificateSigningRequest
from temporalio import activity

from activities import csr_rules, events, kube
from activities.errors import CsrRejected, NodeNotReadyYet, boundary
from activities.node import JsonObject, call_json, get_node, poll

APPROVE_ATTEMPTS = 5
APPROVE_REASON = "WinfleetApprove"


@dataclass(frozen=True)
class ApproveCsrsInput:
    node_name: str
    addresses: tuple[str, ...]  # the instance's IP addresses
    dns_names: tuple[str, ...]  # the instance's hostname (and other names it may claim)
    timeout_s: float


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


@activity.defn(name="approve_node_csrs")
@boundary
async def approve_node_csrs(inp: ApproveCsrsInput) -> ApproveCsrsResult:
    """Approve this node's valid client and serving CSRs; refuse (never deny) the others."""
    expected = csr_rules.ExpectedNode(inp.node_name, inp.addresses, inp.dns_names)
    seen = _Attempt()

    async def one_round() -> ApproveCsrsResult | None:
        node = await get_node(inp.node_name)
        seen.node_exists = node is not None
        ours = [c for c in await _list_csrs() if csr_rules.claimed_node(c) == inp.node_name]
        for csr in sorted(ours, key=_created):
            await _handle(csr, expected, seen)
        if seen.node_exists and seen.serving_csr:
            return ApproveCsrsResult(client_csr=seen.client_csr, serving_csr=seen.serving_csr)
        return None

    done = await poll(f"approving CSRs of node {inp.node_name}", one_round, inp.timeout_s)
    if done is None:
        raise _timeout_error(inp, seen)
    return done


async def _handle(csr: JsonObject, expected: csr_rules.ExpectedNode, seen: _Attempt) -> None:
    name = csr["metadata"]["name"]
    decided = csr_rules.decision(csr)
    if decided == "Approved":
        _remember_approved(seen, name, csr, expected)
        return
    verdict = csr_rules.validate(csr, expected, node_exists=seen.node_exists)
    if verdict.kind is None or decided is not None or verdict.too_early:
        return
    if verdict.approve:
        if await _approve(csr, verdict.reason):
            _remember_approved(seen, name, csr, expected)
        return
    if name not in seen.refused:
        seen.refused[name] = (verdict.kind, verdict.reason)
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
    seen: _Attempt, name: str, csr: JsonObject, expected: csr_rules.ExpectedNode
) -> None:
    """Note an approved CSR of this node, if it is one winfleet would have approved itself.

    A CSR someone else approved against our rules (a foreign SAN, say) does not count: the
    activity keeps waiting for a good one rather than call the phase done.
    """
    undecided = {**csr, "status": {}}
    kind = csr_rules.kind_of(csr)
    verdict = csr_rules.validate(undecided, expected, node_exists=kind == "serving")
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
            await call_json(
                f"approve CSR {name}", api.replace_certificate_signing_request_approval, name, body
            )
            activity.logger.info("approved CSR %s: %s", name, why)
            return True
        except kube.Conflict:
            csr = await call_json(f"read CSR {name}", api.read_certificate_signing_request, name)
            decided = csr_rules.decision(csr)
            if decided is not None:
                return decided == "Approved"
    raise kube.Conflict(f"approve CSR {name}: still conflicting after {APPROVE_ATTEMPTS} tries")


async def _list_csrs() -> list[JsonObject]:
    listing = await call_json("list CSRs", kube.certificates().list_certificate_signing_request)
    return [item for item in listing.get("items") or () if isinstance(item, dict)]


def _created(csr: JsonObject) -> tuple[str, str]:
    meta = csr.get("metadata") or {}
    return (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))


def _timeout_error(inp: ApproveCsrsInput, seen: _Attempt) -> CsrRejected | NodeNotReadyYet:
    waited = f"{inp.timeout_s:.0f}s"
    phase = "serving" if seen.node_exists else "client"
    refused = sorted((n, r) for n, (k, r) in seen.refused.items() if k == phase)
    if refused:
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
    if seen.client_csr:
        return NodeNotReadyYet(
            f"node {inp.node_name}: client CSR {seen.client_csr} approved but the Node has not "
            f"registered within {waited}; check kubelet on the host"
        )
    return NodeNotReadyYet(
        f"node {inp.node_name}: kubelet has not asked for a certificate within {waited}; "
        "check that the kubelet service runs on the host"
    )
