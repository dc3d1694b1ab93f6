"""`python -m bench.fleet`: rolling-upgrade wall time and history size (`make bench`).

Two measurements:
1. **Budget parallelism, real pieces** (Temporal dev server, the SIMULATED twin, a `winfleet
   worker` subprocess with its pool watcher): the replacement time T of one node (a 1-node
   pool upgraded from 1.0.0 to 1.1.0: drain, delete, onboard the replacement), then a 20-node
   pool with `maxUnhealthy: 4` upgraded the same way. WMCO's budget of 1 needs 20 x T; with 4 at
   a time the ideal is 5 x T; the figure printed is wall / (5 x T), target <= 1.2.
2. **History of a 500-node rollout, SIMULATED nodes**: the real `WindowsPool` and
   `UpgradeWindowsPool` workflows and the real grant protocol run on the dev server, while the
   node-level work is simulated in memory (stub activities `read_pool`, `observe_pool`, ... and
   stub `DecommissionWindowsNode` / `OnboardWindowsNode` workflows that only flip a node's
   version): it measures what the fleet workflows write to history for 500 nodes — runs per
   workflow ID (continue-as-new), the largest run's events and bytes — which must stay bounded.
Prints the figures and writes bench-results/fleet.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.pool_client import (
    release_disruption,
    request_disruption,
    running_workflows,
    start_workflow_once,
)
from bench.fleet_sim import (
    SIM,
    SimulatedDecommission,
    SimulatedOnboard,
    SimulatedPool,
    sim_delete_reconcile_schedule,
    sim_ensure_reconcile_schedule,
    sim_node_change,
    sim_observe_pool,
    sim_pool_availability,
    sim_pool_finalizer,
    sim_read_pool,
    sim_read_pool_node,
    sim_set_pool_spec,
    sim_write_pool_status,
)
from bench.onboard import with_world
from sim.twin import Twin
from workflows import search_attributes
from workflows.decoding import data_converter
from workflows.pool import WindowsPool
from workflows.upgrade import UpgradeWindowsPool

RESULTS = Path("bench-results")
CRD = (
    Path(__file__).resolve().parents[1] / "deploy" / "crds" / "winfleet.io_windowsmachinepools.yaml"
)
GROUP, VERSION, PLURAL, NS = "winfleet.io", "v1alpha1", "windowsmachinepools", "winfleet"
TARGET_RATIO = 1.2
BOOT_SECONDS = 5.0


# --- 1. real pieces ----------------------------------------------------------------------------
def _api(twin: Twin) -> kube_client.ApiClient:
    return kube_config.new_client_from_config(str(twin.kube.kubeconfig_path))


async def _apply_crd(twin: Twin) -> None:
    ext = kube_client.ApiextensionsV1Api(_api(twin))
    body = yaml.safe_load(CRD.read_text())
    await asyncio.to_thread(ext.create_custom_resource_definition, body)


async def _pool(twin: Twin, name: str, replicas: int, budget: int) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WindowsMachinePool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "platform": "aws",
            "replicas": replicas,
            "version": "1.0.0",
            "maxUnhealthy": budget,
        },
    }
    api = kube_client.CustomObjectsApi(_api(twin))
    await asyncio.to_thread(api.create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, body)


def _nodes(twin: Twin, pool: str, version: str) -> int:
    count = 0
    for n in twin.kube.store.list("nodes"):
        meta = n["metadata"]
        if (meta.get("labels") or {}).get("winfleet.io/pool") != pool:
            continue
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (n.get("status") or {}).get("conditions") or ()
        )
        if (
            ready
            and (meta.get("annotations") or {}).get("windowsmachineconfig.openshift.io/version")
            == version
        ):
            count += 1
    return count


async def _wait(twin: Twin, pool: str, version: str, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while _nodes(twin, pool, version) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"pool {pool}: {count} nodes at {version} not reached")
        await asyncio.sleep(0.2)


async def _upgrade(client: Client, twin: Twin, pool: str, count: int) -> float:
    api = kube_client.CustomObjectsApi(_api(twin))
    start = time.monotonic()
    await asyncio.to_thread(
        api.patch_namespaced_custom_object,
        GROUP,
        VERSION,
        NS,
        PLURAL,
        pool,
        {"spec": {"version": "1.1.0"}},
    )
    await _wait(twin, pool, "1.1.0", count, within=1800)
    # the rollout ends once its last grant is released
    handle = client.get_workflow_handle(f"upgrade-{pool}")
    await handle.result()
    return time.monotonic() - start


async def budget_scenario(client: Client, twin: Twin) -> dict[str, Any]:
    await _apply_crd(twin)
    await _pool(twin, "t1", 1, 1)
    await _wait(twin, "t1", "1.0.0", 1, within=600)
    replacement = await _upgrade(client, twin, "t1", 1)
    print(
        f"  one replacement (T), {BOOT_SECONDS:g} s simulated boot: {replacement:7.2f} s",
        flush=True,
    )
    await _pool(twin, "b20", 20, 4)
    await _wait(twin, "b20", "1.0.0", 20, within=1800)
    wall = await _upgrade(client, twin, "b20", 20)
    ratio = wall / (5 * replacement)
    print(
        f"  20 nodes, maxUnhealthy 4:               {wall:7.2f} s = {ratio:.2f} x (5 x T)",
        flush=True,
    )
    return {
        "replacement_s": round(replacement, 2),
        "wall_20_s": round(wall, 2),
        "ratio": round(ratio, 2),
    }


async def history_scenario(size: int, budget: int) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    async with env:
        config = env.client.config()
        config["data_converter"] = data_converter()
        client = Client(**config)
        queue = f"bench-fleet-{uuid.uuid4().hex[:6]}"
        name = "big"
        SIM[name] = SimulatedPool(name, size, budget)
        worker = Worker(
            client,
            task_queue=queue,
            workflows=[WindowsPool, UpgradeWindowsPool, SimulatedDecommission, SimulatedOnboard],
            activities=[
                sim_read_pool,
                sim_observe_pool,
                sim_read_pool_node,
                sim_pool_availability,
                sim_write_pool_status,
                sim_set_pool_spec,
                sim_pool_finalizer,
                sim_ensure_reconcile_schedule,
                sim_delete_reconcile_schedule,
                sim_node_change,
                request_disruption,
                release_disruption,
                running_workflows,
                start_workflow_once,
            ],
            max_concurrent_activities=200,
        )
        async with worker:
            start = time.monotonic()
            handle = await client.start_workflow(
                "UpgradeWindowsPool",
                {"pool": name, "version": "1.1.0"},
                id=f"upgrade-{name}",
                task_queue=queue,
            )
            await handle.result()
            wall = time.monotonic() - start
            left = [n for n in SIM[name].nodes.values() if n.version != "1.1.0"]
            assert not left, f"{len(left)} simulated nodes not upgraded"
            upgrade = await _runs(client, f"upgrade-{name}")
            pool = await _runs(client, f"pool-{name}")
            await client.get_workflow_handle(f"pool-{name}").terminate("bench done")
    print(
        f"  {size} SIMULATED nodes, maxUnhealthy {budget}: {wall:6.1f} s; upgrade-{name}: "
        f"{upgrade['runs']} runs, largest {upgrade['max_events']} events / "
        f"{upgrade['max_bytes'] // 1024} KiB; pool-{name}: {pool['runs']} runs, largest "
        f"{pool['max_events']} events / {pool['max_bytes'] // 1024} KiB",
        flush=True,
    )
    return {"nodes": size, "wall_s": round(wall, 1), "upgrade": upgrade, "pool": pool}


async def _runs(client: Client, workflow_id: str) -> dict[str, int]:
    sizes = []
    async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        sizes.append((len(history.events), len(history.to_json())))
    return {
        "runs": len(sizes),
        "max_events": max(e for e, _ in sizes),
        "max_bytes": max(b for _, b in sizes),
        "total_events": sum(e for e, _ in sizes),
    }


async def main_async(state: Path, size: int) -> int:
    print("fleet benchmark (real Temporal dev server; SIMULATED cloud/cluster/hosts)")
    bounded_events = 2 * 4000  # policies.HISTORY_EVENTS_LIMIT plus the work in flight at the cut
    history = await history_scenario(size, budget=max(1, size // 10))
    real = await with_world(state, BOOT_SECONDS, budget_scenario)
    checks = {
        f"20 nodes / (5 x T) <= {TARGET_RATIO}": real["ratio"] <= TARGET_RATIO,
        f"largest run of a {size}-node rollout <= {bounded_events} events": history["upgrade"][
            "max_events"
        ]
        <= bounded_events,
    }
    for text, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    report = {
        **real,
        "history": history,
        "checks": {k: ("PASS" if v else "FAIL") for k, v in checks.items()},
        "loadavg": os.getloadavg(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    await asyncio.to_thread(_write, report)
    print(f"written to {RESULTS / 'fleet.json'}")
    return 0


def _write(report: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fleet.json").write_text(json.dumps(report, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--state", default=".state/bench-fleet", help="state directory of the twin")
    parser.add_argument("--nodes", type=int, default=500, help="size of the simulated pool")
    args = parser.parse_args()
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    return asyncio.run(main_async(state, args.nodes))


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # skip finalization: the SDK's native runtime can abort it (see worker/cli.py)
