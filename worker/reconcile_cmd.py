"""`winfleet reconcile --pool P [--dry-run]`: one drift reconciliation of a pool now, its report.

Starts `ReconcileWindowsPool` (workflow ID `reconcile-<pool>-cli-<time>`, next to the runs the
pool's Schedule `reconcile-<pool>` starts), waits for it and prints its report as JSON. With
`--dry-run` the run observes and plans only: it changes nothing, not even the pool's status.
Exit status 0 when the pool is clean or was put right (or, dry, planned), 1 when something was
deferred, the run short-circuited (Degraded) or the pool could not be reconciled.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from activities.drift_contracts import ReconcileInput, ReconcileReport
from worker.temporal import connect, task_queue
from workflows import ids

GOOD = ("Clean", "Repaired", "Planned")


def add_parser(sub: Any, pool_type: Callable[[str], str] = str) -> None:
    """The `reconcile` subcommand (on the `winfleet` parser's subparsers); `pool_type` checks
    the pool name as the other pool commands do."""
    p = sub.add_parser("reconcile", help="run one drift reconciliation of a pool, print its report")
    p.add_argument("--pool", required=True, type=pool_type, help="the WindowsMachinePool")
    p.add_argument("--dry-run", action="store_true", help="observe and plan only; change nothing")


def workflow_id(pool: str, dry_run: bool, now: float) -> str:
    kind = "dry-run" if dry_run else "cli"
    return f"{ids.reconcile(pool)}-{kind}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}"


async def run(args: argparse.Namespace) -> int:
    client = await connect(args.profile)
    handle = await client.start_workflow(
        "ReconcileWindowsPool",
        ReconcileInput(pool=args.pool, dry_run=args.dry_run),
        id=workflow_id(args.pool, args.dry_run, time.time()),
        task_queue=task_queue(),
        result_type=ReconcileReport,
    )
    report = await handle.result()
    print(json.dumps(asdict(report), indent=2))
    return 0 if report.state in GOOD else 1
