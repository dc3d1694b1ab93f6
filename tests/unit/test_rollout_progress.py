"""What `winfleet upgrade` shows while a rollout runs: bar, nodes in flight, waits, ETA."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from activities.pool_contracts import RolloutProgress
from worker.rollout_progress import change_key, eta_seconds, render

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
RUNNING = RolloutProgress(
    pool="web",
    target_version="1.1.0",
    state="Progressing",
    plan=("w-1", "w-2", "w-3", "w-4"),
    done=("w-1",),
    in_flight=("w-2",),
    remaining=("w-3", "w-4"),
    paused=False,
    budget="1",
    started_at=START.isoformat(),
)


@pytest.mark.parametrize(
    ("progress", "minutes_in", "eta"),
    [
        (RUNNING, 10, 30 * 60.0),  # 1 node in 10 min, 3 left
        (replace(RUNNING, done=("w-1", "w-2"), in_flight=()), 10, 10 * 60.0),
        (replace(RUNNING, done=()), 10, None),  # no pace before the first node
        (replace(RUNNING, paused=True), 10, None),
        (replace(RUNNING, done=RUNNING.plan), 10, None),
        (replace(RUNNING, started_at=""), 10, None),
    ],
)
def test_the_eta_follows_the_pace_so_far(
    progress: RolloutProgress, minutes_in: int, eta: float | None
) -> None:
    assert eta_seconds(progress, START + timedelta(minutes=minutes_in)) == eta


def test_a_running_rollout_shows_bar_target_in_flight_and_eta() -> None:
    lines = render(RUNNING, START + timedelta(minutes=10))
    assert lines == [
        "pool web -> 1.1.0 [######..................] 1/4 Progressing, ETA 30m",
        "  in flight: w-2",
    ]


def test_a_paused_rollout_says_so_and_how_to_go_on() -> None:
    paused = replace(RUNNING, state="Paused", paused=True, waiting_for="resume (paused)")
    lines = render(paused, START + timedelta(minutes=10))
    assert "PAUSED" in lines[0] and "winfleet resume --pool web" in lines[0]
    assert "ETA" not in lines[0]
    assert lines[-1] == "  waiting for: resume (paused)"


def test_a_halted_rollout_shows_its_reason() -> None:
    halted = replace(RUNNING, state="Halted", in_flight=(), message="replacement w-5 failed")
    assert render(halted, None)[-1] == "  replacement w-5 failed"


def test_a_node_already_done_is_not_shown_in_flight_while_its_grant_is_released() -> None:
    overlap = replace(RUNNING, done=("w-1", "w-2"), in_flight=("w-2", "w-3"))
    assert render(overlap, None)[1] == "  in flight: w-3"


def test_many_nodes_in_flight_are_summarised() -> None:
    many = tuple(f"w-{i}" for i in range(10))
    lines = render(replace(RUNNING, plan=many, done=(), in_flight=many), None)
    assert lines[1] == "  in flight: w-0, w-1, w-2, w-3, w-4, w-5 (+4 more)"


def test_a_rollout_that_has_not_read_its_pool_yet_shows_no_bar() -> None:
    planning = replace(RUNNING, target_version="", state="Planning", plan=(), done=())
    assert render(planning, None) == ["pool web: Planning the rollout"]


def test_only_a_change_other_than_the_clock_prints_a_new_line_when_not_on_a_terminal() -> None:
    assert change_key(RUNNING) == change_key(replace(RUNNING, budget="1"))
    assert change_key(RUNNING) != change_key(replace(RUNNING, done=("w-1", "w-2")))
    assert change_key(RUNNING) != change_key(replace(RUNNING, waiting_for="the budget"))
