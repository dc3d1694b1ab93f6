"""Coalesced writes: callers at the same moment share one flush; a failed flush fails only its
own batch."""

from __future__ import annotations

import asyncio

import pytest

from activities.coalesce import Coalescer


async def test_requests_at_once_share_one_flush_and_each_gets_its_own_result() -> None:
    flushes: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushes.append(items)
        return [i * 10 for i in items]

    batches = Coalescer(flush, gather_s=0.01)
    assert await asyncio.gather(*(batches.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert flushes == [[0, 1, 2, 3, 4]]


async def test_a_failed_flush_fails_its_callers_and_the_next_batch_is_written() -> None:
    async def flush(items: list[int]) -> list[int]:
        if 0 in items:
            raise RuntimeError("the API server said no")
        return items

    batches = Coalescer(flush, gather_s=0.01)
    with pytest.raises(RuntimeError, match="said no"):
        await asyncio.gather(batches.submit(0), batches.submit(1))
    assert await batches.submit(2) == 2
