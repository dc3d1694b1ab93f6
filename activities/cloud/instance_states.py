"""One describe loop for all the instances a worker waits on, instead of one poll per node.

`InstanceStates(describe)` batches: every `wait_running` of activities/cloud/aws.py asks
`next_state(instance_id)`, and one loop answers all of them with a single describe call per
round (`describe(ids)` returns the instances it found, by id), every `interval` seconds while
anyone waits. An instance asked about for the first time gets a round soon (after `gather_s`,
which lets the requests of a fleet launched together share it), so a single launch is not
slowed down; after that each waiter's state comes with the regular rounds. A failed describe
fails the waiters of that round with its (translated) error, as their own call would have.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Instance = dict[str, Any]
Describe = Callable[[list[str]], Awaitable[dict[str, Instance]]]

GATHER_S = 0.2  # a new instance's first round waits this long for others launched with it


class InstanceStates:
    """Shared rounds of describe calls for the instances being waited on (one event loop)."""

    def __init__(self, describe: Describe, interval: float, gather_s: float = GATHER_S) -> None:
        self._describe = describe
        self._interval = interval
        self._gather_s = gather_s
        self._waiting: dict[str, list[asyncio.Future[Instance | None]]] = {}
        self._seen: set[str] = set()  # instances described at least once
        self._soon = asyncio.Event()  # an instance waits for its first round
        self._task: asyncio.Task[None] | None = None

    async def next_state(self, instance_id: str) -> Instance | None:
        """The instance as the next round describes it; None while the API does not know it."""
        future: asyncio.Future[Instance | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(instance_id, []).append(future)
        if instance_id not in self._seen:
            self._soon.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._rounds(), name="describe instance states")
        try:
            return await future
        finally:
            waiters = self._waiting.get(instance_id)
            if waiters is not None and future in waiters:  # cancelled before its round
                waiters.remove(future)
                if not waiters:
                    del self._waiting[instance_id]

    async def _rounds(self) -> None:
        while self._waiting:
            if not self._soon.is_set():
                try:
                    await asyncio.wait_for(self._soon.wait(), self._interval)
                except TimeoutError:
                    pass
            if self._soon.is_set():
                await asyncio.sleep(self._gather_s)
            self._soon.clear()
            batch, self._waiting = self._waiting, {}
            if not batch:
                continue
            try:
                found = await self._describe(sorted(batch))
            except Exception as exc:
                for futures in batch.values():
                    for f in futures:
                        if not f.done():
                            f.set_exception(exc)
                continue
            self._seen.update(batch)
            for instance_id, futures in batch.items():
                for f in futures:
                    if not f.done():
                        f.set_result(found.get(instance_id))
