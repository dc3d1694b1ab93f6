"""Take winfleet's configuration off a Windows host: services, HNS state, `C:\\k`.

Called by the onboarding workflow's compensation (a node that failed half-way stays NotReady
rather than half-configured) and before a BYOH host is configured again in place. Steps run in
reverse dependency order; each one first looks whether there is anything to undo, so running the
activity again is harmless. Every step is tried even when an earlier one failed; the activity
then fails with a summary so a retry can finish the job. kubelet's state (`C:\\var\\lib\\kubelet`,
its certificates) and `C:\\k` (which holds `hns.psm1` and `wmcb.exe`) are removed last, and only
when everything before them succeeded; logs under `C:\\var\\log` stay for the post-mortem.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio import activity

from activities.errors import RemoteCommandFailed, WinfleetError, boundary
from activities.network import service_state
from activities.polling import heartbeating
from activities.ssh import HostSession, session_for
from activities.tracing import span
from activities.windows import hns, paths, powershell, sc, services, wmcb
from activities.windows.cni import BASE_OVERLAY_NETWORK, OVERLAY_NETWORK


@dataclass(frozen=True)
class DeconfigureInput:
    node_name: str
    address: str
    username: str
    private_key_secret: str


@activity.defn(name="deconfigure_host")
@boundary
async def deconfigure_host(inp: DeconfigureInput) -> None:
    """Remove kube-proxy, hybrid-overlay-node, kubelet, the HNS state, kubelet certs and `C:\\k`."""
    node = inp.node_name
    async with session_for(inp) as host:
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (
                "remove kube-proxy",
                lambda: _remove_service(host, services.KUBE_PROXY_SERVICE, node),
            ),
            (
                "remove hybrid-overlay-node",
                lambda: _remove_service(host, services.HYBRID_OVERLAY_SERVICE, node),
            ),
            ("uninstall kubelet", lambda: _uninstall_kubelet(host, node)),
            ("remove HNS endpoint and networks", lambda: _remove_hns(host, node)),
        ]
        failed: list[str] = []
        for name, step in steps:
            activity.heartbeat(name)
            with span(name, node=node, phase="deconfigure"):
                try:
                    await heartbeating(step())
                except WinfleetError as exc:
                    activity.logger.warning("deconfigure %s: %s failed: %s", node, name, exc)
                    failed.append(f"{name}: {exc.message}")
        if failed:
            raise RemoteCommandFailed(
                f"deconfiguring {node} left work undone (C:\\k kept for the retry): "
                + "; ".join(failed)
            )
        for directory in (services.KUBELET_STATE_DIR, paths.K_DIR):
            with span(f"remove {directory}", node=node, phase="deconfigure"):
                if await _exists(host, directory, node):
                    remove = powershell.remove_item(directory, recurse=True)
                    await host.run(powershell.powershell(remove, display=f"rm {directory}"))
    activity.logger.info("deconfigured %s", node)


async def _exists(host: HostSession, path: paths.WindowsPath, node: str) -> bool:
    cmd = powershell.powershell(powershell.test_path(path), display=f"test {path}")
    return (await host.run(cmd)).stdout.strip() == "True"


async def _remove_service(host: HostSession, name: str, node: str) -> None:
    """Stop (with its dependents) and delete a service; nothing to do if it is not installed."""
    state = await service_state(host, name)
    if state is None:
        return
    if state.running:
        stop = powershell.powershell(powershell.stop_service(name), display=f"stop {name}")
        await host.run(stop)
    await host.run(sc.sc_delete(name))


async def _uninstall_kubelet(host: HostSession, node: str) -> None:
    """WMCB uninstall-kubelet; without wmcb.exe, stop and delete the service directly."""
    if await service_state(host, services.KUBELET_SERVICE) is None:
        return
    if await _exists(host, paths.WMCB, node):
        await host.run(wmcb.uninstall_kubelet())
    else:
        await _remove_service(host, services.KUBELET_SERVICE, node)


async def _remove_hns(host: HostSession, node: str) -> None:
    """Remove VIPEndpoint and both overlay networks, whichever of them exist."""
    if not await _exists(host, paths.HNS_MODULE, node):
        activity.logger.warning("%s has no hns.psm1; HNS networks not checked", node)
        return
    endpoints = hns.parse_endpoints((await host.run(hns.list_endpoints_command())).stdout)
    if any(e.name == hns.VIP_ENDPOINT for e in endpoints):
        await host.run(hns.remove_endpoint_command())
    networks = hns.parse_networks((await host.run(hns.list_networks_command())).stdout)
    for name in (OVERLAY_NETWORK, BASE_OVERLAY_NETWORK):
        if hns.find_network(networks, name) is not None:
            await host.run(hns.remove_network_command(name))
