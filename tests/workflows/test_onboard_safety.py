"""Bad input changes nothing, and no secret ever reaches history, logs or traces."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid

import pytest
from onboarding import SPANS, World, start, steps_run
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities.contracts import AwsMachineSpec, ByohHostSpec, OnboardNodeInput, Platform

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize(
    "bad",
    [
        OnboardNodeInput(
            pool="bad", node_name="Has_Upper", platform=Platform.AWS, aws=AwsMachineSpec()
        ),
        OnboardNodeInput(
            pool="bad",
            node_name="much-too-long-for-windows",
            platform=Platform.AWS,
            aws=AwsMachineSpec(),
        ),
        OnboardNodeInput(pool="bad", node_name="no-spec", platform=Platform.AWS),
        OnboardNodeInput(
            pool="bad",
            node_name="two-specs",
            platform=Platform.BYOH,
            byoh=ByohHostSpec(address="127.12.0.11"),
            aws=AwsMachineSpec(),
        ),
    ],
    ids=["uppercase-name", "name-over-15", "missing-spec", "two-specs"],
)
async def test_bad_input_is_refused_before_anything_is_created(
    world: World, bad: OnboardNodeInput
) -> None:
    nodes_before = len(world.twin.kube.store.list("nodes"))
    hosts_before = len(world.twin.fleet.hosts)
    handle = await start(world, bad)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidRequest"
    assert "refused before anything was created" in cause.message
    assert steps_run(await handle.fetch_history()) == []
    assert len(world.twin.kube.store.list("nodes")) == nodes_before
    assert len(world.twin.fleet.hosts) == hosts_before


async def test_history_logs_and_trace_hold_no_key_material(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = world.twin.kube.store.get("secrets", "cloud-private-key", namespace="winfleet")
    assert secret is not None
    pem = base64.b64decode(secret["data"]["private-key.pem"]).decode()
    body_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    needles = [line for line in body_lines if len(line) > 20]
    needles += [world.twin.kube.admin_token, world.twin.kube.bootstrap_token]
    needles.append(world.twin.env["AZURE_CLIENT_SECRET"])
    needles.append("PRIVATE KEY")

    handle = await start(
        world,
        OnboardNodeInput(
            pool="sec",
            node_name="byoh-sec",
            platform=Platform.BYOH,
            byoh=ByohHostSpec(address=world.twin.byoh_addresses[1]),
        ),
    )
    await handle.result()

    history = json.dumps((await handle.fetch_history()).to_json_dict())
    spans = "\n".join(
        json.dumps({"name": s.name, "attrs": dict(s.attributes or {})})
        for s in SPANS.get_finished_spans()
    )
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "byoh-sec" in history and "byoh-sec" in spans  # we searched the right material
    for needle in needles:
        assert needle not in history, "key material in workflow history"
        assert needle not in spans, "key material in a span"
        assert needle not in logs, "key material in a log line"


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"pool": "bad", "node_name": "gcp-1", "platform": "gcp"}, "platform: 'gcp' is not one of"),
        (
            {"pool": "bad", "node_name": "typed-1", "platform": "aws", "aws": {"instance_type": 5}},
            "aws.instance_type: expected a string",
        ),
        (
            {
                "pool": "bad",
                "node_name": "misspelt-1",
                "platform": "aws",
                "aws": {},
                "privateKeySecret": "other",
            },
            "privateKeySecret: unknown field (did you mean 'private_key_secret'?)",
        ),
        ({"pool": "bad", "platform": "aws", "aws": {}}, "node_name: required field is missing"),
    ],
    ids=["unknown-platform", "wrong-type", "unknown-field", "missing-field"],
)
async def test_input_that_does_not_decode_fails_the_run_at_once_naming_the_field(
    world: World, raw: dict[str, object], named: str
) -> None:
    started = asyncio.get_running_loop().time()
    handle = await world.client.start_workflow(
        "OnboardWindowsNode",
        raw,
        id=f"onboard-bad-{uuid.uuid4().hex[:8]}",
        task_queue=world.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert asyncio.get_running_loop().time() - started < 10
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidRequest"
    assert named in cause.message
    history = await handle.fetch_history()
    assert steps_run(history) == []
    failed_tasks = [
        e for e in history.events if e.HasField("workflow_task_failed_event_attributes")
    ]
    assert failed_tasks == []  # closed as FAILED, not a workflow task retried forever


async def test_a_bad_version_string_is_refused_before_anything_is_created(world: World) -> None:
    handle = await start(
        world,
        OnboardNodeInput(
            pool="bad",
            node_name="bad-version",
            platform=Platform.BYOH,
            byoh=ByohHostSpec(address=world.twin.byoh_addresses[0]),
            version="1.0; rm -rf",
        ),
    )
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidRequest"
    assert "version '1.0; rm -rf' is not a payload version" in cause.message


async def test_a_missing_key_secret_is_named_and_nothing_is_created(world: World) -> None:
    hosts_before = len(world.twin.fleet.hosts)
    handle = await start(
        world,
        OnboardNodeInput(
            pool="bad",
            node_name="no-secret",
            platform=Platform.AWS,
            aws=AwsMachineSpec(),
            private_key_secret="no-such-secret",
        ),
    )
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidRequest"
    assert "refused before anything was created" in cause.message
    assert "secret winfleet/no-such-secret does not exist" in cause.message
    assert len(world.twin.fleet.hosts) == hosts_before
    names = steps_run(await handle.fetch_history())
    assert "preflight_node" in names and "create_vm" not in names
