"""The product as a user runs it: `temporal workflow start` with plain JSON, `winfleet onboard`
with live progress, and a `winfleet worker` killed with SIGKILL in the middle of an onboarding."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from onboarding import World, is_ready, node
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.contracts import AwsMachineSpec, OnboardNodeInput, Platform, Progress
from sim.twin import Twin

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIN = Path(sys.executable).parent


def product_env(twin: Twin, temporal: WorkflowEnvironment, queue: str) -> dict[str, str]:
    return {
        **os.environ,
        **twin.env,
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
        "WINFLEET_TASK_QUEUE": queue,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


async def test_temporal_cli_starts_an_onboarding_from_plain_json(
    world: World, temporal: WorkflowEnvironment
) -> None:
    address = world.twin.byoh_addresses[0]
    wid = f"onboard-cli-byoh-json-{uuid.uuid4().hex[:6]}"
    body = {
        "pool": "cli",
        "node_name": "byoh-json",
        "platform": "byoh",
        "byoh": {"address": address},
    }
    cmd = [
        str(BIN / "temporal"), "workflow", "execute",
        "--address", temporal.client.service_client.config.target_host,
        "--type", "OnboardWindowsNode", "--task-queue", world.task_queue,
        "--workflow-id", wid, "--input", json.dumps(body), "--output", "json",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert is_ready(node(world, "byoh-json") or {})
    progress = await world.client.get_workflow_handle(wid).query("progress", result_type=Progress)
    assert progress.status == "completed" and progress.phase == "node-ready"


async def test_winfleet_onboard_shows_progress_and_exits_zero(
    world: World, temporal: WorkflowEnvironment
) -> None:
    address = world.twin.byoh_addresses[1]
    env = product_env(world.twin, temporal, world.task_queue)
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "winfleet"), "onboard", "--pool", "cli", f"byoh:byoh-cli@{address}",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, err.decode() + text
    assert "started onboard-cli-byoh-cli" in text
    lines = [line for line in text.splitlines() if line.startswith("byoh-cli ")]
    assert len(lines) >= 3, text  # a line per observed phase change when not on a terminal
    assert "running" in lines[0] and "completed" in lines[-1], text
    assert "1/1 nodes onboarded" in text
    assert is_ready(node(world, "byoh-cli") or {})


def csrs_of(world: World, node_name: str) -> list[dict[str, Any]]:
    """CSRs whose subject CN is this node's."""
    mine = []
    for csr in world.twin.kube.store.list("certificatesigningrequests"):
        request = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
        cn = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        if cn == f"system:node:{node_name}":
            mine.append(csr)
    return mine


async def wait_for_phase(client: Client, wid: str, phase: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            p = await client.get_workflow_handle(wid).query("progress", result_type=Progress)
            if phase in p.completed or p.phase == phase:
                return
        except Exception:  # not started yet
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{wid} never reached {phase}")


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([str(BIN / "winfleet"), "worker"], env=env, stdout=out, stderr=out)


async def test_a_worker_killed_mid_onboarding_resumes_without_repeating_effects(
    world: World, temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    queue = f"crash-{uuid.uuid4().hex[:6]}"
    env = product_env(world.twin, temporal, queue)
    wid = f"onboard-crash-aws-crash-{uuid.uuid4().hex[:6]}"
    first = spawn_worker(env, tmp_path / "worker1.log")
    try:
        handle = await world.client.start_workflow(
            "OnboardWindowsNode",
            OnboardNodeInput(
                pool="crash", node_name="aws-crash", platform=Platform.AWS, aws=AwsMachineSpec()
            ),
            id=wid,
            task_queue=queue,
        )
        await wait_for_phase(world.client, wid, "approve-csrs", within=90)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    second = spawn_worker(env, tmp_path / "worker2.log")
    try:
        await asyncio.wait_for(handle.result(), timeout=240)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.to_thread(second.wait, 30)

    assert is_ready(node(world, "aws-crash") or {})
    ec2 = world.twin.aws.client()
    found = await asyncio.to_thread(
        ec2.describe_instances, Filters=[{"Name": "tag:winfleet.io/node", "Values": ["aws-crash"]}]
    )
    instances = [i for r in found["Reservations"] for i in r["Instances"]]
    assert len(instances) == 1, "a second VM was created"
    csrs = csrs_of(world, "aws-crash")
    summary = [(c["spec"]["signerName"], c.get("status", {}).get("conditions")) for c in csrs]
    clients = [c for c in csrs if c["spec"]["signerName"].endswith("client-kubelet")]
    assert len(clients) == 1, f"kubelet bootstrapped more than once: {summary}"
    for csr in csrs:  # a restarted kubelet may ask for a serving cert again: approved too
        approved = [c for c in csr["status"].get("conditions", []) if c["type"] == "Approved"]
        assert len(approved) == 1, f"{csr['metadata']['name']}: {summary}"
    host = world.twin.fleet.get(instances[0]["PrivateIpAddress"])
    bootstraps = [c for c in host.command_log if "initialize-kubelet" in c]
    assert len(bootstraps) == 1, "WMCB initialize-kubelet ran more than once"
