"""Saved histories of earlier versions still replay: the workflow code stays deterministic.

The histories were recorded from real runs on the dev server: onboardings (`make run`, the
fault tests) and, by tests/workflows/record_histories.py, a pool created, rolled out from 1.0.0
to 1.1.0 (Replace) and scaled down, with its rollout and a decommission. A change to a workflow
that breaks one of them needs `workflow.patched` (or a new workflow type) and a new history
saved here; README "Shipping a workflow change".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from worker.app import WORKFLOWS
from workflows.decoding import data_converter
from workflows.onboard import HARDENED_PATCH, LOCAL_STEPS_PATCH

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
LOADED = {p.stem: json.loads(p.read_text()) for p in HISTORIES}


def workflow_type(history: dict[str, object]) -> str:
    first = history["events"][0]  # type: ignore[index]
    return str(first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, LOADED[path.stem])
    result = await Replayer(
        workflows=list(WORKFLOWS), data_converter=data_converter()
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_histories_cover_every_workflow_type_the_worker_runs() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"onboard-byoh-success", "onboard-aws-success", "onboard-compensated"} <= names
    assert {
        "onboard-hardened-byoh-success",
        "onboard-hardened-compensated",
        "decommission-compensation",
        "onboard-hardened-local-steps-byoh-success",
        "onboard-hardened-local-steps-compensated",
    } <= names
    covered = {workflow_type(h) for h in LOADED.values()}
    registered = {w.__temporal_workflow_definition.name for w in WORKFLOWS}  # type: ignore[attr-defined]
    assert registered <= covered, sorted(registered - covered)


def patches(name: str) -> set[str]:
    """The patch IDs a saved history's markers record."""
    history = WorkflowHistory.from_json(name, LOADED[name])
    found = set()
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            for payloads in event.marker_recorded_event_attributes.details.values():
                for payload in payloads.payloads:
                    data = json.loads(payload.data or b"null")
                    if isinstance(data, dict) and "id" in data:
                        found.add(data["id"])
    return found


def test_hardened_histories_carry_their_patch_marker_and_old_ones_do_not() -> None:
    onboardings = [name for name in LOADED if name.startswith("onboard")]
    for name in onboardings:
        assert (HARDENED_PATCH in patches(name)) == ("hardened" in name), name


def local_activities(name: str) -> list[str]:
    """The activity types a saved history ran as local activities (their markers), in order."""
    history = WorkflowHistory.from_json(name, LOADED[name])
    return [
        json.loads(e.marker_recorded_event_attributes.details["data"].payloads[0].data)[
            "activity_type"
        ]
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]


def test_local_step_histories_carry_their_patch_and_run_the_short_steps_locally() -> None:
    onboardings = [name for name in LOADED if name.startswith("onboard")]
    for name in onboardings:
        local = "local-steps" in name
        assert (LOCAL_STEPS_PATCH in patches(name)) == local, name
        if not local:
            assert local_activities(name) == [], name
    success = local_activities("onboard-hardened-local-steps-byoh-success")
    assert success == ["claim_node", "preflight_node", "finalize_node", "release_node"]
    compensated = local_activities("onboard-hardened-local-steps-compensated")
    assert compensated == ["claim_node", "preflight_node", "release_node"]
