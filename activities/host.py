"""Waiting for a Windows host to answer SSH, and making it fit to become a node.

The `wait_for_ssh` activity connects until the host accepts our key (a new VM takes minutes to
boot), pins its host key on first use, refuses Windows builds winfleet does not support, and
makes the hostname equal the node name (Rename-Computer + reboot, then waits again), since
kubelet registers under the hostname. Called by the onboarding workflow right after the VM
exists (or the BYOH host is known), before `copy_payload`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from temporalio import activity

from activities.config import settings
from activities.errors import (
    HostUnreachable,
    InvalidRequest,
    RemoteCommandFailed,
    UnsupportedWindowsBuild,
    boundary,
)
from activities.ssh import HostSession, session_for
from activities.windows.powershell import (
    get_os,
    hostname,
    powershell,
    rename_computer,
    restart_computer,
    to_json,
)
from activities.windows.services import (
    KUBELET_SERVICE,
    parse_service_state,
    query_service_command,
)

FIRST_RETRY_S = 0.1  # a refused connection is retried quickly at first...
MAX_RETRY_S = 2.0  # ...and at least every 2 s: a refused dial is cheap, a booted VM is used at once
REBOOT_GRACE_S = 120.0  # an old hostname seen this soon after Restart-Computer: reboot pending
RENAMED = "renamed"  # heartbeat detail: the host was renamed by an earlier attempt
PINNED = "pinned"  # heartbeat detail: an earlier attempt pinned the host key (first contact)
# A Windows computer (DNS host) name: letters, digits, hyphens; at most 63; not only digits.
_COMPUTER_NAME = re.compile(r"(?!\d+$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class WaitForSshInput:
    node_name: str
    address: str
    username: str
    private_key_secret: str  # name of the Secret holding `private-key.pem`, not the key
    supported_builds: tuple[str, ...] = ()  # empty: the worker's configured builds
    timeout_s: float = 600.0


@dataclass(frozen=True)
class HostFacts:
    address: str
    hostname: str
    os_build: str  # Win32_OperatingSystem.Version, e.g. "10.0.17763"
    host_key_fingerprint: str  # "SHA256:..."
    renamed: bool  # the hostname was changed to the node name (and the host rebooted)
    # Before this run touched it: the kubelet service existed (the host was configured).
    kubelet_installed: bool = False
    pinned_now: bool = False  # this call pinned the host key (first contact with this host)


def is_supported(os_build: str, supported: tuple[str, ...]) -> bool:
    """`10.0.17763` and `10.0.17763.1457` both match a supported `10.0.17763`."""
    return any(os_build == s or os_build.startswith(s + ".") for s in supported)


async def read_os_build(session: HostSession) -> str:
    found = await session.run_json(powershell(to_json(get_os()), display="read OS version"))
    version = found.get("Version") if isinstance(found, dict) else None
    if not isinstance(version, str) or not version:
        raise RemoteCommandFailed(
            f"read OS version on {session.address}: unexpected output {found!r:.200}"
        )
    return version


async def read_hostname(session: HostSession) -> str:
    result = await session.run(powershell(hostname(), display="hostname"))
    return result.stdout.strip()


def require_computer_name(node_name: str, address: str) -> None:
    """Refuse a node name Windows cannot take as its hostname (e.g. one with dots)."""
    if not _COMPUTER_NAME.fullmatch(node_name):
        raise InvalidRequest(
            f"host {address} must be renamed to node name {node_name!r}, but Windows computer "
            "names allow only letters, digits and hyphens (at most 63, not all digits); choose "
            "another node name"
        )


async def rename_and_restart(session: HostSession, node_name: str) -> None:
    """Rename the host to `node_name` and reboot it; the connection drops."""
    require_computer_name(node_name, session.address)
    await session.run(powershell(rename_computer(node_name), display=f"rename to {node_name}"))
    session.discard()  # the reboot ends this connection: later sessions dial anew
    try:
        result = await session.run(powershell(restart_computer(), display="restart"), check=False)
    except HostUnreachable:
        return  # the host went down under us: the reboot is under way
    if result.exit_status not in (0, -1):
        raise RemoteCommandFailed(
            f"restart of {session.address} failed (exit {result.exit_status}): "
            f"{result.stderr.strip()[:300]}"
        )


async def _kubelet_installed(session: HostSession) -> bool:
    r = await session.run(query_service_command(KUBELET_SERVICE), check=False)
    return parse_service_state(KUBELET_SERVICE, r.exit_status, r.stdout, r.stderr) is not None


@activity.defn(name="wait_for_ssh")
@boundary
async def wait_for_ssh(inp: WaitForSshInput) -> HostFacts:
    """Wait until the host answers SSH with a supported build and the node's hostname."""
    supported = inp.supported_builds or settings().supported_builds
    loop = asyncio.get_running_loop()
    deadline = loop.time() + inp.timeout_s
    earlier = activity.info().heartbeat_details
    renamed = RENAMED in earlier
    restarted_at: float | None = None
    pinned_now = PINNED in earlier

    def beat(text: str) -> None:
        activity.heartbeat(*(m for m, on in ((RENAMED, renamed), (PINNED, pinned_now)) if on), text)

    delay = FIRST_RETRY_S
    attempt = 0
    while True:
        attempt += 1
        beat(f"connecting, attempt {attempt}")
        try:
            async with session_for(inp) as session:
                os_build = await read_os_build(session)
                if not is_supported(os_build, supported):
                    raise UnsupportedWindowsBuild(
                        f"host {inp.address} runs Windows build {os_build}; winfleet supports "
                        f"{', '.join(supported)}: use a supported Windows Server image"
                    )
                if session.pinned_now:
                    pinned_now = True
                    beat("host key pinned")
                name = await read_hostname(session)
                if name.lower() == inp.node_name.lower():
                    return HostFacts(
                        address=inp.address,
                        hostname=name,
                        os_build=os_build,
                        host_key_fingerprint=session.host_key_fingerprint,
                        renamed=renamed,
                        kubelet_installed=await _kubelet_installed(session),
                        pinned_now=pinned_now,
                    )
                if restarted_at is None or loop.time() - restarted_at > REBOOT_GRACE_S:
                    activity.logger.info(
                        "renaming host %s from %s to %s", inp.address, name, inp.node_name
                    )
                    await rename_and_restart(session, inp.node_name)
                    renamed, restarted_at, delay = True, loop.time(), FIRST_RETRY_S
                    beat("renamed, rebooting")
        except HostUnreachable as exc:
            if loop.time() >= deadline:
                raise HostUnreachable(
                    f"host {inp.address} did not accept SSH within {inp.timeout_s:.0f} s "
                    f"({attempt} attempts); check that the VM is running and port 22 is open. "
                    f"Last error: {exc.message}"
                ) from exc
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise HostUnreachable(
                f"host {inp.address} still reports a hostname other than {inp.node_name} after "
                f"{inp.timeout_s:.0f} s; check that Rename-Computer and the reboot succeeded"
            )
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_RETRY_S)
