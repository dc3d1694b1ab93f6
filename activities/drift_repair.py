"""Drift repair: the few steps around the onboarding activities that a repair needs.

`ReconcileWindowsPool` puts a node right with the activities onboarding uses (copy_payload,
configure_kubelet, start_hybrid_overlay, configure_cni, start_kube_proxy, approve_node_csrs);
these activities add what onboarding never has to do:
- `service_control`: forget an applied-definition marker that no longer tells the truth (a
  service's command line was edited by hand, so ensure_service must apply winfleet's again),
  stop services whose binaries are about to be replaced (Windows does not let a running
  executable be overwritten), set services back to start automatically, ensure windows_exporter
  as winfleet defines it, and start services. Each looks first and acts only where needed.
- `record_repair`: an Event on the Node saying what was put right (`DriftRepaired`) or what is
  still broken (`DriftRepairFailed`), once per run and node, and, once it is right, the node's
  desired-state annotation (activities/desired_state.py) when it differs.
- `retire_orphan_vm`: delete a VM tagged for the pool whose node does not exist (the caller
  holds the node name's claim, so no onboarding can start meanwhile).
Command lines come from activities/windows/ builders; every step is idempotent.
"""

from __future__ import annotations

import hashlib

from temporalio import activity

from activities import desired_state, events, kube, metrics
from activities.cloud.vm import retire_vm
from activities.config import settings
from activities.contracts import Platform, PoolVm
from activities.drift_contracts import (
    DESIRED_STATE_ANNOTATION,
    Check,
    OrphanVmInput,
    RepairRecord,
    ServiceControlInput,
)
from activities.errors import InvalidRequest, boundary
from activities.kubelet import APPLIED_MARKER
from activities.network import ensure_service, service_state
from activities.node import call_json, get_node
from activities.ssh import HostSession, session_for
from activities.tracing import span
from activities.windows import paths, powershell, services

DRIFT_REPAIRED = "DriftRepaired"
DRIFT_REPAIR_FAILED = "DriftRepairFailed"


def marker_of(name: str) -> paths.WindowsPath:
    """Where the host keeps what winfleet last applied to service `name` (kubelet: the
    ignition WMCB applied)."""
    if name == services.KUBELET_SERVICE:
        return APPLIED_MARKER
    return services.definition_marker(name)


async def _forget(host: HostSession, name: str) -> None:
    marker = marker_of(name)
    if await host.remote_size(marker) is not None:
        rm = powershell.remove_item(marker)
        await host.run(powershell.powershell(rm, display=f"forget applied definition of {name}"))


async def _stop(host: HostSession, name: str) -> None:
    state = await service_state(host, name)
    if state is not None and state.running:
        stop = powershell.stop_service(name)
        await host.run(powershell.powershell(stop, display=f"stop service {name}"))


async def _automatic(host: HostSession, name: str) -> None:
    state = await service_state(host, name)
    if state is not None and state.start_type != "Automatic":
        auto = powershell.set_service_startup_type(name, "Automatic")
        await host.run(powershell.powershell(auto, display=f"start {name} automatically"))


async def _start(host: HostSession, name: str) -> None:
    state = await service_state(host, name)
    if state is not None and not state.running:
        start = powershell.start_service(name)
        await host.run(powershell.powershell(start, display=f"start service {name}"))


@activity.defn(name="service_control")
@boundary
async def service_control(inp: ServiceControlInput) -> None:
    """Forget, stop, make automatic, ensure windows_exporter, start: only what differs."""
    async with session_for(inp) as host:
        with span("drift service control", node=inp.node_name):
            for name in inp.forget:
                await _forget(host, name)
            for name in inp.stop:
                await _stop(host, name)
            for name in inp.automatic:
                await _automatic(host, name)
            if inp.exporter:
                await ensure_service(host, services.windows_exporter_service(), inp.node_name)
            for name in inp.start:
                await _start(host, name)


def _kind(label: str) -> str:
    """The check of a repair's label (`<check> <subject>`), a bounded metric label; anything
    else (a failed step's description) is `other`."""
    first = label.split(" ", 1)[0]
    return first if first in {c.value for c in Check} else "other"


@activity.defn(name="record_repair")
@boundary
async def record_repair(inp: RepairRecord) -> None:
    """Event on the Node (once per run), and its desired-state annotation if it changed."""
    for label in inp.repaired:
        metrics.reconcile_repair(_kind(label), ok=True)
    for label in inp.still_broken:
        metrics.reconcile_repair(_kind(label), ok=False)
    node = await get_node(inp.node_name)
    if node is None:
        return
    meta = node["metadata"]
    notes = meta.get("annotations") or {}
    wanted = ""
    if inp.node_subnet and inp.machine_hash and not inp.still_broken:
        state = await desired_state.for_node(
            node=inp.node_name,
            version=inp.version or settings().version,
            machine=inp.machine_hash,
            node_subnet=inp.node_subnet,
        )
        wanted = state.annotation()
    if wanted and notes.get(DESIRED_STATE_ANNOTATION) != wanted:
        await call_json(
            f"annotate the desired state of node {inp.node_name}",
            kube.core().patch_node,
            inp.node_name,
            {"metadata": {"annotations": {DESIRED_STATE_ANNOTATION: wanted}}},
            _content_type="application/merge-patch+json",
        )
    repaired = ", ".join(inp.repaired) or "nothing"
    involved: events.InvolvedObject = {
        "apiVersion": "v1",
        "kind": "Node",
        "name": inp.node_name,
        "uid": str(meta.get("uid", "")),
    }
    reason = DRIFT_REPAIR_FAILED if inp.still_broken else DRIFT_REPAIRED
    once = hashlib.sha256(f"{inp.run}/{reason}".encode()).hexdigest()[:16]
    if inp.still_broken:
        message = f"winfleet repaired {repaired}; still broken: {', '.join(inp.still_broken)}"
    else:
        message = f"winfleet put drift right: {repaired}"
    await events.record_event(
        reason=reason,
        message=message,
        involved=involved,
        type_="Warning" if inp.still_broken else "Normal",
        name=f"{inp.node_name}.{once}.drift",
    )


@activity.defn(name="retire_orphan_vm")
@boundary
async def retire_orphan_vm(inp: OrphanVmInput) -> bool:
    """Delete the pool's VM tagged for `inp.node_name`, which has no Node; False (nothing done)
    when a Node of that name exists by now."""
    if await get_node(inp.node_name) is not None:
        activity.logger.info("node %s exists now: its VM is no orphan", inp.node_name)
        return False
    vm = PoolVm(
        pool=inp.pool,
        node_name=inp.node_name,
        platform=inp.platform,
        region=inp.region,
        resource_group=inp.resource_group,
    )
    if vm.platform == Platform.BYOH:
        raise InvalidRequest(f"node {inp.node_name}: BYOH hosts are never deleted")
    return await retire_vm(vm)
