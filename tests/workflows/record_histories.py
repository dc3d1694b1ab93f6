"""Record the histories tests/workflows/test_replay.py replays, from real runs.

`.venv/bin/python tests/workflows/record_histories.py` starts the Temporal dev server, the whole
twin and a worker; creates a pool of two AWS nodes at 1.0.0, rolls it out to 1.1.0 (replacing
both nodes: DecommissionWindowsNode children), scales it down to one and triggers its
reconcile Schedule once; then writes the histories of WindowsPool, UpgradeWindowsPool, one
DecommissionWindowsNode and one ReconcileWindowsPool to `tests/workflows/histories/<name>.json`.
Names on the command line (e.g. `reconcile-pool`) write only those, keeping the others
(an older pool history guards the patches made since). Run it again (and commit the files)
when a change to those workflows needs a new saved history (README "Shipping a workflow
change").
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

from fleet import (  # noqa: E402
    available,
    create_pool,
    install_crd,
    patch_pool,
    pool_nodes,
    until,
    version_of,
    watching,
)
from onboarding import World  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from activities.config import Settings, use_settings  # noqa: E402
from sim.twin import Twin  # noqa: E402
from worker.app import build_worker  # noqa: E402
from workflows import search_attributes  # noqa: E402

OUT = HERE / "histories"
POOL = "rec"


async def save(client: Client, workflow_type: str, name: str) -> None:
    if sys.argv[1:] and name not in sys.argv[1:]:
        return
    async for wf in client.list_workflows(f"WorkflowType = '{workflow_type}'"):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        (OUT / f"{name}.json").write_text(json.dumps(history.to_json_dict(), indent=2) + "\n")
        print(f"saved {workflow_type} {wf.id} -> {name}.json")
        return
    raise SystemExit(f"no {workflow_type} run to save")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
            search_attributes=search_attributes.ALL,
            dev_server_log_level="error",
        )
        async with env, Twin(Path(tmp), boot_seconds=1.0, byoh_hosts=1) as twin:
            os.environ.update({**twin.env, "AWS_EC2_METADATA_DISABLED": "true"})
            use_settings(Settings.from_env(dict(twin.env)))
            queue = f"record-{uuid.uuid4().hex[:6]}"
            world = World(twin, env.client, queue)
            async with build_worker(env.client, task_queue=queue), watching(world):
                await install_crd(world)
                spec = {"platform": "aws", "replicas": 2, "version": "1.0.0", "maxUnhealthy": 1}
                await create_pool(world, POOL, spec)

                def at(version: str, count: int) -> bool:
                    nodes = pool_nodes(world, POOL)
                    ok = [n for n in nodes if available(n) and version_of(n) == version]
                    return len(ok) == count == len(nodes)

                await until("2 nodes at 1.0.0", lambda: at("1.0.0", 2), 180, world)
                await patch_pool(world, POOL, {"version": "1.1.0"})
                await until("2 nodes at 1.1.0", lambda: at("1.1.0", 2), 240, world)
                await patch_pool(world, POOL, {"replicas": 1})
                await until("1 node at 1.1.0", lambda: at("1.1.0", 1), 180, world)
                await env.client.get_schedule_handle(f"reconcile-{POOL}").trigger()
                await until("a reconcile run", lambda: reconciled(env.client), 180, world)
                await save(env.client, "UpgradeWindowsPool", "upgrade-replace-1.0.0-to-1.1.0")
                await save(env.client, "DecommissionWindowsNode", "decommission-pool-node")
                await save(env.client, "WindowsPool", "pool-create-upgrade-scale-down")
                await save(env.client, "ReconcileWindowsPool", "reconcile-pool")


async def reconciled(client: Client) -> bool:
    query = "WorkflowType = 'ReconcileWindowsPool' AND ExecutionStatus = 'Completed'"
    return any([wf async for wf in client.list_workflows(query)])


if __name__ == "__main__":
    asyncio.run(main())
