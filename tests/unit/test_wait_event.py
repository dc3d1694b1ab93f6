"""`polling.wait_event`: set, timed out, and never losing a cancellation that arrives as the
event fires (what `asyncio.wait_for` does on Python 3.11)."""

from __future__ import annotations

import asyncio

from activities.polling import wait_event


async def test_it_tells_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 0.01) is True


async def test_a_cancellation_as_the_event_fires_stops_the_waiting_loop() -> None:
    for _ in range(20):
        event = asyncio.Event()

        async def waiting_loop(event: asyncio.Event = event) -> None:
            while True:  # as the cache's waits: wake, look, wait again
                event.clear()
                await wait_event(event, 10.0)

        task = asyncio.ensure_future(waiting_loop())
        await asyncio.sleep(0.001)
        event.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert task in done and task.cancelled(), "the cancellation was lost"
