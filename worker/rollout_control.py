"""Starting and steering a pool's rollout from the CLI, through Temporal.

- `start_rollout`: start `UpgradeWindowsPool` (`upgrade-<pool>`) or join the running one
  (`WorkflowIDConflictPolicy.USE_EXISTING`), input `{"pool": <pool>}`: the rollout reads the
  target from the pool's `spec.version`.
- `pause` / `resume`: the signals of the same names; `set_max_unhealthy`: the update (the
  workflow's validator answers a bad value, `CommandFailed` with exit code 2 carries its words).
- `pool_status`: the rollout's `progress` query and the pool workflow's (`pool-<pool>`).
Each says clearly when no rollout runs. Used by `winfleet upgrade|pause|resume|status|
set-max-unhealthy` (worker/cli.py).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.pool_contracts import RolloutProgress, UpgradeInput
from worker.errors import CommandFailed
from worker.progress import TERMINAL
from worker.temporal import task_queue
from workflows import ids
from workflows.failures import cause

_COUNT = re.compile(r"^-?\d+$")


async def start_rollout(client: Client, pool: str) -> str:
    """Start the pool's rollout, or join the one running; its workflow ID."""
    handle = await client.start_workflow(
        "UpgradeWindowsPool",
        UpgradeInput(pool=pool),
        id=ids.upgrade(pool),
        task_queue=task_queue(),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return handle.id


async def _status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The status of the workflow's latest run; None when there never was one."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return desc.status


async def _running(client: Client, workflow_id: str) -> WorkflowHandle[Any, Any] | None:
    running = await _status(client, workflow_id) == WorkflowExecutionStatus.RUNNING
    return client.get_workflow_handle(workflow_id) if running else None


async def running_rollout(client: Client, pool: str) -> WorkflowHandle[Any, Any]:
    """The pool's running rollout; CommandFailed when none runs."""
    handle = await _running(client, ids.upgrade(pool))
    if handle is None:
        raise CommandFailed(
            f"no rollout of pool {pool} runs (workflow {ids.upgrade(pool)}); start one with "
            f"`winfleet upgrade --pool {pool} --version <version>`"
        )
    return handle


async def pause(client: Client, pool: str) -> str:
    handle = await running_rollout(client, pool)
    await handle.signal("pause")
    return (
        f"paused the rollout of pool {pool}: no further node is taken down; nodes in flight "
        "finish. `winfleet resume --pool " + pool + "` goes on."
    )


async def resume(client: Client, pool: str) -> str:
    handle = await running_rollout(client, pool)
    await handle.signal("resume")
    return f"resumed the rollout of pool {pool}"


def max_unhealthy_value(text: str) -> int | str:
    """`2` becomes the number 2 (what the update takes for a count); anything else stays text."""
    return int(text) if _COUNT.match(text.strip()) else text.strip()


async def set_max_unhealthy(client: Client, pool: str, text: str) -> str:
    """Send the update; the rollout's answer, or CommandFailed (code 2) with its refusal."""
    handle = await running_rollout(client, pool)
    try:
        answer = await handle.execute_update(
            "set_max_unhealthy", max_unhealthy_value(text), result_type=str
        )
    except WorkflowUpdateFailedError as err:
        raise CommandFailed(f"set-max-unhealthy {text} refused: {cause(err)[1]}", code=2) from None
    return str(answer)


async def _progress(handle: WorkflowHandle[Any, Any], result_type: type | None) -> Any:
    try:
        return await handle.query("progress", result_type=result_type)
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
        return None


async def pool_status(client: Client, pool: str) -> dict[str, Any]:
    """One JSON object: the running rollout's progress (else how the last one ended) and the
    pool workflow's progress."""
    rollout = await _running(client, ids.upgrade(pool))
    pool_wf = await _running(client, ids.pool(pool))
    if rollout is None and pool_wf is None:
        raise CommandFailed(
            f"neither a rollout ({ids.upgrade(pool)}) nor the pool workflow ({ids.pool(pool)}) "
            f"of pool {pool} runs: is the pool applied and the worker running?"
        )
    out: dict[str, Any] = {"pool": pool, "rollout": None}
    progress: RolloutProgress | None = (
        await _progress(rollout, RolloutProgress) if rollout else None
    )
    if progress is not None:
        out["rollout"] = {"workflow_id": ids.upgrade(pool), **asdict(progress)}
    elif rollout is None:
        last = await _status(client, ids.upgrade(pool))
        out["last_rollout"] = None if last is None else TERMINAL.get(last, last.name.lower())
    out["pool_workflow"] = (
        None
        if pool_wf is None
        else {"workflow_id": ids.pool(pool), **(await _progress(pool_wf, None) or {})}
    )
    return out
