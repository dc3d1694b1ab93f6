"""The one thread pool for blocking calls: synchronous SDKs (kubernetes, boto3), file reads.

asyncio's default executor has min(32, CPUs + 4) threads — 6 on a 2-core worker — so a few
slow cloud calls would queue every other activity's Kubernetes request behind them. `run` uses
a pool sized by `WINFLEET_BLOCKING_THREADS` (default 64) instead, created on first use and
replaced when the settings change. Like `asyncio.to_thread`, the call sees the caller's context
variables (the current span). Used by kube.py, cloud/aws.py, kubelet.py, payload and ssh.py;
the Azure code is async and needs no thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from activities.config import on_settings_change, settings

T = TypeVar("T")

_pool: list[ThreadPoolExecutor] = []


def executor() -> ThreadPoolExecutor:
    """The pool (created on first use with the configured size)."""
    if not _pool:
        _pool.append(
            ThreadPoolExecutor(
                max_workers=settings().blocking_threads, thread_name_prefix="winfleet-blocking"
            )
        )
    return _pool[0]


def size() -> int:
    """How many calls may block at once."""
    return settings().blocking_threads


async def run(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` on the pool; the event loop stays free meanwhile."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    return await loop.run_in_executor(executor(), functools.partial(ctx.run, fn, *args, **kwargs))


def _reset() -> None:
    while _pool:
        _pool.pop().shutdown(wait=False)


on_settings_change(_reset)
