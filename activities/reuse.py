"""A result fetched once and shared: by the callers that ask at the same time, and for a while
by those that come after (in memory only).

`Reused(seconds)` keeps, per key, the one fetch in flight on the running event loop (callers
that ask meanwhile await it too) and its result for `seconds` after it arrived. A failed fetch
is not kept: the next caller fetches again. `clear()` forgets everything (on new settings).
Used for what a fleet's onboardings all need and what rarely changes: the worker ignition
(activities/kubelet.py) and the AWS image to launch (activities/cloud/aws.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Reused(Generic[K, V]):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._kept: dict[K, tuple[float, V]] = {}
        self._fetching: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        kept = self._kept.get(key)
        if kept is not None and time.monotonic() - kept[0] < self.seconds:
            return kept[1]
        loop = asyncio.get_running_loop()
        task = self._fetching.get(key)
        if task is None or task.done() or task.get_loop() is not loop:

            async def run() -> V:
                return await fetch()

            task = loop.create_task(run())
            self._fetching[key] = task
        value = await asyncio.shield(task)
        self._kept[key] = (time.monotonic(), value)
        return value

    def clear(self) -> None:
        self._kept.clear()
        self._fetching.clear()
