"""Live progress of running onboardings, read through the `progress` query.

On a terminal the table redraws in place; otherwise (CI, pipes) a line is printed whenever a
node changes phase or status. Used by `winfleet onboard` and `winfleet status`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError

from activities.contracts import PHASES, Progress

TERMINAL = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
}


@dataclass
class Row:
    workflow_id: str
    node: str
    phase: str = "pending"
    status: str = "running"
    done: int = 0
    detail: str = ""
    started: float = 0.0
    finished: float | None = None

    def line(self, now: float) -> str:
        elapsed = (self.finished or now) - self.started
        bar = "#" * self.done + "." * (len(PHASES) - self.done)
        text = f"{self.node:<16} [{bar}] {self.phase:<18} {self.status:<12} {elapsed:6.1f}s"
        if self.detail and self.status != "running":
            text += f"  {self.detail[:160]}"
        return text


async def _poll(handle: WorkflowHandle[object, object], row: Row) -> None:
    try:
        desc = await handle.describe()
        if desc.status in TERMINAL:
            row.status = TERMINAL[desc.status]
            row.finished = row.finished or time.monotonic()
        p: Progress = await handle.query("progress", result_type=Progress)
        row.phase = p.phase or row.phase
        row.done = len(p.completed) + (1 if p.status == "completed" else 0)
        row.done = min(row.done, len(PHASES))
        if desc.status not in TERMINAL:
            row.status = p.status
        row.detail = p.detail
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
        pass  # not started yet, or the query raced a workflow task: the next tick will tell


async def watch(
    client: Client,
    workflow_ids: list[tuple[str, str]],
    *,
    out: TextIO = sys.stdout,
    interval: float = 0.5,
) -> list[Row]:
    """Poll until every workflow has ended; returns the final rows."""
    start = time.monotonic()
    rows = [Row(wid, node, started=start) for wid, node in workflow_ids]
    handles = [client.get_workflow_handle(wid) for wid, _ in workflow_ids]
    tty = out.isatty()
    drawn = 0
    last: dict[str, tuple[str, str]] = {}
    while True:
        await asyncio.gather(*(_poll(h, r) for h, r in zip(handles, rows, strict=True)))
        now = time.monotonic()
        if tty:
            if drawn:
                out.write(f"\x1b[{drawn}F")
            for r in rows:
                out.write("\x1b[2K" + r.line(now) + "\n")
            drawn = len(rows)
        else:
            for r in rows:
                key = (r.phase, r.status)
                if last.get(r.workflow_id) != key:
                    last[r.workflow_id] = key
                    out.write(r.line(now) + "\n")
        out.flush()
        if all(r.finished is not None for r in rows):
            return rows
        await asyncio.sleep(interval)
