"""`winfleet upgrade|pause|resume|status|set-max-unhealthy` as a user runs them: subprocesses
against the dev server, the twin and the test's worker (with its pool watcher)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from fleet import (
    available,
    blocking_budget_on,
    get_pool,
    make_pool,
    pool_nodes,
    spawn_winfleet,
    version_of,
    watching,
    winfleet,
)
from onboarding import World
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_dry_run_prints_order_batches_time_and_blocking_budgets_and_changes_nothing(
    world: World, temporal: WorkflowEnvironment
) -> None:
    async with watching(world):
        names = sorted(
            await make_pool(
                world, "cdry", {"platform": "aws", "replicas": 2, "version": "1.0.0"}, 2
            )
        )
        await blocking_budget_on(world, names[0])
        before = get_pool(world, "cdry") or {}

        code, out, err = await winfleet(
            world, temporal, "upgrade", "--pool", "cdry", "--version", "1.1.0", "--dry-run"
        )

    assert code == 0, err + out
    lines = out.splitlines()
    assert lines[0] == "pool cdry: 2 node(s) to move to 1.1.0"
    order = lines[1].removeprefix("order: ").split(", ")
    assert sorted(order) == names
    assert lines[2:4] == [f"batch 1: {order[0]}", f"batch 2: {order[1]}"]
    assert lines[4].startswith("estimated time: ") and "2 batch(es) x" in lines[4]
    assert lines[5] == "strategy: Replace, 1 node(s) down at a time (maxUnhealthy 1 of 2 replicas)"
    assert "the mean of the pool's last 2 completed onboarding(s)" in lines[6], out
    assert f"  default/db-budget: default/db-0 on {names[0]}" in lines
    assert lines[-1] == "dry run: nothing was changed"

    after = get_pool(world, "cdry") or {}
    assert after["spec"]["version"] == "1.0.0"
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    with pytest.raises(RPCError) as info:
        await world.client.get_workflow_handle("upgrade-cdry").describe()
    assert info.value.status == RPCStatusCode.NOT_FOUND
    assert sorted(n["metadata"]["name"] for n in pool_nodes(world, "cdry")) == names


async def rollout_progress(world: World, temporal: WorkflowEnvironment) -> dict[str, Any]:
    code, out, err = await winfleet(world, temporal, "status", "--pool", "cup")
    assert code == 0, err
    status = json.loads(out)
    rollout = status["rollout"]
    assert isinstance(rollout, dict), status
    return rollout


async def progress_until(
    world: World,
    temporal: WorkflowEnvironment,
    what: str,
    probe: Callable[[dict[str, Any]], bool],
    within: float = 120.0,
) -> dict[str, Any]:
    """Ask `winfleet status` until the rollout's progress satisfies `probe`."""
    deadline = time.monotonic() + within
    while True:
        rollout = await rollout_progress(world, temporal)
        if probe(rollout):
            return rollout
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {rollout}"
        await asyncio.sleep(0.5)


async def test_a_cli_rollout_outlives_ctrl_c_and_is_paused_inspected_resumed_and_completed(
    world: World, temporal: WorkflowEnvironment
) -> None:
    async with watching(world):
        first = await make_pool(
            world, "cup", {"platform": "aws", "replicas": 2, "version": "1.0.0"}, 2
        )

        # Ctrl-C leaves the rollout running.
        watcher = await spawn_winfleet(
            world, temporal, "upgrade", "--pool", "cup", "--version", "1.1.0"
        )
        assert watcher.stdout is not None
        started = await asyncio.wait_for(watcher.stdout.readline(), 60)
        assert started.decode() == "pool cup: spec.version is 1.1.0\n"
        assert b"rollout upgrade-cup of pool cup started" in await watcher.stdout.readline()
        watcher.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(watcher.communicate(), 30)
        assert watcher.returncode == 130
        assert "the rollout keeps running" in err.decode()
        handle = world.client.get_workflow_handle("upgrade-cup")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

        # Paused: whatever is in flight finishes, nothing new starts, status says so.
        code, out, err = await winfleet(world, temporal, "pause", "--pool", "cup")
        assert code == 0, err
        assert "paused the rollout of pool cup" in out
        rollout = await rollout_progress(world, temporal)
        assert rollout["paused"] is True and rollout["target_version"] == "1.1.0"
        rollout = await progress_until(
            world,
            temporal,
            "the rollout holding with nothing in flight",
            lambda r: r["state"] == "Paused" and not r["in_flight"],
        )
        assert rollout["remaining"], rollout  # held back by the pause
        assert rollout["waiting_for"] == "resume (paused)"

        # A value the rollout's validator refuses: exit 2 with its words.
        code, out, err = await winfleet(world, temporal, "set-max-unhealthy", "--pool", "cup", "5")
        assert code == 2, out + err
        assert "maxUnhealthy 5 is more than the pool's 2 replicas" in err

        # A second `winfleet upgrade` joins the running rollout and watches it to its end.
        joined = await spawn_winfleet(world, temporal, "upgrade", "--pool", "cup")
        code, out, err = await winfleet(world, temporal, "resume", "--pool", "cup")
        assert code == 0, err
        out_b, err_b = await asyncio.wait_for(joined.communicate(), 180)
        text = out_b.decode()
        assert joined.returncode == 0, err_b.decode() + text

        # `winfleet status <workflow-id>...` still prints each one's progress query.
        code, out, err = await winfleet(world, temporal, "status", "upgrade-cup", "pool-cup")
        assert code == 0, err
        rollout_line, pool_line = (json.loads(line) for line in out.splitlines())
        assert rollout_line["workflow_id"] == "upgrade-cup"
        assert (rollout_line["state"], rollout_line["target_version"]) == ("Completed", "1.1.0")
        assert pool_line["workflow_id"] == "pool-cup" and len(pool_line["nodes"]) == 2

    assert "rollout upgrade-cup of pool cup started (or joined)" in text
    assert "pool cup -> 1.1.0 [########################] 2/2 Completed" in text
    assert text.rstrip().endswith("every planned node runs 1.1.0")
    nodes = pool_nodes(world, "cup")
    assert len(nodes) == 2 and all(available(n) and version_of(n) == "1.1.0" for n in nodes)
    assert not {n["metadata"]["name"] for n in nodes} & first


async def test_steering_a_pool_without_a_rollout_says_that_none_runs(
    world: World, temporal: WorkflowEnvironment
) -> None:
    for command in (["pause"], ["set-max-unhealthy", "2"]):
        code, _, err = await winfleet(world, temporal, *command[:1], "--pool", "nope", *command[1:])
        assert code == 1, (command, err)
        assert "no rollout of pool nope runs (workflow upgrade-nope)" in err
    code, _, err = await winfleet(world, temporal, "status", "--pool", "nope")
    assert code == 1
    assert "neither a rollout (upgrade-nope) nor the pool workflow (pool-nope)" in err
