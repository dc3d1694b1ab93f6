"""A simulated controller's loop stops when told, even when a kick wakes it at that moment
(Python 3.11's wait_for loses a cancellation that arrives as the wait ends)."""

from __future__ import annotations

import asyncio

from sim.k8s.loop import ControlLoop


async def test_a_loop_woken_by_a_kick_as_it_is_stopped_stops() -> None:
    steps: list[int] = []
    for _ in range(20):
        loop = ControlLoop("test", lambda: steps.append(1) or 10.0)  # looks again in 10 s
        loop.start()
        await asyncio.sleep(0.001)  # the loop waits for a kick or its 10 s
        loop.kick()
        stopping = asyncio.ensure_future(loop.stop())
        done, _ = await asyncio.wait({stopping}, timeout=2)
        assert stopping in done, "the loop ran on after stop()"
    assert steps  # the loops did run
