"""Concurrent requests for one write, gathered into batches written together (group commit).

A fleet onboarding at once pins every host's SSH key in the one ConfigMap within seconds
(activities/hostkeys.py). Written one by one, each with the resourceVersion it read, all but
one writer conflict on every round and the API server sees a storm of re-reads and retries.
`Coalescer(flush).submit(item)` instead queues the item; one task per event loop waits
`gather_s` for more, then hands everything queued to `flush(items)`, which writes them in one
go and returns one result per item (in order). Items queued meanwhile form the next batch. If
`flush` raises, every caller of that batch gets the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

GATHER_S = 0.05  # how long a first request waits for others to join its batch


class Coalescer(Generic[T, R]):
    """Batches of `submit`ted items, each batch written by one `flush` call."""

    def __init__(
        self, flush: Callable[[list[T]], Awaitable[list[R]]], gather_s: float = GATHER_S
    ) -> None:
        self._flush = flush
        self._gather_s = gather_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """`item`'s result, once the batch it joined is written."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): nothing of the old one runs
            self._loop, self._pending, self._task = loop, [], None
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._batches(), name="coalesced writes")
        return await future

    async def _batches(self) -> None:
        while self._pending:
            await asyncio.sleep(self._gather_s)
            batch, self._pending = self._pending, []
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # its caller may have been cancelled meanwhile
                    future.set_result(result)
