"""How waits poll: promptly at first, then at a gentle steady pace.

A wait usually ends within a second (a CSR, an annotation, an HNS network), so the first
probes come quickly; a long wait (a booting VM) settles at one probe a second, which keeps the
load of many parallel onboardings on the API server and hosts small. Used by every wait loop
(activities/node.py, activities/network.py, activities/host.py).

`heartbeating` keeps a long single step (a cloud call, a remote command) visibly alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 1.0
HEARTBEAT_EVERY_S = 5.0  # well inside the workflow's heartbeat timeout


def delays(first: float = FIRST_DELAY_S, maximum: float = MAX_DELAY_S) -> Iterator[float]:
    """0.1, 0.2, 0.4, 0.8, 1.0, 1.0, ... seconds."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, maximum)


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` passes; whether it was set.

    `asyncio.timeout`, not `wait_for`: on Python 3.11, `wait_for` loses a cancellation (the
    activity's, a worker's shutdown) that arrives just as the event fires, and the caller's loop
    would run on.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def heartbeating(aw: Awaitable[T], every: float = HEARTBEAT_EVERY_S) -> T:
    """Await `aw`, heartbeating every `every` seconds, so a slow step does not look like a
    dead worker; cancelled with the activity."""
    task = asyncio.ensure_future(aw)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()
