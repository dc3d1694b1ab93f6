"""The typed step helper: run one activity under a named `policies.Step`.

`run(activity, arg, step)` keeps the activity's input and result types (no `Any` between
workflow and activity) and applies the step's per-attempt and total time bounds, heartbeat
timeout, retry policy and a cancellation that waits for the running attempt to stop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
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
