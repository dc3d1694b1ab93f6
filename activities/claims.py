"""Claims on node names: one workflow run at a time may change a given node.

Two runs for the same node name (two pools, or the CLI and the Web UI) must never work on it
together. Each run claims the name first with a coordination.k8s.io/v1 Lease
`winfleet-node-<node>` in winfleet's namespace whose `holderIdentity` is `<workflow id>
<run id>`, and releases it when it ends. A second run is refused (`NodeNameClaimed`) before it
touches anything; a claim whose holder run has closed (crashed, terminated) is taken over: the
holder's status is asked of Temporal (`activity.client()`), so a lost claim never blocks a node
for long. Writes use the Lease's resourceVersion (no lost update between two claimants).

Activities `claim_node` / `release_node`, called first and last by every workflow that changes a
node (onboarding, decommissioning).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities import kube
from activities.config import settings
from activities.errors import KubernetesUnavailable, NodeNameClaimed, boundary

LEASE_PREFIX = "winfleet-node-"
NODE_LABEL = "winfleet.io/node"
PURPOSE_ANNOTATION = "winfleet.io/purpose"
ATTEMPTS = 5


@dataclass(frozen=True)
class ClaimInput:
    node_name: str
    holder: str  # "<workflow id> <run id>" of the run that claims
    purpose: str = ""  # what the holder does: onboard, decommission, ...


def lease_name(node_name: str) -> str:
    return LEASE_PREFIX + node_name


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _read(name: str) -> dict[str, Any] | None:
    ns = settings().namespace
    try:
        lease: dict[str, Any] = await kube.call_json(
            f"read lease {ns}/{name}",
            kube.coordination().read_namespaced_lease,
            name,
            ns,
        )
    except kube.NotFound:
        return None
    return lease


def _body(inp: ClaimInput, resource_version: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": lease_name(inp.node_name),
        "labels": {NODE_LABEL: inp.node_name},
        "annotations": {PURPOSE_ANNOTATION: inp.purpose},
    }
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {"holderIdentity": inp.holder, "acquireTime": _now(), "renewTime": _now()},
    }


async def holder_alive(holder: str) -> bool:
    """Whether the run named `<workflow id> <run id>` is still running (per Temporal)."""
    workflow_id, _, run_id = holder.partition(" ")
    if not workflow_id:
        return False
    handle = activity.client().get_workflow_handle(workflow_id, run_id=run_id or None)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise KubernetesUnavailable(
            f"cannot ask Temporal whether claim holder {workflow_id} still runs ({exc.message})"
        ) from None
    return described.status == WorkflowExecutionStatus.RUNNING


@activity.defn(name="claim_node")
@boundary
async def claim_node(inp: ClaimInput) -> None:
    """Hold the node name for this run; `NodeNameClaimed` if another live run holds it."""
    ns = settings().namespace
    name = lease_name(inp.node_name)
    api = kube.coordination()
    for _ in range(ATTEMPTS):
        lease = await _read(name)
        try:
            if lease is None:
                await kube.call_json(
                    f"create lease {ns}/{name}", api.create_namespaced_lease, ns, _body(inp)
                )
                return
            holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
            if holder == inp.holder:
                return
            if holder and await holder_alive(holder):
                purpose = (lease["metadata"].get("annotations") or {}).get(PURPOSE_ANNOTATION)
                since = (lease.get("spec") or {}).get("acquireTime", "?")
                raise NodeNameClaimed(
                    f"node {inp.node_name} is already being changed by workflow "
                    f"{holder.split(' ')[0]} ({purpose or 'unknown purpose'}, since {since}); "
                    "wait for it to finish or cancel it, then start again. Nothing was changed."
                )
            activity.logger.info("taking over the claim on %s from closed run %s", name, holder)
            await kube.call_json(
                f"take over lease {ns}/{name}",
                api.replace_namespaced_lease,
                name,
                ns,
                _body(inp, lease["metadata"]["resourceVersion"]),
            )
            return
        except kube.Conflict:
            continue  # someone else wrote it in between: look again
    raise KubernetesUnavailable(f"claiming node {inp.node_name}: the lease kept changing; retrying")


@activity.defn(name="release_node")
@boundary
async def release_node(inp: ClaimInput) -> None:
    """Give the node name up again; a claim held by someone else is left alone."""
    ns = settings().namespace
    name = lease_name(inp.node_name)
    for _ in range(ATTEMPTS):
        lease = await _read(name)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != inp.holder:
            return
        try:
            await kube.call_json(
                f"delete lease {ns}/{name}",
                kube.coordination().delete_namespaced_lease,
                name,
                ns,
                body={"preconditions": {"resourceVersion": lease["metadata"]["resourceVersion"]}},
            )
            return
        except kube.NotFound:
            return
        except kube.Conflict:
            continue
    raise KubernetesUnavailable(f"releasing node {inp.node_name}: the lease kept changing")
