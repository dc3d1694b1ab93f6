"""Rolling upgrades of pools: within the budget, unhealthy first, surge, pause, halts, BYOH."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fleet import (
    available,
    fleet_twin,
    get_pool,
    make_pool,
    on_version,
    patch_pool,
    pool_nodes,
    sampling,
    started,
    until,
    version_of,
    watching,
)
from onboarding import World
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.pool_contracts import RolloutProgress
from sim.twin import Twin

pytestmark = pytest.mark.asyncio(loop_scope="session")

NEW, OLD = "1.1.0", "1.0.0"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def twin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Twin]:
    async with fleet_twin(tmp_path_factory.mktemp("fleet-twin"), 18) as t:
        yield t


def payload_hashes(world: World, version: str) -> dict[str, str]:
    root = Path(world.twin.env["WINFLEET_PAYLOAD_DIR"]) / version
    hashes = {}
    for line in (root / "sha256sum").read_text().splitlines():
        digest, _, rel = line.partition("  ")
        hashes[rel.strip()] = digest
    return hashes


def host_files_match(world: World, node: dict[str, Any], version: str) -> bool:
    address = node["metadata"]["annotations"]["winfleet.io/host"]
    host = world.twin.fleet.get(address)
    assert host is not None, address
    for rel, digest in payload_hashes(world, version).items():
        local = host.root / "C" / "k" / rel
        if hashlib.sha256(local.read_bytes()).hexdigest() != digest:
            return False
    return True


async def rollout_result(world: World, pool: str) -> Any:
    """The result of the pool's rollout, once the pool workflow has started it."""
    await until(
        f"upgrade-{pool} to start", lambda: started(world, "UpgradeWindowsPool", f"upgrade-{pool}")
    )
    return await world.client.get_workflow_handle(f"upgrade-{pool}").result()


async def test_eight_nodes_upgrade_two_at_a_time_and_end_with_the_new_files(world: World) -> None:
    async with watching(world):
        first = await make_pool(
            world, "p8", {"platform": "aws", "replicas": 8, "version": OLD, "maxUnhealthy": 2}, 8
        )
        async with sampling(world, "p8", 8) as sampler:
            await patch_pool(world, "p8", {"version": NEW})
            await until(
                "8 nodes on 1.1.0", lambda: on_version(world, "p8", NEW, 8), within=240, world=world
            )
            await rollout_result(world, "p8")
    nodes = pool_nodes(world, "p8")
    assert not ({n["metadata"]["name"] for n in nodes} & first)
    assert all(host_files_match(world, n, NEW) for n in nodes)
    assert sampler.samples > 50
    assert 1 <= sampler.worst <= 2, sampler.history
    await until(
        "the pool's status to show the finished rollout",
        lambda: (
            (get_pool(world, "p8") or {}).get("status", {}).get("rollout", {}).get("state")
            == "Completed"
        ),
        within=40,
    )
    assert (get_pool(world, "p8") or {})["status"]["updatedReplicas"] == 8


async def test_a_notready_node_is_replaced_first_and_uses_the_budget(world: World) -> None:
    async with watching(world):
        await make_pool(
            world, "pn", {"platform": "aws", "replicas": 4, "version": OLD, "maxUnhealthy": 2}, 4
        )
        sick = sorted(pool_nodes(world, "pn"), key=lambda n: n["metadata"]["name"])[-1]
        sick_name = sick["metadata"]["name"]
        host = world.twin.fleet.get(sick["metadata"]["annotations"]["winfleet.io/host"])
        assert host is not None
        host.scm.stop("kubelet", force=True)
        await until(
            "the silent node NotReady",
            lambda: (
                not any(
                    available(n)
                    for n in pool_nodes(world, "pn")
                    if n["metadata"]["name"] == sick_name
                )
            ),
            within=60,
        )
        async with sampling(world, "pn", 4) as sampler:
            await patch_pool(world, "pn", {"version": NEW})
            await until(
                "4 nodes on 1.1.0", lambda: on_version(world, "pn", NEW, 4), within=240, world=world
            )
            await rollout_result(world, "pn")
    progress = await world.client.get_workflow_handle("upgrade-pn").query(
        "progress", result_type=RolloutProgress
    )
    assert progress.plan[0] == sick_name  # the unhealthy node goes first
    assert sampler.worst <= 2, sampler.history  # itself plus at most one more


async def test_with_max_surge_one_and_no_unhealthy_budget_ready_capacity_never_drops(
    world: World,
) -> None:
    spec = {
        "platform": "aws",
        "replicas": 3,
        "version": OLD,
        "maxUnhealthy": 0,
        "upgrade": {"maxSurge": 1},
    }
    async with watching(world):
        await make_pool(world, "ps", spec, 3)
        async with sampling(world, "ps", 3) as sampler:
            await patch_pool(world, "ps", {"version": NEW})
            await until(
                "3 nodes on 1.1.0", lambda: on_version(world, "ps", NEW, 3), within=240, world=world
            )
            await rollout_result(world, "ps")
    assert sampler.worst == 0, sampler.history
    assert sampler.ready_low >= 3


async def test_pause_holds_new_replacements_resume_finishes_and_the_budget_is_live(
    world: World,
) -> None:
    spec = {"platform": "aws", "replicas": 4, "version": OLD, "maxUnhealthy": 1}
    async with watching(world):
        await make_pool(world, "pp", spec, 4)
        await patch_pool(world, "pp", {"version": NEW})
        upgrade = world.client.get_workflow_handle("upgrade-pp")
        await until("the rollout started", lambda: taken_down(world, "pp"), within=60)
        started = asyncio.get_running_loop().time()
        await upgrade.signal("pause")
        # The first replacement finishes; nothing new starts while paused, over more than a
        # whole replacement time.
        await until(
            "the first replacement done",
            lambda: (
                len([n for n in pool_nodes(world, "pp") if version_of(n) == NEW]) == 1
                and len(pool_nodes(world, "pp")) == 4
            ),
            within=120,
            world=world,
        )
        replacement_time = asyncio.get_running_loop().time() - started
        await asyncio.sleep(replacement_time * 1.5)
        assert len(await taken_down(world, "pp")) == 1
        progress = await upgrade.query("progress", result_type=RolloutProgress)
        assert progress.paused and len(progress.done) == 1 and not progress.in_flight
        pool = (get_pool(world, "pp") or {})["status"]
        paused = [c for c in pool["conditions"] if c["type"] == "Paused"]
        assert paused and paused[0]["status"] == "True"

        with pytest.raises(WorkflowUpdateFailedError) as bad:
            await upgrade.execute_update("set_max_unhealthy", "150%")
        assert "150%" in str(bad.value.cause)
        with pytest.raises(WorkflowUpdateFailedError):
            await upgrade.execute_update("set_max_unhealthy", 9)
        said = await upgrade.execute_update("set_max_unhealthy", 2)
        assert "2" in said
        assert (get_pool(world, "pp") or {})["spec"]["maxUnhealthy"] == 2

        async with sampling(world, "pp", 4) as sampler:
            await upgrade.signal("resume")
            await until(
                "4 nodes on 1.1.0", lambda: on_version(world, "pp", NEW, 4), within=240, world=world
            )
            await upgrade.result()
    assert sampler.worst == 2, sampler.history  # the new budget was used, and not exceeded


async def test_a_canary_on_an_unsupported_build_halts_the_rollout_keeping_the_old_nodes(
    world: World,
) -> None:
    # A budget of 2 would let two nodes go at once; the canary goes alone, and fails.
    spec = {
        "platform": "aws",
        "replicas": 3,
        "version": OLD,
        "maxUnhealthy": 2,
        "upgrade": {"canary": True},
    }
    async with watching(world):
        first = await make_pool(world, "ph", spec, 3)
        hooked: list[str] = []

        def windows_2016(host: Any) -> None:
            if host.spec.cloud == "aws" and not hooked:
                hooked.append(host.address)
                host.faults.os_build = "10.0.14393.0"

        world.twin.fleet.on_add.append(windows_2016)
        try:
            await patch_pool(world, "ph", {"version": NEW})
            with pytest.raises(WorkflowFailureError) as halted:
                await rollout_result(world, "ph")
        finally:
            world.twin.fleet.on_add.remove(windows_2016)
    cause = halted.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "RolloutHalted"
    assert "10.0.14393" in cause.message
    left = {n["metadata"]["name"] for n in pool_nodes(world, "ph")} & first
    assert len(left) == 2  # the canary's old node went; the others stay
    assert all(
        version_of(n) == OLD for n in pool_nodes(world, "ph") if n["metadata"]["name"] in left
    )

    def degraded() -> dict[str, Any] | None:
        status = (get_pool(world, "ph") or {}).get("status") or {}
        for c in status.get("conditions") or ():
            if c["type"] == "Degraded" and c["status"] == "True":
                return dict(c)
        return None

    condition = await until("the pool to show Degraded", degraded, within=40)
    assert condition["reason"] == "RolloutHalted" and "10.0.14393" in condition["message"]

    def halted_event() -> list[dict[str, Any]]:
        return [
            e
            for e in world.twin.kube.store.list("events")
            if e.get("reason") == "RolloutHalted"
            and e["involvedObject"].get("kind") == "WindowsMachinePool"
            and e["involvedObject"].get("name") == "ph"
        ]

    (event,) = await until("a RolloutHalted event on the pool", halted_event, within=40)
    assert event["type"] == "Warning" and "10.0.14393" in event["message"]


async def taken_down(world: World, pool: str) -> list[str]:
    return await started(world, "DecommissionWindowsNode", f"decommission-{pool}-")


def window(open_now: bool) -> dict[str, Any]:
    """A weekly window (UTC) that is open now, or opens only the day after tomorrow."""
    now = datetime.now(UTC)
    start = (now - timedelta(hours=1)) if open_now else now + timedelta(days=2)
    return {
        "days": [start.strftime("%a")],
        "start": start.strftime("%H:00"),
        "duration": "3h",
        "timeZone": "UTC",
    }


async def test_outside_its_maintenance_window_a_rollout_holds_until_the_window_opens(
    world: World,
) -> None:
    spec = {
        "platform": "aws",
        "replicas": 2,
        "version": OLD,
        "maxUnhealthy": 1,
        "upgrade": {"maintenanceWindow": window(open_now=False)},
    }
    async with watching(world):
        first = await make_pool(world, "pw", spec, 2)
        await patch_pool(world, "pw", {"version": NEW})
        await until(
            "upgrade-pw to start", lambda: started(world, "UpgradeWindowsPool", "upgrade-pw")
        )
        upgrade = world.client.get_workflow_handle("upgrade-pw")

        async def waiting() -> bool:
            p = await upgrade.query("progress", result_type=RolloutProgress)
            return "maintenance window" in p.waiting_for

        await until("the rollout to wait for its window", waiting, within=60)
        await asyncio.sleep(5)
        assert await taken_down(world, "pw") == []
        assert {n["metadata"]["name"] for n in pool_nodes(world, "pw")} == first
        await patch_pool(world, "pw", {"upgrade": {"maintenanceWindow": window(open_now=True)}})
        await until(
            "2 nodes on 1.1.0", lambda: on_version(world, "pw", NEW, 2), within=180, world=world
        )
        await upgrade.result()
