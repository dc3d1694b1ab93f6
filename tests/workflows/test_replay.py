"""Saved histories of earlier versions still replay: the workflow code stays deterministic.

The histories were recorded from real runs (`make run`, the fault tests) on the dev server. A
change to `OnboardWindowsNode` that breaks one of them needs `workflow.patched` or a new
workflow type, and a new history saved here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.decommission import DecommissionWindowsNode
from workflows.onboard import HARDENED_PATCH, OnboardWindowsNode

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
LOADED = {p.stem: json.loads(p.read_text()) for p in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, LOADED[path.stem])
    workflow = (
        DecommissionWindowsNode if path.stem.startswith("decommission") else OnboardWindowsNode
    )
    result = await Replayer(workflows=[workflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_histories_cover_success_and_compensation() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"onboard-byoh-success", "onboard-aws-success", "onboard-compensated"} <= names
    assert {
        "onboard-hardened-byoh-success",
        "onboard-hardened-compensated",
        "decommission-compensation",
    } <= names


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
