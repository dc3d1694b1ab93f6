"""Blocking calls share one pool sized by WINFLEET_BLOCKING_THREADS, not asyncio's 6 threads."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator

import pytest

from activities import blocking
from activities.config import Settings, use_settings


@pytest.fixture
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    n: int = request.param
    use_settings(Settings.from_env({"WINFLEET_BLOCKING_THREADS": str(n)}))
    yield n
    use_settings(Settings.from_env({}))


@pytest.mark.parametrize("threads", [24], indirect=True)
async def test_as_many_calls_block_at_once_as_the_pool_has_threads(threads: int) -> None:
    # Each call waits until all of them are inside: that only ends if they run side by side.
    barrier = threading.Barrier(threads, timeout=10)
    names = await asyncio.gather(*(blocking.run(_wait_then_name, barrier) for _ in range(threads)))
    assert len(set(names)) == threads
    assert all(n.startswith("winfleet-blocking") for n in names)


@pytest.mark.parametrize("threads", [2], indirect=True)
async def test_no_more_calls_block_at_once_than_the_pool_has_threads(threads: int) -> None:
    barrier = threading.Barrier(threads + 1, timeout=0.5)
    results = await asyncio.gather(
        *(blocking.run(_wait_then_name, barrier) for _ in range(threads + 1)),
        return_exceptions=True,
    )
    assert any(isinstance(r, threading.BrokenBarrierError) for r in results)


SPAN = contextvars.ContextVar("span", default="none")


async def test_a_call_sees_the_callers_context_like_to_thread() -> None:
    SPAN.set("approve-csrs")
    assert await blocking.run(SPAN.get) == "approve-csrs"


def _wait_then_name(barrier: threading.Barrier) -> str:
    barrier.wait()
    return threading.current_thread().name


def test_the_pool_defaults_to_64_threads() -> None:
    assert Settings.from_env({}).blocking_threads == 64
