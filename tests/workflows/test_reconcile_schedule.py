"""A pool's reconciliation Schedule as an admin meets it (`temporal schedule ...`), and
`winfleet reconcile` with and without `--dry-run`."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from drift_lab import host_of, new_byoh_hosts, pwsh, ready_nodes, settled
from fleet import (
    GROUP,
    NS,
    PLURAL,
    VERSION,
    create_pool,
    custom,
    get_pool,
    install_crd,
    patch_pool,
    until,
    watching,
)
from host_changes import writes
from onboarding import World
from temporalio.testing import WorkflowEnvironment
from test_cli_and_crash import BIN, product_env

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def temporal_cli(temporal: WorkflowEnvironment, *args: str) -> tuple[int, str]:
    address = temporal.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "temporal"), *args, "--address", address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def describe(temporal: WorkflowEnvironment, schedule: str) -> dict[str, Any] | None:
    code, out = await temporal_cli(
        temporal, "schedule", "describe", "--schedule-id", schedule, "-o", "json"
    )
    return json.loads(out) if code == 0 else None


def interval_s(desc: dict[str, Any]) -> float:
    every = desc["schedule"]["spec"]["interval"][0]["interval"]
    return float(str(every).rstrip("s"))


def runs(desc: dict[str, Any]) -> int:
    return len(desc.get("info", {}).get("recentActions") or ())


async def test_a_pool_keeps_a_schedule_that_the_temporal_cli_describes_triggers_and_pauses(
    world: World, temporal: WorkflowEnvironment
) -> None:
    await install_crd(world)
    (address,) = await new_byoh_hosts(world, 1)
    spec = {"platform": "byoh", "byoh": {"hosts": [{"address": address}]}}
    async with watching(world):
        await create_pool(world, "psched", {**spec, "reconcile": {"interval": "10m"}})
        desc: dict[str, Any] = {}

        async def described() -> bool:
            desc.update(await describe(temporal, "reconcile-psched") or {})
            return bool(desc)

        deadline = time.monotonic() + 60
        while not await described():
            assert time.monotonic() < deadline, "no schedule reconcile-psched"
            await asyncio.sleep(0.2)
        action = desc["schedule"]["action"]["startWorkflow"]
        assert action["workflowType"]["name"] == "ReconcileWindowsPool"
        assert action["taskQueue"]["name"] == world.task_queue
        assert interval_s(desc) == 600
        assert desc["schedule"]["policies"]["overlapPolicy"] == "SCHEDULE_OVERLAP_POLICY_SKIP"
        assert not desc["schedule"]["policies"].get("pauseOnFailure")

        await ready_nodes(world, "psched", 1)
        code, out = await temporal_cli(
            temporal, "schedule", "toggle", "--schedule-id", "reconcile-psched",
            "--pause", "--reason", "maintenance",
        )  # fmt: skip
        assert code == 0, out

        # A spec change: the interval follows, the pause stays, a run starts at once.
        await patch_pool(world, "psched", {"reconcile": {"interval": "7m"}})

        async def updated() -> bool:
            d = await describe(temporal, "reconcile-psched") or {}
            desc.clear()
            desc.update(d)
            return bool(d) and interval_s(d) == 420 and runs(d) >= 1

        deadline = time.monotonic() + 60
        while not await updated():
            assert time.monotonic() < deadline, f"schedule not updated: {desc}"
            await asyncio.sleep(0.2)
        assert desc["schedule"]["state"].get("paused") is True

        async def idle() -> bool:  # the run the change started has ended (overlap: skip)
            d = await describe(temporal, "reconcile-psched") or {}
            return not d.get("info", {}).get("runningWorkflows")

        deadline = time.monotonic() + 60
        while not await idle():
            assert time.monotonic() < deadline, "the triggered run did not end"
            await asyncio.sleep(0.2)
        code, out = await temporal_cli(
            temporal, "schedule", "trigger", "--schedule-id", "reconcile-psched"
        )
        assert code == 0, out

        async def triggered() -> bool:
            d = await describe(temporal, "reconcile-psched") or {}
            return runs(d) >= 2

        deadline = time.monotonic() + 60
        while not await triggered():
            assert time.monotonic() < deadline, f"the trigger started no run: {desc}"
            await asyncio.sleep(0.2)
        await until(
            "lastReconcile in the pool's status",
            lambda: (get_pool(world, "psched") or {}).get("status", {}).get("lastReconcile"),
            world=world,
        )

        # The pool goes, and its Schedule with it.
        await asyncio.to_thread(
            custom(world).delete_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "psched"
        )
        await until("the pool gone", lambda: get_pool(world, "psched") is None, within=180)
        assert await describe(temporal, "reconcile-psched") is None


async def test_winfleet_reconcile_dry_run_changes_nothing_then_a_run_puts_it_right(
    world: World, temporal: WorkflowEnvironment
) -> None:
    await install_crd(world)
    (address,) = await new_byoh_hosts(world, 1)
    spec = {
        "platform": "byoh",
        "byoh": {"hosts": [{"address": address}]},
        "reconcile": {"interval": "1h"},
    }
    env = product_env(world.twin, temporal, world.task_queue)
    async with watching(world):
        await create_pool(world, "pcli", spec)
        (node,) = await ready_nodes(world, "pcli", 1)
        host = host_of(world, node)
        await settled(host, world, node["metadata"]["name"])
        await pwsh(host, "Set-Service -Name kube-proxy -StartupType Disabled")
        logged = len(host.command_log)

        async def winfleet(*args: str) -> tuple[int, dict[str, Any]]:
            proc = await asyncio.create_subprocess_exec(
                str(BIN / "winfleet"), "reconcile", "--pool", "pcli", *args,
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            assert out, err.decode()
            return proc.returncode or 0, json.loads(out)

        code, plan = await winfleet("--dry-run")

        assert code == 0 and plan["state"] == "Planned", plan
        (found,) = [o for n in plan["nodes"] for o in n["outcomes"]]
        assert (found["check"], found["subject"], found["result"]) == (
            "service-disabled",
            "kube-proxy",
            "planned",
        )
        assert writes(host.command_log[logged:]) == []
        assert host.scm.get("kube-proxy").start_type == "Disabled"
        assert "lastReconcile" not in (get_pool(world, "pcli") or {}).get("status", {})

        code, report = await winfleet()

        assert code == 0 and report["state"] == "Repaired", report
        assert host.scm.get("kube-proxy").start_type == "Automatic"
