"""Helpers for workflow tests: start onboardings, read the cluster, the trace and the history."""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.service import RPCError

from activities.contracts import OnboardNodeInput, OnboardNodeResult
from sim.twin import Twin
from workflows.onboard import OnboardWindowsNode

SPANS = InMemorySpanExporter()


@dataclass
class World:
    twin: Twin
    client: Client
    task_queue: str


# The activities of each phase, in workflow order (a phase may run several).
PHASE_ACTIVITIES = {
    "vm-create": ("create_vm",),
    "wait-ssh": ("wait_for_ssh",),
    "copy-payload": ("copy_payload",),
    "configure-kubelet": ("configure_kubelet",),
    "approve-csrs": ("approve_node_csrs",),
    "hybrid-overlay": ("wait_node_annotation", "start_hybrid_overlay"),
    "cni": ("configure_cni",),
    "kube-proxy": ("start_kube_proxy",),
    "node-ready": ("wait_node_ready", "finalize_node"),
}


async def start(world: World, inp: OnboardNodeInput) -> WorkflowHandle[Any, OnboardNodeResult]:
    return await world.client.start_workflow(
        OnboardWindowsNode.run,
        inp,
        id=f"onboard-{inp.pool}-{inp.node_name}-{uuid.uuid4().hex[:6]}",
        task_queue=world.task_queue,
    )


def node(world: World, name: str) -> dict[str, Any] | None:
    return world.twin.kube.store.get("nodes", name)


def is_ready(obj: dict[str, Any]) -> bool:
    conditions = obj.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def activity_spans(workflow_id: str) -> list[str]:
    """`RunActivity:<type>` span names of one workflow, in start order."""
    spans = [
        s
        for s in SPANS.get_finished_spans()
        if s.name.startswith("RunActivity:")
        and (s.attributes or {}).get("temporalWorkflowID") == workflow_id
    ]
    spans.sort(key=lambda s: s.start_time or 0)
    return [s.name.split(":", 1)[1] for s in spans]


def steps_run(history: WorkflowHistory) -> list[str]:
    """The activity types a run started, in order: activity tasks it scheduled and local
    activities it recorded (a `core_local_activity` marker each)."""
    names = []
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            names.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        elif e.marker_recorded_event_attributes.marker_name == "core_local_activity":
            details = e.marker_recorded_event_attributes.details["data"].payloads[0].data
            names.append(str(json.loads(details)["activity_type"]))
    return names


def phases_from_activities(names: list[str]) -> list[str]:
    """The phases the activities belong to, in order of first appearance (a phase's activity
    may run again later, e.g. the node-ready phase sweeps late serving CSRs)."""
    owner = {a: phase for phase, acts in PHASE_ACTIVITIES.items() for a in acts}
    phases: list[str] = []
    for name in names:
        phase = owner.get(name)
        if phase and phase not in phases:
            phases.append(phase)
    return phases


def events(world: World, reason: str) -> list[dict[str, Any]]:
    return [e for e in world.twin.kube.store.list("events") if e.get("reason") == reason]


async def end_leftovers(client: Client, queue: str) -> None:
    """Terminate what a test left running on its queue (a pool workflow runs until its pool
    goes), so the next test starts clean and no workflow is evicted mid-step at worker stop."""
    query = f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"
    async for wf in client.list_workflows(query):
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(wf.id, run_id=wf.run_id).terminate("test ended")
