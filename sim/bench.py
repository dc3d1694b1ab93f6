"""`python -m sim.bench`: the SIMULATED twin's own performance targets, printed and saved.

Measures, in this process: resident memory with 200 simulated Windows hosts up (each with a
bootstrapped kubelet registered against the cluster twin; `sim.windows.bench.bench_hosts`) and
the median latency of listing 1,000 Nodes from the cluster twin over loopback TLS
(`sim.k8s.bench.bench_list_nodes`), and the time until a 1,000-replica Deployment runs on 200
Ready Windows Nodes (scheduled and Running; `sim.k8s.bench.bench_run_pods`). Prints one
PASS/FAIL line per target and writes `bench-results/sim.json`. Run by `make bench-sim`; exits
1 if a target is missed.
"""

from __future__ import annotations

import asyncio
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from sim.k8s.bench import bench_list_nodes, bench_run_pods
from sim.windows.bench import bench_hosts

HOSTS = 200
NODES = 1000
RSS_TARGET_MB = 1024.0
LIST_TARGET_MS = 50.0
POD_NODES = 200
PODS = 1000
PODS_TARGET_S = 30.0
RESULTS = Path("bench-results") / "sim.json"


async def measure() -> dict[str, Any]:
    hosts = await bench_hosts(HOSTS)
    list_ms = await bench_list_nodes(NODES)
    pods_s = await bench_run_pods(POD_NODES, PODS)
    rss = float(hosts["rss_mb_peak_steady"])
    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "targets": [
            {
                "name": f"rss_mb_with_{HOSTS}_hosts",
                "value": rss,
                "limit": RSS_TARGET_MB,
                "pass": rss < RSS_TARGET_MB,
            },
            {
                "name": f"list_{NODES}_nodes_median_ms",
                "value": round(list_ms, 2),
                "limit": LIST_TARGET_MS,
                "pass": list_ms < LIST_TARGET_MS,
            },
            {
                "name": f"{PODS}_pods_on_{POD_NODES}_nodes_running_s",
                "value": round(pods_s, 2),
                "limit": PODS_TARGET_S,
                "pass": pods_s < PODS_TARGET_S,
            },
        ],
        "hosts_detail": hosts,
    }


def main() -> int:
    results = asyncio.run(measure())
    for t in results["targets"]:
        verdict = "PASS" if t["pass"] else "FAIL"
        print(f"{verdict}  {t['name']} = {t['value']} (target < {t['limit']})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0 if all(t["pass"] for t in results["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
