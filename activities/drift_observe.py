"""Drift reconciliation, cluster level: what a pool's nodes, hosts and VMs look like. Read-only.

`observe_drift` (called first by `ReconcileWindowsPool`) returns one `ClusterObservation`:
- the pool's Nodes (Ready and since when, version, cordon, deletion) and who is changing each
  now: a claim (Lease `winfleet-node-<node>`, activities/claims.py: an onboarding or
  decommission in flight) or a grant of the pool's ledger held by another workflow (the pool's
  status, `budget.holders`);
- BYOH: the hosts listed in ConfigMap `windows-instances` that no node runs on, and nodes whose
  host is no longer listed;
- cloud pools: the VMs tagged for this cluster and pool (activities/cloud/ownership.py), from
  which a Node whose VM is gone and a VM without a Node (an orphan, unless a claim shows its
  onboarding in flight) are told.
It writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import activity

from activities import kube
from activities.claims import LEASE_PREFIX, NODE_LABEL
from activities.cloud import aws, azure, ownership
from activities.cloud.ownership import TaggedVm
from activities.config import settings
from activities.contracts import ByohHostSpec, Platform
from activities.drift_contracts import ClusterObservation, NodeState, OrphanVm
from activities.errors import InvalidRequest, PermanentError, boundary
from activities.node import JsonObject
from activities.pool_state import byoh_hosts, node_view, pool_nodes, pool_object


@dataclass(frozen=True)
class ObserveDriftInput:
    pool: str
    platform: Platform
    byoh_hosts: tuple[ByohHostSpec, ...] = ()  # the spec's list; empty: every listed host
    region: str = ""  # AWS: the pool's region (empty: the worker's)
    resource_group: str = ""  # Azure: the pool's resource group (empty: the worker's)


def _ready_since(node: JsonObject) -> str:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return str(c.get("lastTransitionTime") or "")
    return ""


async def _claims() -> dict[str, str]:
    """Node name -> the workflow holding its claim (onboarding, decommission, repair)."""
    ns = settings().namespace
    listing = await kube.call_json(
        f"list node claims in {ns}",
        kube.coordination().list_namespaced_lease,
        ns,
        label_selector=NODE_LABEL,
    )
    held: dict[str, str] = {}
    for lease in (listing or {}).get("items") or ():
        name = str((lease.get("metadata") or {}).get("name", ""))
        holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
        if name.startswith(LEASE_PREFIX) and holder:
            held[name[len(LEASE_PREFIX) :]] = holder.split(" ")[0]
    return held


def _granted(pool_obj: JsonObject | None) -> dict[str, str]:
    """Node name -> holder of its grant, as the pool workflow last wrote its status."""
    holders = (((pool_obj or {}).get("status") or {}).get("budget") or {}).get("holders") or ()
    return {str(h.get("node")): str(h.get("holder")) for h in holders if h.get("node")}


async def _pool_vms(inp: ObserveDriftInput) -> list[TaggedVm] | None:
    """The pool's VMs, or None for BYOH pools."""
    if inp.platform == Platform.BYOH:
        return None
    cluster = await ownership.cluster_id()
    if inp.platform == Platform.AWS:
        return await aws.pool_instances(aws.region_for(inp.region), cluster, inp.pool)
    group = inp.resource_group or settings().azure_resource_group or ""
    if not group:
        raise InvalidRequest(
            f"cannot list the VMs of pool {inp.pool}: no resource group (the pool's "
            "azure.resourceGroup or WINFLEET_AZURE_RESOURCE_GROUP)"
        )
    return await azure.pool_vms(group, cluster, inp.pool)


def _node_state(node: JsonObject, busy: str) -> NodeState:
    view = node_view(node)
    return NodeState(
        name=view.name,
        address=view.address,
        ready=view.ready,
        ready_since=_ready_since(node),
        unschedulable=view.unschedulable,
        deleting=view.deleting,
        version=view.version,
        busy=busy,
    )


@activity.defn(name="observe_drift")
@boundary
async def observe_drift(inp: ObserveDriftInput) -> ClusterObservation:
    """The pool's nodes, hosts and VMs as they are now. Read-only."""
    pool_obj = await pool_object(inp.pool)
    if pool_obj is None or (pool_obj.get("metadata") or {}).get("deletionTimestamp"):
        return ClusterObservation(found=False)
    raw = await pool_nodes(inp.pool)
    busy = {**_granted(pool_obj), **await _claims()}
    mine = activity.info().workflow_id
    busy = {node: holder for node, holder in busy.items() if holder != mine}
    nodes = tuple(
        sorted((_node_state(n, busy.get(node_view(n).name, "")) for n in raw), key=_by_name)
    )
    names = {n.name for n in nodes}
    out: dict[str, Any] = {"found": True, "nodes": nodes}
    if inp.platform == Platform.BYOH:
        listed = await byoh_hosts(inp.byoh_hosts)
        addresses = {h.address for h in listed}
        out["listed_hosts"] = len(listed)
        out["byoh_added"] = tuple(sorted(addresses - {n.address for n in nodes}))
        out["byoh_removed"] = tuple(n.name for n in nodes if n.address not in addresses)
        return ClusterObservation(**out)
    try:
        vms = await _pool_vms(inp) or []
    except PermanentError as exc:  # no cloud access: the nodes are still worth checking
        out["vm_problem"] = f"VMs not checked: {exc.message}"
        return ClusterObservation(**out)
    with_vm = {v.owner.node for v in vms}
    out["vms_checked"] = True
    out["vm_gone"] = tuple(n.name for n in nodes if n.name not in with_vm and not n.deleting)
    out["orphan_vms"] = tuple(
        OrphanVm(vm_id=v.vm_id, node=v.owner.node, launched=v.launched)
        for v in sorted(vms, key=lambda v: v.vm_id)
        if v.owner.node not in names and v.owner.node not in busy
    )
    return ClusterObservation(**out)


def _by_name(n: NodeState) -> str:
    return n.name
