"""Bad input changes nothing, and no secret ever reaches history, logs or traces."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from onboarding import SPANS, World, start
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
    history = await handle.fetch_history()
    scheduled = [
        e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == []
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
