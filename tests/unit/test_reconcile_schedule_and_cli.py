"""The reconciliation Schedule a pool gets, and `winfleet reconcile`'s command line."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy

from activities.schedules import ReconcileSchedule, interval_of, same_schedule, schedule_for
from worker.cli import parser
from worker.reconcile_cmd import workflow_id


@pytest.mark.parametrize(
    ("seconds", "every", "jitter"),
    [
        (300, timedelta(minutes=5), timedelta(seconds=30)),
        (3600, timedelta(hours=1), timedelta(minutes=1)),  # jitter at most a minute
        (1, timedelta(seconds=5), timedelta(seconds=0.5)),  # not more often than every 5 s
    ],
)
def test_the_interval_comes_from_the_pool_with_a_jitter(
    seconds: int, every: timedelta, jitter: timedelta
) -> None:
    assert interval_of(seconds) == (every, jitter)


def test_the_schedule_starts_the_workflow_with_plain_json_skipping_overlaps() -> None:
    s = schedule_for(ReconcileSchedule("pa", "reconcile-pa", 300), "winfleet")
    action = s.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.args, action.id, action.task_queue) == (
        "ReconcileWindowsPool",
        [{"pool": "pa"}],
        "reconcile-pa",
        "winfleet",
    )
    assert s.policy.overlap == ScheduleOverlapPolicy.SKIP and not s.policy.pause_on_failure


def test_a_schedule_is_rewritten_only_when_interval_or_task_queue_changed() -> None:
    base = ReconcileSchedule("pa", "reconcile-pa", 300)
    current = schedule_for(base, "winfleet")
    assert same_schedule(current, schedule_for(base, "winfleet"))
    assert same_schedule(current, schedule_for(replace(base, trigger=True), "winfleet"))
    assert not same_schedule(current, schedule_for(replace(base, interval_s=600), "winfleet"))
    assert not same_schedule(current, schedule_for(base, "other-queue"))


def test_winfleet_reconcile_takes_a_pool_and_dry_run() -> None:
    args = parser().parse_args(["reconcile", "--pool", "pa", "--dry-run"])
    assert (args.command, args.pool, args.dry_run) == ("reconcile", "pa", True)
    with pytest.raises(SystemExit):
        parser().parse_args(["reconcile"])  # the pool is required


def test_cli_runs_are_named_after_the_pool_and_apart_from_scheduled_ones() -> None:
    assert workflow_id("pa", False, 0) == "reconcile-pa-cli-19700101T000000"
    assert workflow_id("pa", True, 0) == "reconcile-pa-dry-run-19700101T000000"
