"""`python -m bench.floor`: what the Temporal round trips of one onboarding cost (`make bench`).

The onboarding benchmark's worker CPU per node includes a part no SSH, Kubernetes or cloud
change can cut: the SDK's own work for each activity task, workflow activation and heartbeat,
with winfleet's tracing (spans written), log context, strict decoding and the workflow
sandbox (not the onboarding-metrics interceptor `winfleet worker` adds: the floor is, if
anything, a little low). This bench measures that floor: a Temporal dev server, a worker subprocess
built by `worker.app.build_worker` (the same configuration as `winfleet worker`) that runs
`BenchFloorOnboarding` (bench/floor_workflow.py: an onboarding's 16 activities and 9 phase
upserts, doing nothing), and N of them in parallel, with activity tasks and with local
activities. Prints wall time and CPU seconds per workflow of the worker and of the Temporal
server, and writes bench-results/floor.json. No twin is involved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench import procstat
from bench.floor_workflow import FloorInput, FloorOnboarding, floor_step
from bench.onboard import RESULTS, TARGET_WORKER_CPU_PER_NODE, dev_server, loadavg, worker_ready

TASK_QUEUE = "winfleet-bench-floor"


async def serve() -> None:
    """The worker subprocess: winfleet's worker configuration, the floor workflow only."""
    from worker import telemetry
    from worker.app import build_worker
    from worker.temporal import connect

    telemetry.setup_tracing("winfleet-bench-floor")
    client = await connect()
    worker = build_worker(
        client, task_queue=TASK_QUEUE, workflows=[FloorOnboarding], activities=[floor_step]
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with worker:
        await stop.wait()
    telemetry.shutdown_tracing()


async def scenario(
    client: Client, pids: dict[str, int], label: str, n: int, inp: FloorInput
) -> dict[str, Any]:
    before = {role: procstat.cpu_seconds(pid) for role, pid in pids.items()}
    start = time.monotonic()
    await asyncio.gather(
        *(
            client.execute_workflow(
                FloorOnboarding.run, inp, id=f"floor-{label}-{i}", task_queue=TASK_QUEUE
            )
            for i in range(n)
        )
    )
    wall = time.monotonic() - start
    per = {
        role: round((procstat.cpu_seconds(pid) - before[role]) / n, 3) for role, pid in pids.items()
    }
    print(
        f"  {label:<44} {wall:6.2f} s | CPU s/workflow: worker {per['worker']:.3f}, "
        f"temporal {per['temporal']:.3f} | load {loadavg()}",
        flush=True,
    )
    return {
        "workflows": n,
        "wall_s": round(wall, 2),
        "cpu_s_per_workflow": per,
        "loadavg": loadavg(),
    }


def floor_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.floor", "--serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def main_async(sizes: list[int], state: Path) -> int:
    print("SDK floor of one onboarding (real Temporal dev server, no twin)", flush=True)
    print(f"  {os.cpu_count()} CPUs, load average at start {loadavg()}", flush=True)
    env_server, temporal = await dev_server()
    async with env_server:
        client = env_server.client
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "WINFLEET_TRACE_FILE": str(state / "floor-traces.jsonl"),
            "WINFLEET_LOG_LEVEL": "WARNING",
        }
        worker = floor_worker(env, state / "floor-worker.log")
        pids = {"worker": worker.pid, "temporal": temporal}
        figures: dict[str, Any] = {}
        try:
            await worker_ready(client, task_queue=TASK_QUEUE)
            await scenario(client, pids, "warm-up", 2, FloorInput())
            for n in sizes:
                for local in (False, True):
                    kind = "local activities" if local else "activity tasks"
                    label = f"{n} workflows x 16 {kind}"
                    figures[label] = await scenario(client, pids, label, n, FloorInput(local=local))
        finally:
            worker.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait, 30)
    worst = max(
        f["cpu_s_per_workflow"]["worker"] for k, f in figures.items() if "activity tasks" in k
    )
    print(
        f"  the worker spends {worst:.3f} s per onboarding on Temporal round trips alone "
        f"({worst / TARGET_WORKER_CPU_PER_NODE:.0%} of the {TARGET_WORKER_CPU_PER_NODE} s/node "
        "target of bench.onboard)",
        flush=True,
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "floor.json"
    out.write_text(json.dumps({"scenarios": figures, "cpus": os.cpu_count()}, indent=2) + "\n")
    print(f"written to {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--sizes", default="50,200", help="workflows in parallel, comma-separated")
    parser.add_argument("--state-dir", default=".state/bench-floor", type=Path)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    args.state_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(main_async(sizes, args.state_dir))


if __name__ == "__main__":
    sys.exit(main())
