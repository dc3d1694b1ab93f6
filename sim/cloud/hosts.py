"""SIMULATED VM power for the cloud twins: stop and start a VM's Windows host, or remove it.

A stopped VM's host stays in the fleet, powered off with its disk; a deleted VM's host leaves
the fleet and its disk is wiped. Shared by `sim.cloud.aws` and `sim.cloud.azure`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from typing import Any

from sim.windows.fleet import HostFleet

log = logging.getLogger(__name__)


# Windows Server release (as it appears in image names/SKUs) -> the build its hosts report.
_BUILDS = (("2016", "10.0.14393.4046"), ("2022", "10.0.20348.2113"), ("2019", "10.0.17763.1457"))


def windows_build(image_label: str) -> str:
    """The OS build a VM from this image reports (AMI name or Azure SKU); 2019 by default."""
    for release, build in _BUILDS:
        if release in image_label:
            return build
    return "10.0.17763.1457"


async def remove_host(
    fleet: HostFleet, address: str, bring_up: asyncio.Task[Any], *, wipe_disk: bool
) -> None:
    """Power a cloud VM's host off; `wipe_disk` when the VM is deleted, so that a new VM that
    gets the same private IP later starts from a fresh disk, as in the cloud."""
    if not bring_up.done():
        bring_up.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await bring_up
    await fleet.remove_host(address)
    if wipe_disk:
        disk = getattr(bring_up.result(), "dir", None) if succeeded(bring_up) else None
        await asyncio.to_thread(shutil.rmtree, disk or fleet.state_dir / "hosts" / address, True)


async def power_off(bring_up: asyncio.Task[Any]) -> None:
    """VM stop: the host (once it is in the fleet) goes off the network, keeping its disk."""
    await asyncio.wait([bring_up])
    if succeeded(bring_up):
        await bring_up.result().power_off()


def power_on(bring_up: asyncio.Task[Any]) -> None:
    """VM start: the same host boots again (its boot delay, then Automatic services)."""
    if succeeded(bring_up):
        bring_up.result().power_on()


def succeeded(task: asyncio.Task[Any]) -> bool:
    """A bring-up task that finished: the host is in the fleet (booting or up)."""
    return task.done() and not task.cancelled() and task.exception() is None


def log_bring_up_failure(task: asyncio.Task[Any]) -> None:
    """Done-callback for a host bring-up task: a VM without its host must not go unnoticed."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s: simulated host did not come up: %s", task.get_name(), task.exception())
