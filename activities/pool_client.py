"""Talking to the fleet workflows from inside a workflow: through activities with a Temporal client.

A workflow can signal another workflow but cannot send it an update (a request with an
answer). Disruptors (`UpgradeWindowsPool`, later drift repair) ask their pool's `WindowsPool`
workflow for a disruption grant with `request_disruption`, an activity that sends the pool the
update of the same name and returns its decision; a pool workflow that is not running yet is
started first (signal-with-start), so a rollout started from the CLI never waits for the
watcher. `release_disruption` gives a grant back. `running_workflows` tells which workflow IDs
have a running execution (the pool clears grants whose holder is gone), `start_workflow_once`
starts a workflow or joins the running one (an upgrade per pool). Every call is idempotent:
grants are keyed by holder and node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.errors import KubernetesUnavailable, boundary
from activities.pool_contracts import (
    DisruptionDecision,
    DisruptionRelease,
    DisruptionRequest,
    PoolRun,
    PoolSignal,
)

POOL_WORKFLOW = "WindowsPool"


class TemporalUnavailable(KubernetesUnavailable):
    """The Temporal server did not answer as expected; the activity retries."""


@dataclass(frozen=True)
class WorkflowIdsInput:
    workflow_ids: tuple[str, ...]


@dataclass(frozen=True)
class StartOnce:
    workflow: str  # the workflow type
    workflow_id: str
    arg: dict[str, Any]  # its input, as plain JSON
    task_queue: str = ""  # empty: this activity's own task queue


async def _ensure_pool(pool: str, workflow_id: str) -> None:
    """Start the pool's workflow if it does not run (a signal the pool ignores otherwise)."""
    await activity.client().start_workflow(
        POOL_WORKFLOW,
        PoolRun(pool=pool),
        id=workflow_id,
        task_queue=activity.info().task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal="spec_changed",
        start_signal_args=[PoolSignal()],
    )


async def _update(workflow_id: str, pool: str, name: str, arg: Any, result: type) -> Any:
    handle = activity.client().get_workflow_handle(workflow_id)
    for attempt in range(2):
        try:
            return await handle.execute_update(name, arg, result_type=result)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or attempt:
                raise TemporalUnavailable(
                    f"{name} on {workflow_id}: Temporal answered {exc.status.name} "
                    f"({exc.message[:200]}); retrying"
                ) from None
            await _ensure_pool(pool, workflow_id)
    raise AssertionError("unreachable")


@activity.defn(name="request_disruption")
@boundary
async def request_disruption(req: DisruptionRequest) -> DisruptionDecision:
    """Ask the pool for leave to take `req.node` down (or to add its surge replacement)."""
    decision: DisruptionDecision = await _update(
        req.pool_workflow_id, req.pool, "request_disruption", req, DisruptionDecision
    )
    return decision


@activity.defn(name="release_disruption")
@boundary
async def release_disruption(rel: DisruptionRelease) -> bool:
    """Give a grant back (the node is back, or replaced); False if there was none."""
    released: bool = await _update(rel.pool_workflow_id, rel.pool, "release_disruption", rel, bool)
    return released


@activity.defn(name="running_workflows")
@boundary
async def running_workflows(inp: WorkflowIdsInput) -> tuple[str, ...]:
    """The IDs among `inp.workflow_ids` that have a running execution."""
    running = []
    for workflow_id in inp.workflow_ids:
        try:
            described = await activity.client().get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue
            raise TemporalUnavailable(
                f"describe {workflow_id}: Temporal answered {exc.status.name}; retrying"
            ) from None
        if described.status == WorkflowExecutionStatus.RUNNING:
            running.append(workflow_id)
    return tuple(running)


@activity.defn(name="start_workflow_once")
@boundary
async def start_workflow_once(inp: StartOnce) -> str:
    """Start `inp.workflow` under `inp.workflow_id`, or join the running one; its run ID."""
    handle = await activity.client().start_workflow(
        inp.workflow,
        inp.arg,
        id=inp.workflow_id,
        task_queue=inp.task_queue or activity.info().task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return handle.result_run_id or handle.run_id or ""
