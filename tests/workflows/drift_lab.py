"""Helpers for the drift reconciliation tests: hosts of their own, drift as an admin causes it,
runs of `ReconcileWindowsPool` and their reports."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from fleet import NS, available, pool_nodes, until
from kubernetes import client
from onboarding import World

from activities.drift_contracts import ReconcileReport
from sim.windows.fleet import HostSpec
from sim.windows.host import SimulatedWindowsHost

HOST_ANNOTATION = "winfleet.io/host"
INSTANCES = "windows-instances"
_hosts = iter(range(1, 250))


def core(world: World) -> client.CoreV1Api:
    from fleet import api_client

    return client.CoreV1Api(api_client(world))


async def new_byoh_hosts(world: World, count: int, *, listed: bool = True) -> list[str]:
    """`count` more BYOH hosts (authorizing the operator key) on 127.12.7.x, listed in
    ConfigMap windows-instances unless `listed` is False."""
    addresses = []
    for _ in range(count):
        n = next(_hosts)
        address = f"127.12.7.{n}"
        await world.twin.fleet.add_host(
            HostSpec(
                address=address,
                hostname=f"lab-{n}",
                authorized_keys=(world.twin.public_key,),
                cloud="byoh",
            )
        )
        addresses.append(address)
    if listed:
        await list_hosts(world, addresses)
    return addresses


async def list_hosts(world: World, add: list[str], remove: list[str] | None = None) -> None:
    """Add and remove entries of ConfigMap windows-instances, as an admin edits it."""
    data: dict[str, str | None] = {a: "username=Administrator" for a in add}
    data.update({a: None for a in remove or ()})
    await asyncio.to_thread(core(world).patch_namespaced_config_map, INSTANCES, NS, {"data": data})


def host_of(world: World, node: dict[str, Any]) -> SimulatedWindowsHost:
    notes = node["metadata"].get("annotations") or {}
    return world.twin.fleet.get(notes[HOST_ANNOTATION])


def node_named(world: World, name: str) -> dict[str, Any] | None:
    return world.twin.kube.store.get("nodes", name)


async def ready_nodes(
    world: World, pool: str, count: int, within: float = 180
) -> list[dict[str, Any]]:
    """Wait until the pool has exactly `count` nodes, all available; return them by name."""
    await until(
        f"{count} available nodes in pool {pool}",
        lambda: (
            len(pool_nodes(world, pool)) == count
            and all(available(n) for n in pool_nodes(world, pool))
        ),
        within=within,
        world=world,
    )
    return sorted(pool_nodes(world, pool), key=lambda n: n["metadata"]["name"])


async def settled(host: SimulatedWindowsHost, world: World, node: str) -> None:
    """The host's kubelet holds its serving certificate (the last thing onboarding waits on)."""
    pem = host.root / "C" / "var" / "lib" / "kubelet" / "pki" / "kubelet-server-current.pem"
    await until(f"{node}'s serving certificate", pem.is_file, world=world)


async def reconcile(world: World, pool: str, *, dry_run: bool = False) -> ReconcileReport:
    """One run now, as `winfleet reconcile` starts it."""
    return await world.client.execute_workflow(
        "ReconcileWindowsPool",
        {"pool": pool, "dry_run": dry_run},
        id=f"reconcile-{pool}-test-{uuid.uuid4().hex[:6]}",
        task_queue=world.task_queue,
        result_type=ReconcileReport,
    )


async def scheduled_run(world: World, pool: str, after: float) -> ReconcileReport:
    """The result of the run the pool's Schedule started after `after` (time.time())."""
    handle = world.client.get_schedule_handle(f"reconcile-{pool}")

    async def started() -> str:
        desc = await handle.describe()
        actions = [*desc.info.running_actions]
        actions += [a.action for a in desc.info.recent_actions if a.started_at.timestamp() >= after]
        return actions[-1].workflow_id if actions else ""

    deadline = time.monotonic() + 60
    while not (workflow_id := await started()):
        assert time.monotonic() < deadline, f"the schedule of pool {pool} started no run"
        await asyncio.sleep(0.2)
    wf = world.client.get_workflow_handle(workflow_id, result_type=ReconcileReport)
    return await wf.result()


def outcomes(report: ReconcileReport) -> dict[tuple[str, str, str], str]:
    """(node or "", check, subject) -> result, for every finding the report names."""
    out = {("", o.check, o.subject): o.result for o in report.pool_outcomes}
    for n in report.nodes:
        out.update({(n.node, o.check, o.subject): o.result for o in n.outcomes})
    return out


def explain(report: ReconcileReport) -> str:
    return json.dumps(
        {
            "state": report.state,
            "message": report.message,
            "pool": [o.__dict__ for o in report.pool_outcomes],
            "nodes": {n.node: [o.__dict__ for o in n.outcomes] for n in report.nodes},
        },
        indent=1,
    )


async def pwsh(host: SimulatedWindowsHost, script: str) -> None:
    """What an admin runs on the host (through its SSH exec channel's shell)."""
    _, err, code = await host.run(f'powershell.exe -NoProfile -Command "{script}"')
    assert code == 0, err


def node_metadata(world: World, name: str) -> tuple[Any, Any, Any]:
    node = node_named(world, name) or {}
    meta = node.get("metadata") or {}
    return meta.get("annotations"), meta.get("labels"), node.get("spec")
