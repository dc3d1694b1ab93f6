"""Waiting until winfleet has seen a re-imaged host drop its SSH connections.

A simulated host whose key changes (`faults.change_host_key()`, a re-imaged machine) drops its
open SSH sessions, as the re-install restarted it; the worker learns that a few event-loop turns
later. Tests that change a host's key and connect again at once wait for that first, since the
worker reuses an open connection (activities/ssh_pool.py) and a real re-install takes minutes.
"""

from __future__ import annotations

import asyncio

from activities import ssh_pool

DEADLINE_S = 10.0


async def until_connections_dropped(address: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while ssh_pool.pool().connected_to(address):
        if loop.time() > deadline:
            raise AssertionError(f"winfleet still holds an SSH connection to {address}")
        await asyncio.sleep(0.01)
