"""Maintenance windows: is one open at a given moment, and when does that change?

A window opens on each of its days at `start`, local to its IANA time zone, and stays open for
its duration of real (UTC) time, so a window across midnight or across a DST change lasts as
long as it says. A start time that a spring-forward skips opens at the first moment after the
gap (the instant the standard-time offset gives); one that a fall-back repeats opens at its
first occurrence. Overlapping occurrences merge. No window: always open.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.pool_contracts import DAYS, MaintenanceWindow

_UTC = dt.UTC


def _occurrences(
    window: MaintenanceWindow, now_utc: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    zone = zoneinfo.ZoneInfo(window.time_zone)
    hour, minute = (int(part) for part in window.start.split(":"))
    length = dt.timedelta(seconds=window.duration_s)
    today = now_utc.astimezone(zone).date()
    back = window.duration_s // 86400 + 8
    wanted = {DAYS.index(d) for d in window.days}
    out = []
    for offset in range(-back, 9):
        day = today + dt.timedelta(days=offset)
        if day.weekday() in wanted:
            local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
            start = local.astimezone(_UTC)
            out.append((start, start + length))
    out.sort()
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in out:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def window_state(
    window: MaintenanceWindow | None, now_utc: dt.datetime
) -> tuple[bool, dt.datetime | None]:
    """(open now, the next moment that changes) for `now_utc` (an aware datetime)."""
    if window is None or not window.days or window.duration_s <= 0:
        return (window is None, None)
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must carry a time zone (workflow.now() does)")
    now = now_utc.astimezone(_UTC)
    for start, end in _occurrences(window, now):
        if start <= now < end:
            return True, end
        if now < start:
            return False, start
    return False, None
