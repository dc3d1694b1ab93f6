"""`python -m bench.onboard`: parallel onboarding wall times on the twin (`make bench`).

Runs the real pieces: a Temporal dev server, the SIMULATED twin in this process, and a
`winfleet worker` subprocess (so the worker and the twin use both cores, as in production
where they are different machines). Measures:
- wall time to onboard 1, 10 and 50 AWS nodes in parallel with a 10 s simulated boot, and the
  ratio 50-node / 1-node (target <= 1.5; WMCO configures instances one at a time);
- per-node orchestration overhead: one BYOH onboarding with zero simulated delays (target <= 1.5 s);
- a second onboarding of an already configured host: payload bytes copied (target 0).
Prints the figures and writes bench-results/onboard.json.
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
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.contracts import (
    TASK_QUEUE,
    AwsMachineSpec,
    ByohHostSpec,
    OnboardNodeInput,
    OnboardNodeResult,
    Platform,
)
from sim.twin import Twin
from workflows import search_attributes

RESULTS = Path("bench-results")
TARGET_RATIO = 1.5
TARGET_OVERHEAD_S = 1.5
ZERO_TICK_S = 0.02


async def onboard_all(
    client: Client, inputs: list[OnboardNodeInput]
) -> tuple[float, list[OnboardNodeResult]]:
    start = time.monotonic()
    handles = [
        await client.start_workflow(
            "OnboardWindowsNode",
            inp,
            id=f"bench-{inp.node_name}-{uuid.uuid4().hex[:6]}",
            task_queue=TASK_QUEUE,
            result_type=OnboardNodeResult,
        )
        for inp in inputs
    ]
    results = await asyncio.gather(*(h.result() for h in handles))
    return time.monotonic() - start, list(results)


def worker_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    exe = str(Path(sys.executable).parent / "winfleet")
    with log.open("ab") as out:
        return subprocess.Popen([exe, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)


async def with_world(state: Path, boot_seconds: float, body: Any) -> Any:
    env_server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    async with env_server:
        twin = Twin(
            state / f"twin-{boot_seconds:g}",
            boot_seconds=boot_seconds,
            byoh_hosts=2,
            aws_cidr="127.40.0.0/16",
            azure_cidr="127.41.0.0/16",
            byoh_cidr="127.42.0.0/16",
        )
        if boot_seconds == 0:
            twin.fleet.tick_seconds = ZERO_TICK_S  # zero simulated delays: components react at once
        async with twin:
            env = {
                **os.environ,
                **twin.env,
                "AWS_EC2_METADATA_DISABLED": "true",
                "TEMPORAL_ADDRESS": env_server.client.service_client.config.target_host,
                "WINFLEET_TRACE_FILE": str(state / "traces.jsonl"),
                "WINFLEET_LOG_LEVEL": "WARNING",
            }
            worker = worker_process(env, state / "worker.log")
            try:
                return await body(env_server.client, twin)
            finally:
                worker.send_signal(signal.SIGTERM)
                await asyncio.to_thread(worker.wait, 30)


def aws_nodes(prefix: str, count: int) -> list[OnboardNodeInput]:
    return [
        OnboardNodeInput(
            pool="bench", node_name=f"{prefix}-{i}", platform=Platform.AWS, aws=AwsMachineSpec()
        )
        for i in range(count)
    ]


async def parallel_scenarios(client: Client, twin: Twin, sizes: list[int]) -> dict[str, float]:
    walls: dict[str, float] = {}
    for n in sizes:
        wall, _ = await onboard_all(client, aws_nodes(f"p{n}", n))
        walls[str(n)] = round(wall, 2)
        print(f"  {n:>3} AWS nodes in parallel (10 s boot): {wall:6.2f} s", flush=True)
    return walls


async def overhead_scenarios(client: Client, twin: Twin) -> dict[str, float]:
    byoh = OnboardNodeInput(
        pool="bench",
        node_name="zero-1",
        platform=Platform.BYOH,
        byoh=ByohHostSpec(address=twin.byoh_addresses[0]),
    )
    await onboard_all(client, aws_nodes("warm", 1))  # warm caches: first connections, imports
    wall, _ = await onboard_all(client, [byoh])
    print(f"  one BYOH node, zero simulated delays:   {wall:6.2f} s", flush=True)
    again, results = await onboard_all(client, [byoh])
    copied = results[0].bytes_copied
    print(
        f"  the same host onboarded again: {again:5.2f} s, payload bytes copied: {copied}",
        flush=True,
    )
    return {
        "overhead_s": round(wall, 2),
        "second_onboarding_s": round(again, 2),
        "second_onboarding_bytes": copied,
    }


async def main_async(sizes: list[int], state: Path) -> int:
    print("onboarding benchmark (real Temporal dev server, SIMULATED cloud/cluster/hosts)")
    walls = await with_world(state, 10.0, lambda c, t: parallel_scenarios(c, t, sizes))
    zero = await with_world(state, 0.0, overhead_scenarios)
    ratio = walls[str(max(sizes))] / walls[str(min(sizes))]
    checks = {
        f"ratio {max(sizes)}-node/{min(sizes)}-node wall <= {TARGET_RATIO}": ratio <= TARGET_RATIO,
        f"per-node overhead <= {TARGET_OVERHEAD_S} s": zero["overhead_s"] <= TARGET_OVERHEAD_S,
        "second onboarding copies 0 bytes": zero["second_onboarding_bytes"] == 0,
    }
    print(f"  ratio {max(sizes)}/{min(sizes)}: {ratio:.2f} (target <= {TARGET_RATIO})")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    report = {
        "wall_s": walls,
        "ratio": round(ratio, 2),
        **zero,
        "checks": {k: ("PASS" if v else "FAIL") for k, v in checks.items()},
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (RESULTS / "onboard.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {RESULTS / 'onboard.json'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.onboard", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sizes", default="1,10,50", help="parallel fleet sizes")
    args = parser.parse_args()
    if len(args.sizes.split(",")) < 2:
        parser.error("give at least two sizes, e.g. --sizes 1,50")
    RESULTS.mkdir(exist_ok=True)
    state = Path(".state/bench").resolve()
    state.mkdir(parents=True, exist_ok=True)
    return asyncio.run(main_async([int(s) for s in args.sizes.split(",")], state))


if __name__ == "__main__":
    sys.exit(main())
