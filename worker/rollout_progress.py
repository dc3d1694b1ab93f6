"""Live progress of a pool's rollout (`UpgradeWindowsPool`), read through its `progress` query.

`render` turns one `RolloutProgress` into the lines `winfleet upgrade` shows: a bar with
done/total, the target version and state, the nodes in flight, what the rollout waits for, and
an ETA from the pace so far (time since the rollout started per node done, times the nodes
left). `watch` polls until the rollout ends — following it across continue-as-new, so a version
queued during the rollout is watched too — and on a terminal redraws in place; otherwise (CI,
pipes) it prints a line whenever something but the clock changes, like worker/progress.py.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError

from activities.pool_contracts import RolloutProgress
from worker.progress import TERMINAL
from workflows.failures import describe
from workflows.fleet.plan import format_duration

BAR_WIDTH = 24
QUERY_TIMEOUT = timedelta(seconds=10)  # a closed rollout's query replays its history first
SHOWN_IN_FLIGHT = 6


@dataclass(frozen=True)
class Outcome:
    status: str  # completed | failed | cancelled | terminated | timed out
    message: str  # the workflow's result, or why it failed
    last: RolloutProgress | None


def eta_seconds(p: RolloutProgress, now: datetime | None) -> float | None:
    """Seconds left at the pace so far; None before the first node is done, when paused, or
    without a clock."""
    done, total = len(p.done), len(p.plan)
    if now is None or p.paused or not done or done >= total or not p.started_at:
        return None
    try:
        started = datetime.fromisoformat(p.started_at)
    except ValueError:
        return None
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    elapsed = max(0.0, (now - started).total_seconds())
    return elapsed / done * (total - done)


def render(p: RolloutProgress, now: datetime | None) -> list[str]:
    """The progress lines of one query answer (`now` None: without the ETA)."""
    if not p.target_version:  # it has not read its pool yet
        return [f"pool {p.pool}: {p.state} the rollout"]
    done, total = len(p.done), len(p.plan)
    filled = BAR_WIDTH * done // total if total else BAR_WIDTH
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    head = f"pool {p.pool} -> {p.target_version} [{bar}] {done}/{total} {p.state}"
    if p.paused:
        head += " (PAUSED: `winfleet resume --pool " + p.pool + "`)"
    eta = eta_seconds(p, now)
    if eta is not None:
        head += f", ETA {format_duration(eta)}"
    lines = [head]
    busy = [n for n in p.in_flight if n not in p.done]  # a node done is released a moment later
    if busy:
        shown = ", ".join(busy[:SHOWN_IN_FLIGHT])
        more = len(busy) - SHOWN_IN_FLIGHT
        lines.append(f"  in flight: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    if p.waiting_for:
        lines.append(f"  waiting for: {p.waiting_for}")
    if p.message:
        lines.append(f"  {p.message}")
    return lines


def change_key(p: RolloutProgress) -> tuple[object, ...]:
    """What a non-terminal output prints a new line for (everything but the clock)."""
    return tuple(render(p, None))


async def _query(client: Client, workflow_id: str) -> RolloutProgress | None:
    try:
        got: RolloutProgress = await client.get_workflow_handle(workflow_id).query(
            "progress", result_type=RolloutProgress, rpc_timeout=QUERY_TIMEOUT
        )
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
        return None  # between runs (continue-as-new) or racing a task: the next tick tells
    return got


async def _ended(client: Client, workflow_id: str) -> Outcome | None:
    handle = client.get_workflow_handle(workflow_id)
    desc = await handle.describe()
    if desc.status not in TERMINAL:
        return None
    if desc.status == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
        return Outcome("completed", str(result), None)
    try:
        await handle.result()
    except WorkflowFailureError as err:
        return Outcome(TERMINAL[desc.status], describe(err), None)
    return Outcome(TERMINAL[desc.status], "", None)


async def watch(
    client: Client, workflow_id: str, *, out: TextIO = sys.stdout, interval: float = 0.5
) -> Outcome:
    """Show the rollout's progress until it ends; how it ended."""
    tty = out.isatty()
    drawn = 0
    last: RolloutProgress | None = None
    printed: tuple[object, ...] | None = None
    while True:
        outcome = await _ended(client, workflow_id)
        # Asked after `_ended`: once the rollout has ended, this is its final state (a closed
        # workflow answers queries too), so the last line drawn is the end, not the step before.
        p = await _query(client, workflow_id)
        last = p or last
        if p is not None:
            lines = render(p, datetime.now(UTC))
            if tty:
                if drawn:
                    out.write(f"\x1b[{drawn}F\x1b[J")
                out.write("".join(f"\x1b[2K{line}\n" for line in lines))
                drawn = len(lines)
            elif change_key(p) != printed:
                printed = change_key(p)
                out.write(" | ".join(line.strip() for line in lines) + "\n")
            out.flush()
        if outcome is not None:
            return Outcome(outcome.status, outcome.message, last)
        await asyncio.sleep(interval)
