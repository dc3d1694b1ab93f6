"""Each pool's drift reconciliation runs on a Temporal Schedule; these activities keep it so.

Called by the pool's `WindowsPool` workflow: `ensure_reconcile_schedule` when it reads the pool
(creates the Schedule `reconcile-<pool>`, or updates its interval and task queue when they
changed; with `trigger`, the pool's spec changed, so a run starts now as well) and
`delete_reconcile_schedule` when the pool goes. The Schedule starts `ReconcileWindowsPool` with
`{"pool": "<pool>"}` every `spec.reconcile.interval` plus a jitter (a tenth of the interval, at
most a minute), skips a run while the previous one still runs, and is never paused by a failed
run. Whether it is paused (`temporal schedule toggle`) is the admin's: an update keeps it.
Through the worker's Temporal client (`activity.client()`); every call is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.errors import boundary
from activities.pool_client import TemporalUnavailable

WORKFLOW = "ReconcileWindowsPool"
MIN_INTERVAL_S = 5  # a shorter interval would only keep SSH sessions busy
MAX_JITTER = timedelta(minutes=1)


@dataclass(frozen=True)
class ReconcileSchedule:
    pool: str
    schedule_id: str  # workflows/ids.py: reconcile-<pool>
    interval_s: int = 300
    task_queue: str = ""  # empty: this activity's own
    trigger: bool = False  # start a run now too (the pool's spec changed)


@dataclass(frozen=True)
class ScheduleRef:
    schedule_id: str


def interval_of(seconds: int) -> tuple[timedelta, timedelta]:
    """(interval, jitter) for a pool's `spec.reconcile.interval`."""
    every = timedelta(seconds=max(seconds, MIN_INTERVAL_S))
    return every, min(every / 10, MAX_JITTER)


def schedule_for(inp: ReconcileSchedule, task_queue: str) -> Schedule:
    every, jitter = interval_of(inp.interval_s)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW, {"pool": inp.pool}, id=inp.schedule_id, task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)], jitter=jitter),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, pause_on_failure=False),
        state=ScheduleState(note=f"winfleet: drift reconciliation of pool {inp.pool}"),
    )


def same_schedule(current: Schedule, wanted: Schedule) -> bool:
    a, b = current.action, wanted.action
    if not isinstance(a, ScheduleActionStartWorkflow):
        return False
    assert isinstance(b, ScheduleActionStartWorkflow)
    return (
        a.workflow == b.workflow
        and a.task_queue == b.task_queue
        and a.id == b.id
        and [i.every for i in current.spec.intervals] == [i.every for i in wanted.spec.intervals]
        and current.spec.jitter == wanted.spec.jitter
        and current.policy.overlap == wanted.policy.overlap
        and current.policy.pause_on_failure == wanted.policy.pause_on_failure
    )


def _unavailable(doing: str, exc: RPCError) -> TemporalUnavailable:
    return TemporalUnavailable(
        f"{doing}: Temporal answered {exc.status.name} ({exc.message[:200]}); retrying"
    )


@activity.defn(name="ensure_reconcile_schedule")
@boundary
async def ensure_reconcile_schedule(inp: ReconcileSchedule) -> bool:
    """Create or update the pool's Schedule (and trigger a run); True if it was written."""
    client = activity.client()
    wanted = schedule_for(inp, inp.task_queue or activity.info().task_queue)
    written = False
    try:
        try:
            handle = await client.create_schedule(inp.schedule_id, wanted)
            written = True
        except ScheduleAlreadyRunningError:
            handle = client.get_schedule_handle(inp.schedule_id)
            current = (await handle.describe()).schedule
            if not same_schedule(current, wanted):

                def keep_state(old: ScheduleUpdateInput) -> ScheduleUpdate:
                    state = old.description.schedule.state
                    return ScheduleUpdate(
                        Schedule(
                            action=wanted.action,
                            spec=wanted.spec,
                            policy=wanted.policy,
                            state=ScheduleState(note=state.note, paused=state.paused),
                        )
                    )

                await handle.update(keep_state)
                written = True
        if inp.trigger:
            await handle.trigger(overlap=ScheduleOverlapPolicy.BUFFER_ONE)
    except RPCError as exc:
        raise _unavailable(f"schedule {inp.schedule_id}", exc) from None
    return written


@activity.defn(name="delete_reconcile_schedule")
@boundary
async def delete_reconcile_schedule(inp: ScheduleRef) -> bool:
    """Delete the pool's Schedule; False when there was none."""
    try:
        await activity.client().get_schedule_handle(inp.schedule_id).delete()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise _unavailable(f"delete schedule {inp.schedule_id}", exc) from None
    return True
