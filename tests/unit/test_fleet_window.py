"""Maintenance windows: open or closed at a moment, and when that changes (time zones, DST)."""

from __future__ import annotations

import datetime as dt

import pytest

from activities.pool_contracts import MaintenanceWindow
from workflows.fleet.window import window_state

H = 3600


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


MONDAY_NIGHT = MaintenanceWindow(days=("Mon",), start="22:00", duration_s=2 * H)
WEEKEND_BERLIN = MaintenanceWindow(("Sat", "Sun"), "22:00", 6 * H, "Europe/Berlin")
LONG_OVERLAP = MaintenanceWindow(("Mon", "Tue"), "20:00", 30 * H)
NEW_YORK_SUNDAY = MaintenanceWindow(("Sun",), "01:00", 3 * H, "America/New_York")
NEW_YORK_SKIPPED = MaintenanceWindow(("Sun",), "02:30", 1 * H, "America/New_York")
NEW_YORK_REPEATED = MaintenanceWindow(("Sun",), "01:30", 1 * H, "America/New_York")
BERLIN_MONDAY = MaintenanceWindow(("Mon",), "22:00", 2 * H, "Europe/Berlin")


@pytest.mark.parametrize(
    ("window", "now", "is_open", "next_change"),
    [
        # 2026-01-05 is a Monday
        (MONDAY_NIGHT, "2026-01-05T21:00:00", False, "2026-01-05T22:00:00"),
        (MONDAY_NIGHT, "2026-01-05T22:00:00", True, "2026-01-06T00:00:00"),
        (MONDAY_NIGHT, "2026-01-05T23:59:59", True, "2026-01-06T00:00:00"),  # across midnight
        (MONDAY_NIGHT, "2026-01-06T00:00:00", False, "2026-01-12T22:00:00"),
        (MONDAY_NIGHT, "2026-01-08T12:00:00", False, "2026-01-12T22:00:00"),
        # Saturday 22:00 CET = 21:00 UTC; Sunday 02:00 local is still Saturday's window
        (WEEKEND_BERLIN, "2026-01-10T20:59:00", False, "2026-01-10T21:00:00"),
        (WEEKEND_BERLIN, "2026-01-11T01:00:00", True, "2026-01-11T03:00:00"),
        (WEEKEND_BERLIN, "2026-01-11T22:00:00", True, "2026-01-12T03:00:00"),
        # Monday's 30 h and Tuesday's overlap: one window until Wednesday 02:00
        (LONG_OVERLAP, "2026-01-06T21:00:00", True, "2026-01-08T02:00:00"),
        # CET in winter, CEST in summer: the window moves in UTC, not in local time
        (BERLIN_MONDAY, "2026-01-05T21:30:00", True, "2026-01-05T23:00:00"),
        (BERLIN_MONDAY, "2026-07-06T20:30:00", True, "2026-07-06T22:00:00"),
        # DST starts in New York on 2026-03-08 at 02:00: 01:00 EST + 3 real hours = 05:00 EDT
        (NEW_YORK_SUNDAY, "2026-03-08T05:59:00", False, "2026-03-08T06:00:00"),
        (NEW_YORK_SUNDAY, "2026-03-08T08:30:00", True, "2026-03-08T09:00:00"),
        # 02:30 does not exist that day: the window opens right after the gap, 03:30 EDT
        (NEW_YORK_SKIPPED, "2026-03-08T07:00:00", False, "2026-03-08T07:30:00"),
        # 01:30 happens twice on 2026-11-01: the window opens at the first, 01:30 EDT
        (NEW_YORK_REPEATED, "2026-11-01T05:00:00", False, "2026-11-01T05:30:00"),
        (NEW_YORK_REPEATED, "2026-11-01T06:00:00", True, "2026-11-01T06:30:00"),
    ],
)
def test_a_window_is_open_in_its_local_time_and_says_when_that_changes(
    window: MaintenanceWindow, now: str, is_open: bool, next_change: str
) -> None:
    assert window_state(window, utc(now)) == (is_open, utc(next_change))


def test_without_a_window_nodes_may_go_down_at_any_time() -> None:
    assert window_state(None, utc("2026-01-05T03:00:00")) == (True, None)


def test_a_moment_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        window_state(MONDAY_NIGHT, dt.datetime(2026, 1, 5, 22))
