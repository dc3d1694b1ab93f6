"""Phases 6-8: hybrid-overlay, CNI and kube-proxy on a Windows node.

Called by the onboarding workflow after the node's CSRs are approved and the cluster's OVN master
has given the node its overlay subnet. Each activity is idempotent: it looks at the host (service
state, the definition winfleet last applied, HNS networks and endpoints, file hashes) and only
acts where the host differs from what it should be. Waits are bounded and heartbeat.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from temporalio import activity

from activities import polling
from activities.config import settings
from activities.errors import InvalidRequest, NodeNotReadyYet, boundary
from activities.kubelet import CNI_APPLIED_MARKER, same_hash
from activities.polling import heartbeating
from activities.ssh import HostSession, session_for
from activities.tracing import span
from activities.windows import hns, paths, powershell, services, wmcb
from activities.windows.cni import OVERLAY_NETWORK, cni_config

T = TypeVar("T")

DEFAULT_WAIT_SECONDS = 480.0  # the workflow passes its own budget (policies.NETWORK_BUDGET)


@dataclass(frozen=True)
class HybridOverlayInput:
    node_name: str
    address: str
    username: str
    private_key_secret: str
    timeout_s: float = DEFAULT_WAIT_SECONDS  # how long to wait for the HNS network


@dataclass(frozen=True)
class ConfigureCniInput:
    node_name: str
    address: str
    username: str
    private_key_secret: str
    node_subnet: str  # the node's `k8s.ovn.org/hybrid-overlay-node-subnet`
    service_cidr: str = ""  # empty: the worker's configured service network


@dataclass(frozen=True)
class KubeProxyInput:
    node_name: str
    address: str
    username: str
    private_key_secret: str
    node_subnet: str = ""  # empty: the overlay network's subnet as HNS reports it
    timeout_s: float = DEFAULT_WAIT_SECONDS  # how long to wait for kube-proxy to stay running


# --- phase 6 ------------------------------------------------------------------------------------
@activity.defn(name="start_hybrid_overlay")
@boundary
async def start_hybrid_overlay(inp: HybridOverlayInput) -> None:
    """Once kubelet has its client kubeconfig, ensure hybrid-overlay-node runs; wait for HNS."""
    spec = services.hybrid_overlay_service(inp.node_name)
    async with session_for(inp) as host:
        with span("wait for kubelet's kubeconfig", node=inp.node_name, phase="hybrid-overlay"):
            await wait_for(
                lambda: _exists(host, paths.KUBECONFIG),
                timeout_s=inp.timeout_s,
                what=f"kubelet's client kubeconfig on {inp.node_name} (are its CSRs approved?)",
            )
            # kubelet has its certificate: the ignition's bootstrap token is not needed any more
            if await host.remote_size(paths.IGNITION) is not None:
                remove = powershell.remove_item(paths.IGNITION)
                await host.run(powershell.powershell(remove, display="rm worker.ign"))
        await ensure_service(host, spec, inp.node_name)
        with span("wait for HNS network", node=inp.node_name, phase="hybrid-overlay"):
            await wait_for(
                lambda: overlay_network(host, inp.node_name),
                timeout_s=inp.timeout_s,
                what=(
                    f"HNS network {OVERLAY_NETWORK} on {inp.node_name}; check that the node has "
                    "the k8s.ovn.org/hybrid-overlay-node-subnet annotation (OVN hybrid overlay)"
                ),
            )


# --- phase 7 ------------------------------------------------------------------------------------
@activity.defn(name="configure_cni")
@boundary
async def configure_cni(inp: ConfigureCniInput) -> None:
    """Write cni.conf when it differs and run `wmcb configure-cni` unless already applied."""
    try:
        text = cni_config(inp.node_subnet, inp.service_cidr or settings().service_cidr)
    except ValueError as exc:
        raise InvalidRequest(f"cannot configure CNI on {inp.node_name}: {exc}") from exc
    data = text.encode()
    digest = hashlib.sha256(data).hexdigest()
    async with session_for(inp) as host:
        with span("ensure cni.conf", node=inp.node_name, phase="cni"):
            if not same_hash(await host.remote_sha256(paths.CNI_CONFIG), digest):
                mkdir = powershell.new_directory(paths.CNI_CONFIG_DIR)
                await host.run(powershell.powershell(mkdir, display="mkdir cni config"))
                await host.put_bytes(data, paths.CNI_CONFIG)
        applied = hashlib.sha256(digest.encode()).hexdigest()
        if same_hash(await host.remote_sha256(CNI_APPLIED_MARKER), applied):
            activity.logger.info("CNI already configured on %s", inp.node_name)
            return
        with span("wmcb configure-cni", node=inp.node_name, phase="cni"):
            await heartbeating(host.run(wmcb.configure_cni()))
            await host.put_bytes(digest.encode(), CNI_APPLIED_MARKER)
        activity.logger.info("CNI configured on %s", inp.node_name)


# --- phase 8 ------------------------------------------------------------------------------------
@activity.defn(name="start_kube_proxy")
@boundary
async def start_kube_proxy(inp: KubeProxyInput) -> str:
    """Ensure the VIP endpoint and the kube-proxy service; returns the source VIP."""
    async with session_for(inp) as host:
        network = await overlay_network(host, inp.node_name)
        if network is None:
            raise NodeNotReadyYet(
                f"HNS network {OVERLAY_NETWORK} missing on {inp.node_name}; "
                "hybrid-overlay must run first (a reboot also drops it)"
            )
        vip = await ensure_vip_endpoint(host, network, inp.node_name)
        subnet = inp.node_subnet or (network.subnets[0] if network.subnets else "")
        try:
            spec = services.kube_proxy_service(inp.node_name, subnet, vip)
        except ValueError as exc:
            raise InvalidRequest(f"cannot define kube-proxy on {inp.node_name}: {exc}") from exc
        await ensure_service(host, spec, inp.node_name)
        with span("wait for kube-proxy", node=inp.node_name, phase="kube-proxy"):
            await wait_for(
                lambda: _running(host, services.KUBE_PROXY_SERVICE, inp.node_name),
                timeout_s=inp.timeout_s,
                what=f"kube-proxy running on {inp.node_name}",
            )
        return vip


async def ensure_vip_endpoint(host: HostSession, network: hns.HnsNetwork, node: str) -> str:
    """The IP of `VIPEndpoint` on the overlay network, creating it (and dropping stale ones)."""
    endpoints = hns.parse_endpoints((await host.run(hns.list_endpoints_command())).stdout)
    named = [e for e in endpoints if e.name == hns.VIP_ENDPOINT]
    current = next((e for e in named if e.network_id == network.id), None)
    if current is not None:
        return current.ip_address
    with span("create VIP endpoint", node=node, phase="kube-proxy"):
        if named:  # left on a network that no longer exists (reboot, re-created overlay)
            await host.run(hns.remove_endpoint_command())
        created = hns.parse_endpoints(
            (await host.run(hns.create_endpoint_command(network.id))).stdout
        )
    if not created:
        raise NodeNotReadyYet(f"New-HnsEndpoint printed no endpoint on {node}")
    return created[0].ip_address


# --- shared helpers -----------------------------------------------------------------------------
async def ensure_service(host: HostSession, spec: services.ServiceSpec, node: str) -> None:
    """Bring one service to `spec` and start it: check, then act (see `ensure_service_commands`)."""
    with span(f"ensure service {spec.name}", node=node):
        observed = await service_state(host, spec.name)
        definition = spec.definition()
        marker = services.definition_marker(spec.name)
        current = same_hash(
            await host.remote_sha256(marker), hashlib.sha256(definition).hexdigest()
        )
        plan = services.ensure_service_commands(spec, observed, current)
        for cmd in plan.configure:
            await host.run(cmd)
        if plan.configure:
            await host.put_bytes(definition, marker)
        if plan.start is not None:
            await host.run(plan.start)


async def service_state(host: HostSession, name: str) -> services.ServiceState | None:
    r = await host.run(services.query_service_command(name), check=False)
    return services.parse_service_state(name, r.exit_status, r.stdout, r.stderr)


async def overlay_network(host: HostSession, node: str) -> hns.HnsNetwork | None:
    """The overlay HNS network, or None while hybrid-overlay has not created it."""
    stdout = (await host.run(hns.list_networks_command())).stdout
    return hns.find_network(hns.parse_networks(stdout), OVERLAY_NETWORK)


async def _exists(host: HostSession, path: paths.WindowsPath) -> bool | None:
    """True if `path` exists on the host, None (keep waiting) if not."""
    return True if await host.remote_size(path) is not None else None


async def _running(host: HostSession, name: str, node: str) -> bool | None:
    state = await service_state(host, name)
    return True if state is not None and state.running else None


async def wait_for(probe: Callable[[], Awaitable[T | None]], *, timeout_s: float, what: str) -> T:
    """Poll `probe` until it returns something, heartbeating; `NodeNotReadyYet` after timeout."""
    deadline = time.monotonic() + timeout_s
    for delay in polling.delays():
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            break
        activity.heartbeat(what)
        await asyncio.sleep(delay)
    raise NodeNotReadyYet(f"timed out after {timeout_s:.0f}s waiting for {what}")
