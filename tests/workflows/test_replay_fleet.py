"""Saved histories of the fleet workflows still replay: changes to them stay deterministic.

`histories/fleet/pool-aws-scale.json` was recorded before the pool kept a drift
reconciliation Schedule (a pool scaled 1 → 2 → 1, then deleted); the Schedule's activities
are behind `workflow.patched("reconcile-schedule")`, so that history replays unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.decoding import data_converter
from workflows.pool import WindowsPool

HISTORIES = sorted((Path(__file__).parent / "histories" / "fleet").glob("pool-*.json"))
LOADED = {p.stem: json.loads(p.read_text()) for p in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_pool_history_from_before_the_reconcile_schedule_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, LOADED[path.stem])
    replayer = Replayer(workflows=[WindowsPool], data_converter=data_converter())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_the_saved_pool_history_scales_and_deletes_a_pool() -> None:
    text = HISTORIES[0].read_text()
    assert HISTORIES and '"name": "DecommissionWindowsNode"' in text
    assert '"name": "pool_finalizer"' in text
