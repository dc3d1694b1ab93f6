"""The `winfleet` command: onboard Windows nodes, roll pools to new versions, reconcile drift,
run the worker.

`winfleet onboard --pool demo aws:win-a1 azure:win-z1 byoh:win-b1@10.0.0.5` starts one
`OnboardWindowsNode` workflow per node (workflow ID `onboard-<pool>-<node>`, so starting twice
attaches to the running one) and shows live progress until all have ended.
`winfleet upgrade --pool P [--version V] [--dry-run] [--detach]` rolls a WindowsMachinePool to a
version (worker/rollout_control.py, worker/rollout_progress.py) or prints the plan
(worker/dry_run.py); `pause`, `resume`, `set-max-unhealthy` steer the running rollout and
`status --pool P` shows it. Exit codes: 0 done, 1 the work failed or nothing runs to act on,
2 a bad request or environment, 130 interrupted (a rollout keeps running).
`winfleet reconcile --pool P [--dry-run]` runs one drift reconciliation now and prints its
report (worker/reconcile_cmd.py).
The work of each command lives in the worker/ module named for it; this one parses and
dispatches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from temporalio.client import (
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError

from activities.config import Settings
from activities.contracts import (
    AwsMachineSpec,
    AzureMachineSpec,
    ByohHostSpec,
    OnboardNodeInput,
    Platform,
)
from activities.errors import WinfleetError
from activities.pools import MAX_POOL_NAME
from worker import (
    onboarding,
    progress,
    reconcile_cmd,
    rollout_control,
    rollout_progress,
    telemetry,
    traces,
)
from worker.errors import CommandFailed
from worker.temporal import (
    SearchAttributesMissing,
    TemporalUnreachable,
    connect,
    ensure_search_attributes,
)
from workflows import ids

log = logging.getLogger("winfleet")

_POOL_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # as the CRD's metadata.name pattern


def workflow_id(pool: str, node: str) -> str:
    return ids.onboard(pool, node)


def parse_node_spec(spec: str, args: argparse.Namespace) -> OnboardNodeInput:
    """`aws:NAME`, `azure:NAME` or `byoh:NAME@ADDRESS[:USER]` → workflow input."""
    platform_text, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise SystemExit(
            f"winfleet: bad node spec {spec!r}: use aws:NAME, azure:NAME or byoh:NAME@ADDRESS"
        )
    try:
        platform = Platform(platform_text.lower())
    except ValueError:
        raise SystemExit(
            f"winfleet: unknown platform {platform_text!r} in {spec!r} (aws, azure, byoh)"
        ) from None
    name, _, where = rest.partition("@")
    common = {"pool": args.pool, "node_name": name, "platform": platform, "version": args.version}
    if platform is Platform.BYOH:
        address, _, user = where.partition(":")
        if not address:
            raise SystemExit(f"winfleet: byoh node {name!r} needs an address: byoh:{name}@ADDRESS")
        return OnboardNodeInput(
            **common, byoh=ByohHostSpec(address=address, username=user or "Administrator")
        )
    if where:
        raise SystemExit(f"winfleet: {spec!r}: only byoh nodes take an @ADDRESS")
    if platform is Platform.AWS:
        return OnboardNodeInput(
            **common,
            aws=AwsMachineSpec(
                image_id=args.aws_image_id,
                instance_type=args.aws_instance_type,
                subnet_id=args.aws_subnet_id,
            ),
        )
    return OnboardNodeInput(
        **common,
        azure=AzureMachineSpec(
            resource_group=args.azure_resource_group,
            location=args.azure_location,
            subnet_id=args.azure_subnet_id,
        ),
    )


async def cmd_onboard(args: argparse.Namespace) -> int:
    inputs = [parse_node_spec(s, args) for s in args.nodes]
    if not inputs:
        raise SystemExit("winfleet onboard: name at least one node (e.g. aws:win-1)")
    client = await connect(args.profile)
    handles = await onboarding.start_onboarding(client, inputs)
    ids = [(h.id, inp.node_name) for h, inp in zip(handles, inputs, strict=True)]
    for wid, _ in ids:
        print(f"started {wid}")
    if args.detach:
        return 0
    rows = await progress.watch(client, ids)
    failed = [r for r in rows if r.status != "completed"]
    for r in failed:
        print(f"{r.node}: {r.status}: {r.detail}", file=sys.stderr)
    print(f"{len(rows) - len(failed)}/{len(rows)} nodes onboarded")
    return 1 if failed else 0


async def cmd_status(args: argparse.Namespace) -> int:
    if not args.pool and not args.workflow_ids:
        raise CommandFailed("winfleet status: name workflow IDs or --pool POOL", code=2)
    client = await connect(args.profile)
    code = 0
    if args.pool:
        print(json.dumps(await rollout_control.pool_status(client, args.pool)))
    for wid in args.workflow_ids:
        try:
            p = await client.get_workflow_handle(wid).query("progress")
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
            print(f"{wid}: {exc}", file=sys.stderr)
            code = 1
            continue
        print(json.dumps({"workflow_id": wid, **(p if isinstance(p, dict) else {"progress": p})}))
    return code


async def cmd_upgrade(args: argparse.Namespace) -> int:
    from worker import cluster_access, dry_run  # the Kubernetes client: only upgrade needs it

    client = await connect(args.profile)
    if args.dry_run:
        cluster_access.use_cluster()
        for line in await dry_run.dry_run(client, args.pool, args.version):
            print(line)
        return 0
    if args.version:
        cluster_access.use_cluster()
        await cluster_access.read(args.pool)
        await cluster_access.set_version(args.pool, args.version)
        print(f"pool {args.pool}: spec.version is {args.version}")
    wid = await rollout_control.start_rollout(client, args.pool)
    print(f"rollout {wid} of pool {args.pool} started (or joined)", flush=True)
    if args.detach:
        return 0
    try:
        outcome = await rollout_progress.watch(client, wid)
    except asyncio.CancelledError:
        print(
            f"\ninterrupted: the rollout keeps running (`winfleet status --pool {args.pool}`, "
            f"`winfleet upgrade --pool {args.pool}` to watch it again, "
            f"`winfleet pause --pool {args.pool}` to hold it)",
            file=sys.stderr,
        )
        raise
    if outcome.status == "completed":
        print(outcome.message)
        return 0
    print(f"rollout of pool {args.pool} {outcome.status}: {outcome.message}", file=sys.stderr)
    return 1


async def cmd_pause(args: argparse.Namespace) -> int:
    print(await rollout_control.pause(await connect(args.profile), args.pool))
    return 0


async def cmd_resume(args: argparse.Namespace) -> int:
    print(await rollout_control.resume(await connect(args.profile), args.pool))
    return 0


async def cmd_set_max_unhealthy(args: argparse.Namespace) -> int:
    client = await connect(args.profile)
    print(await rollout_control.set_max_unhealthy(client, args.pool, args.value))
    return 0


async def cmd_worker(args: argparse.Namespace) -> int:
    from worker.app import prepare_process, run_worker  # every activity: only the worker

    prepare_process()  # the SDK's metrics exporter, before the client connects
    telemetry.setup_tracing("winfleet-worker")
    client = await connect(args.profile)
    await ensure_search_attributes(client)
    try:
        await run_worker(client, Settings.from_env())
    finally:
        telemetry.shutdown_tracing()
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    spans = traces.spans_of_workflow(traces.load_spans(Path(args.file)), args.workflow_id)
    print(traces.render(spans))
    return 0 if spans else 1


def pool_name(text: str) -> str:
    """A WindowsMachinePool name, as its CRD allows (argparse type)."""
    if len(text) > MAX_POOL_NAME or not _POOL_NAME.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a pool name (lowercase letters, digits and '-', at most "
            f"{MAX_POOL_NAME} characters, starting with a letter)"
        )
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="winfleet", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default=None, help="Temporal CLI profile (default: env/default)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="run the Temporal worker")

    on = sub.add_parser("onboard", help="onboard Windows nodes, showing live progress")
    on.add_argument("nodes", nargs="*", help="aws:NAME | azure:NAME | byoh:NAME@ADDRESS[:USER]")
    on.add_argument("--pool", default="default", help="pool name (tags, workflow IDs)")
    on.add_argument("--version", default="", help="version to annotate (default: the worker's)")
    on.add_argument("--detach", action="store_true", help="start and return at once")
    on.add_argument("--aws-image-id", default="")
    on.add_argument("--aws-instance-type", default="m5a.large")
    on.add_argument("--aws-subnet-id", default="")
    on.add_argument("--azure-resource-group", default="")
    on.add_argument("--azure-location", default="")
    on.add_argument("--azure-subnet-id", default="")

    up = sub.add_parser(
        "upgrade", help="roll a WindowsMachinePool to a version, showing live progress"
    )
    up.add_argument("--pool", required=True, type=pool_name, help="the WindowsMachinePool")
    up.add_argument(
        "--version", default="", help="set the pool's spec.version first (default: keep it)"
    )
    up.add_argument(
        "--dry-run", action="store_true", help="print the plan, estimated time, blocking PDBs"
    )
    up.add_argument("--detach", action="store_true", help="start (or join) and return at once")

    for name, what in (
        ("pause", "hold the pool's rollout"),
        ("resume", "go on with the held rollout"),
    ):
        sub.add_parser(name, help=what).add_argument(
            "--pool", required=True, type=pool_name, help="the WindowsMachinePool"
        )

    mu = sub.add_parser("set-max-unhealthy", help="change maxUnhealthy of a running rollout")
    mu.add_argument("--pool", required=True, type=pool_name, help="the WindowsMachinePool")
    mu.add_argument("value", help='a count ("2") or a percentage ("25%%") of the replicas')

    st = sub.add_parser("status", help="print the progress query of workflows as JSON")
    st.add_argument("workflow_ids", nargs="*")
    st.add_argument("--pool", type=pool_name, help="the pool's rollout and pool workflow")

    reconcile_cmd.add_parser(sub, pool_type=pool_name)

    tr = sub.add_parser("trace", help="print a workflow's trace as a timeline")
    tr.add_argument("workflow_id")
    tr.add_argument("--file", default=str(telemetry.trace_file()), help="span file (JSON lines)")
    return p


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "onboard": cmd_onboard,
    "upgrade": cmd_upgrade,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "set-max-unhealthy": cmd_set_max_unhealthy,
    "status": cmd_status,
    "reconcile": reconcile_cmd.run,
    "worker": cmd_worker,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    telemetry.setup_logging()
    if args.command == "trace":
        return cmd_trace(args)
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        return 130
    except CommandFailed as exc:
        print(f"winfleet: {exc.message}", file=sys.stderr)
        return exc.code
    except WinfleetError as exc:  # the cluster did not answer as expected
        print(f"winfleet: {exc.message}", file=sys.stderr)
        return 2
    except RPCError as exc:
        print(f"winfleet: Temporal refused: {exc.message}", file=sys.stderr)
        return 2
    except (TemporalUnreachable, SearchAttributesMissing) as exc:
        print(f"winfleet: {exc}", file=sys.stderr)
        return 2


def console() -> None:
    """The `winfleet` executable: `main`, then exit without interpreter finalization.

    The Temporal SDK's native runtime keeps threads that can abort a finalizing interpreter
    ("PyGILState_Release ... must be current"), turning a clean exit code into SIGABRT; every
    output is flushed first, so skipping finalization loses nothing.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
