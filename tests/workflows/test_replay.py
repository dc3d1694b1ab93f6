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

from workflows.onboard import OnboardWindowsNode

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
LOADED = {p.stem: json.loads(p.read_text()) for p in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, LOADED[path.stem])
    result = await Replayer(workflows=[OnboardWindowsNode]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_histories_cover_success_and_compensation() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"onboard-byoh-success", "onboard-aws-success", "onboard-compensated"} <= names
