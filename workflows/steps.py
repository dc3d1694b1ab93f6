"""The typed step helper: run one activity under a named `policies.Step`.

`run(activity, arg, step)` keeps the activity's input and result types (no `Any` between
workflow and activity) and applies the step's per-attempt and total time bounds, heartbeat
timeout, retry policy and a cancellation that waits for the running attempt to stop.
`local(...)` does the same as a local activity: for short steps that make a few Kubernetes
calls and never wait (claim, preflight, finalize, release). It runs on the worker that runs the
workflow task, with no activity task through the server (a marker in the history instead of
three events), retried by that worker under the same policy; it cannot heartbeat. The SDK
raises a local activity's failure bare (an ApplicationError, a TimeoutError), an activity
task's inside an ActivityError: `local` wraps it the same way, so callers handle both alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError, FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows.policies import Step

I = TypeVar("I")  # noqa: E741 - input
O = TypeVar("O")  # noqa: E741 - output


async def run(activity: Callable[[I], Awaitable[O]], arg: I, step: Step) -> O:
    """Execute `activity(arg)` as `step` says."""
    return await workflow.execute_activity(
        activity,
        arg,
        start_to_close_timeout=step.attempt,
        schedule_to_close_timeout=step.total,
        heartbeat_timeout=step.heartbeat,
        retry_policy=step.retry,
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )


async def local(activity: Callable[[I], Awaitable[O]], arg: I, step: Step) -> O:
    """Execute `activity(arg)` as a local activity under `step` (no heartbeat: short steps)."""
    try:
        return await workflow.execute_local_activity(
            activity,
            arg,
            start_to_close_timeout=step.attempt,
            schedule_to_close_timeout=step.total,
            retry_policy=step.retry,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
    except (ActivityError, CancelledError):
        raise  # already an activity's failure, or a cancellation (handled as such by callers)
    except FailureError as err:
        name = getattr(activity, "__name__", "activity")
        raise ActivityError(
            f"local activity {name} failed",
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=name,
            activity_id="",
            retry_state=None,
        ) from err


def bounded(step: Step, activity_budget: timedelta, margin: timedelta) -> Step:
    """`step` stretched to hold an activity that itself waits `activity_budget`."""
    attempt = activity_budget + margin
    return Step(attempt=attempt, total=max(step.total, attempt * 2), retry=step.retry)


async def wait(condition: Callable[[], bool], limit: timedelta) -> bool:
    """Wait until `condition()` holds or `limit` passes; True when it holds."""
    try:
        await workflow.wait_condition(condition, timeout=limit)
    except TimeoutError:
        return False
    return True
