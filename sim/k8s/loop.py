"""`ControlLoop`: how each SIMULATED cluster controller runs on the twin's event loop.

A controller is a synchronous `step()` that looks at the store, writes through `sim.k8s.api.Api`
and returns how many seconds until it wants to look again (None: only when kicked). `kick()` is
called from store events; kicks that arrive while a step is pending coalesce into one step, the
way a work queue collapses repeated keys. Steps never await, so each sees one consistent store.
Used by `sim.k8s.controllers` (and `sim.cloud.nodes` through `sim.twin`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

ERROR_RETRY_SECONDS = 1.0


class ControlLoop:
    def __init__(
        self, name: str, step: Callable[[], float | None], period: float | None = None
    ) -> None:
        self.name = name
        self._step = step
        self._period = period
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            # The flag too: Python 3.11's wait_for loses a cancellation that arrives as the
            # wait ends (a kick at the same moment), and the loop would run on.
            self._stopped = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def kick(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopped:
            self._wake.clear()
            try:
                again = self._step()
            except Exception:  # a bug or a race in one step must not stop the controller
                log.exception("simulated controller %s failed a step", self.name)
                again = ERROR_RETRY_SECONDS
            waits = [w for w in (again, self._period) if w is not None]
            try:
                await asyncio.wait_for(self._wake.wait(), min(waits) if waits else None)
            except TimeoutError:
                pass
            await asyncio.sleep(0)  # let a burst of events finish before the next step
