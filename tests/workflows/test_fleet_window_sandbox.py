"""The maintenance-window logic runs inside the Temporal workflow sandbox (zoneinfo reads tz files).

A tiny workflow asks `window_state` with `workflow.now()` on the real dev server; the answer
matches the same function outside the sandbox, and the history replays.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

with workflow.unsafe.imports_passed_through():
    from activities.pool_contracts import DAYS, MaintenanceWindow
    from workflows.fleet.window import window_state

pytestmark = pytest.mark.asyncio(loop_scope="session")

# A zone nothing else in the test process loads first, so its file is read inside the sandbox.
WINDOW = MaintenanceWindow(
    days=DAYS[:5], start="09:00", duration_s=8 * 3600, time_zone="Pacific/Chatham"
)


@dataclass(frozen=True)
class WindowAnswer:
    now: str
    is_open: bool
    next_change: str


@workflow.defn(sandboxed=True)
class AskWindow:
    @workflow.run
    async def run(self, window: MaintenanceWindow) -> WindowAnswer:
        now = workflow.now()
        is_open, next_change = window_state(window, now)
        return WindowAnswer(
            now.isoformat(), is_open, next_change.isoformat() if next_change else ""
        )


async def test_window_state_answers_inside_the_workflow_sandbox_as_outside(
    temporal: WorkflowEnvironment,
) -> None:
    queue = f"window-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal.client, task_queue=queue, workflows=[AskWindow]):
        handle = await temporal.client.start_workflow(
            AskWindow.run, WINDOW, id=f"window-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        answer = await handle.result()
    now = datetime.datetime.fromisoformat(answer.now)
    is_open, next_change = window_state(WINDOW, now)
    assert answer == WindowAnswer(
        answer.now, is_open, next_change.isoformat() if next_change else ""
    )
    assert answer.next_change  # a weekday window always has a next change
    await Replayer(workflows=[AskWindow]).replay_workflow(await handle.fetch_history())
