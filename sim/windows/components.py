"""What a SIMULATED host's service binaries do when their service runs.

Maps a service's binary (first word of its binPath) to a simulated behaviour running as an
asyncio task: `sshd.exe` -> `openssh.run_sshd` (its first-start setup runs before Start-Service
returns), `kubelet.exe` -> `kubelet.run_kubelet`, `hybrid-overlay-node.exe` ->
`overlay.run_hybrid_overlay`, `kube-proxy.exe` -> `overlay.run_kube_proxy`. Other binaries
(windows_exporter, containerd, anything the product installs) just count as running and have
no task. A task that returns on its own is a crash (see `services.py`). Used by `host.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sim.windows import cmdline

log = logging.getLogger(__name__)


def service_flags(bin_path: str) -> dict[str, str]:
    """`--name=value` / `--name value` / `--switch` flags of a service command line."""
    argv = cmdline.split(bin_path)[1:]
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            name, eq, value = arg.lstrip("-").partition("=")
            if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                value = argv[i + 1]
                i += 1
            flags[name] = value if (eq or value) else "true"
        i += 1
    return flags


def binary_name(bin_path: str) -> str:
    argv = cmdline.split(bin_path)
    return argv[0].replace("/", "\\").rsplit("\\", 1)[-1].lower() if argv else ""


def spawn(host: Any, svc: Any) -> asyncio.Task[None] | None:
    from sim.windows import kubelet, openssh, overlay

    behaviours: dict[str, Callable[[Any, dict[str, str]], Awaitable[None]]] = {
        "sshd.exe": openssh.run_sshd,
        "kubelet.exe": kubelet.run_kubelet,
        "hybrid-overlay-node.exe": overlay.run_hybrid_overlay,
        "kube-proxy.exe": overlay.run_kube_proxy,
    }
    behaviour = behaviours.get(binary_name(svc.bin_path))
    if behaviour is None:
        return None
    if behaviour is openssh.run_sshd:
        openssh.first_start(host)
    flags = service_flags(svc.bin_path)
    return asyncio.create_task(
        _guard(host, svc.name, behaviour, flags), name=f"{host.address}:{svc.name}"
    )


async def _guard(
    host: Any,
    name: str,
    behaviour: Callable[[Any, dict[str, str]], Awaitable[None]],
    flags: dict[str, str],
) -> None:
    # the coroutine is made here, so a task cancelled before it ran leaves none un-awaited
    try:
        await behaviour(host, flags)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("simulated %s crashed on %s", name, host.address)
