"""SIMULATED hybrid-overlay-node and kube-proxy of a Windows host.

hybrid-overlay-node (`--node <name> --k8s-kubeconfig <file>`): polls its Node (~1 s) until the
cluster's OVN master has set `k8s.ovn.org/hybrid-overlay-node-subnet`, then creates the HNS
networks `BaseOVNKubernetesHybridOverlayNetwork` (persistent) and
`OVNKubernetesHybridOverlayNetwork` (Overlay, the node subnet, gateway .1) and annotates the Node
with `k8s.ovn.org/hybrid-overlay-distributed-router-gateway-mac`; re-creates the overlay network
if it disappears or the subnet changes.
kube-proxy (`--network-name N --source-vip IP --kubeconfig F ...`): stays running only while
network N exists and IP is an HNS endpoint on it; otherwise it exits, i.e. the service crashes.
Spawned by `components.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
from typing import Any

from sim.windows import paths
from sim.windows.kubeapi import KubeClient, KubeConfigError, KubeUnreachable, read_kubeconfig

log = logging.getLogger(__name__)
SUBNET_ANNOTATION = "k8s.ovn.org/hybrid-overlay-node-subnet"
MAC_ANNOTATION = "k8s.ovn.org/hybrid-overlay-distributed-router-gateway-mac"
BASE_NETWORK = "BaseOVNKubernetesHybridOverlayNetwork"
OVERLAY_NETWORK = "OVNKubernetesHybridOverlayNetwork"
BASE_PREFIX, BASE_GATEWAY = "100.64.0.0/16", "100.64.0.1"
KUBE_PROXY_STARTUP_SECONDS = 3.0


def gateway_mac(host: Any) -> str:
    digest = hashlib.sha256(host.address.encode()).digest()
    return "00-15-5D-" + "-".join(f"{b:02X}" for b in digest[:3])


def _ensure_networks(host: Any, subnet: str) -> None:
    host.hns.create_network(BASE_NETWORK, "Overlay", BASE_PREFIX, BASE_GATEWAY, persistent=True)
    current = host.hns.network_named(OVERLAY_NETWORK)
    if current is not None and current.address_prefix != subnet:
        host.hns.remove_network(current.id)
        current = None
    if current is None:
        net = ipaddress.ip_network(subnet, strict=False)
        host.hns.create_network(OVERLAY_NETWORK, "Overlay", str(net), str(net.network_address + 1))


async def run_hybrid_overlay(host: Any, flags: dict[str, str]) -> None:
    node = flags.get("node")
    kubeconfig = flags.get("k8s-kubeconfig") or flags.get("kubeconfig")
    if not node or not kubeconfig:
        log.warning(
            "hybrid-overlay-node on %s: --node and --k8s-kubeconfig are required", host.address
        )
        return
    try:
        config = read_kubeconfig(paths.to_local(host.root, kubeconfig), host.kube_ca_pem)
    except (KubeConfigError, paths.PathError) as exc:
        log.warning("hybrid-overlay-node on %s: %s", host.address, exc)
        return
    cert_file = None
    if config["cert_pem"]:
        cert_file = host.dir / "hybrid-overlay-client.pem"
        cert_file.write_bytes(config["cert_pem"] + config["key_pem"])
    client = KubeClient(config, cert_file=cert_file)
    annotated = False
    try:
        while True:
            try:
                status, obj = await client.get(f"/api/v1/nodes/{node}")
                annotations = (
                    (obj.get("metadata") or {}).get("annotations") or {} if status == 200 else {}
                )
                subnet = annotations.get(SUBNET_ANNOTATION)
                if subnet:
                    _ensure_networks(host, subnet)
                    if annotations.get(MAC_ANNOTATION) != gateway_mac(host) or not annotated:
                        patch = {"metadata": {"annotations": {MAC_ANNOTATION: gateway_mac(host)}}}
                        code, _ = await client.patch(
                            f"/api/v1/nodes/{node}", patch, strategic=False
                        )
                        annotated = code == 200
            except KubeUnreachable:
                pass
            await asyncio.sleep(host.tick_seconds)
    finally:
        await client.close()


def _proxy_ok(host: Any, network_name: str, vip: str) -> bool:
    net = host.hns.network_named(network_name)
    return net is not None and vip in host.hns.endpoint_ips(net.id)


async def run_kube_proxy(host: Any, flags: dict[str, str]) -> None:
    network_name = flags.get("network-name", "")
    vip = flags.get("source-vip", "")
    kubeconfig = flags.get("kubeconfig", "")
    try:
        has_config = bool(kubeconfig) and paths.to_local(host.root, kubeconfig).is_file()
    except paths.PathError:
        has_config = False
    if not has_config or not network_name or not vip:
        log.warning(
            "kube-proxy on %s: needs --kubeconfig (existing), --network-name and --source-vip",
            host.address,
        )
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KUBE_PROXY_STARTUP_SECONDS
    while not _proxy_ok(host, network_name, vip):
        if loop.time() >= deadline:
            log.warning(
                "kube-proxy on %s: network %s with endpoint %s not found",
                host.address,
                network_name,
                vip,
            )
            return
        await asyncio.sleep(min(0.25, host.tick_seconds))
    # polls HNS state like a proxier sync loop would
    while _proxy_ok(host, network_name, vip):  # noqa: ASYNC110
        await asyncio.sleep(host.tick_seconds)
    log.warning("kube-proxy on %s: network %s went away", host.address, network_name)
