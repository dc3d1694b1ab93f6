"""The `winfleet` command: worker, onboard, status, trace.

`winfleet onboard --pool demo aws:win-a1 azure:win-z1 byoh:win-b1@10.0.0.5` starts one
`OnboardWindowsNode` workflow per node (workflow ID `onboard-<pool>-<node>`, so starting twice
attaches to the running one) and shows live progress until all have ended.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError

from activities.config import Settings
from activities.contracts import (
    AwsMachineSpec,
    AzureMachineSpec,
    ByohHostSpec,
    OnboardNodeInput,
    Platform,
    Progress,
)
from worker import progress, reconcile_cmd, telemetry, traces
from worker.temporal import (
    SearchAttributesMissing,
    TemporalUnreachable,
    connect,
    ensure_search_attributes,
    task_queue,
)
from workflows import ids, search_attributes

log = logging.getLogger("winfleet")


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


async def start_onboarding(
    client: Client, inputs: Sequence[OnboardNodeInput]
) -> list[WorkflowHandle[object, object]]:
    handles = []
    for inp in inputs:
        handle = await client.start_workflow(
            "OnboardWindowsNode",
            inp,
            id=workflow_id(inp.pool, inp.node_name),
            task_queue=task_queue(),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search_attributes.NODE, inp.node_name),
                    SearchAttributePair(search_attributes.POOL, inp.pool),
                ]
            ),
        )
        handles.append(handle)
    return handles


async def cmd_onboard(args: argparse.Namespace) -> int:
    inputs = [parse_node_spec(s, args) for s in args.nodes]
    if not inputs:
        raise SystemExit("winfleet onboard: name at least one node (e.g. aws:win-1)")
    client = await connect(args.profile)
    handles = await start_onboarding(client, inputs)
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
    client = await connect(args.profile)
    code = 0
    for wid in args.workflow_ids:
        try:
            p = await client.get_workflow_handle(wid).query("progress", result_type=Progress)
        except RPCError as exc:
            print(f"{wid}: {exc.message}", file=sys.stderr)
            code = 1
            continue
        print(json.dumps({"workflow_id": wid, **asdict(p)}))
    return code


async def cmd_worker(args: argparse.Namespace) -> int:
    from worker.app import run_worker  # imports every activity: only the worker needs them

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

    st = sub.add_parser("status", help="print the progress query of workflows as JSON")
    st.add_argument("workflow_ids", nargs="+")

    reconcile_cmd.add_parser(sub)

    tr = sub.add_parser("trace", help="print a workflow's trace as a timeline")
    tr.add_argument("workflow_id")
    tr.add_argument("--file", default=str(telemetry.trace_file()), help="span file (JSON lines)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    telemetry.setup_logging()
    if args.command == "trace":
        return cmd_trace(args)
    handlers = {"onboard": cmd_onboard, "status": cmd_status, "worker": cmd_worker}
    handler = {**handlers, "reconcile": reconcile_cmd.run}[args.command]
    try:
        return asyncio.run(handler(args))
    except KeyboardInterrupt:
        return 130
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
