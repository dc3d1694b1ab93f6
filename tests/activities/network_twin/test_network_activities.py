"""Phases 6-8 against the twins: hybrid-overlay, CNI and kube-proxy turn the node Ready."""

from __future__ import annotations

import ipaddress
import json

import pytest
from network_lab import Cluster, eventually, target
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.kubelet import ConfigureKubeletInput, configure_kubelet
from activities.network import (
    ConfigureCniInput,
    HybridOverlayInput,
    KubeProxyInput,
    configure_cni,
    start_hybrid_overlay,
    start_kube_proxy,
)
from sim.windows.host import SimulatedWindowsHost

OVERLAY = "OVNKubernetesHybridOverlayNetwork"
SUBNET_ANNOTATION = "k8s.ovn.org/hybrid-overlay-node-subnet"


async def joined_host(cluster: Cluster, hostname: str) -> tuple[SimulatedWindowsHost, str]:
    """A host whose kubelet is configured and whose Node has its CSRs and overlay subnet."""
    host = await cluster.add_host(hostname)
    node = hostname.lower()
    await ActivityEnvironment().run(
        configure_kubelet, ConfigureKubeletInput(**target(host, node), node_ip=host.address)
    )
    await cluster.join(node)
    return host, node


def node_subnet(cluster: Cluster, node: str) -> str:
    annotations = (cluster.node(node) or {}).get("metadata", {}).get("annotations", {})
    return str(annotations.get(SUBNET_ANNOTATION, ""))


async def test_hybrid_overlay_cni_and_kube_proxy_turn_the_node_ready(cluster: Cluster) -> None:
    host, node = await joined_host(cluster, "WIN-NET1")
    subnet = await eventually("the subnet annotation", lambda: node_subnet(cluster, node))
    env = ActivityEnvironment()

    await env.run(start_hybrid_overlay, HybridOverlayInput(**target(host, node), timeout_s=20))
    assert host.hns_networks[OVERLAY]["Subnets"][0]["AddressPrefix"] == subnet
    assert host.services["hybrid-overlay-node"] == "Running"

    await env.run(configure_cni, ConfigureCniInput(**target(host, node), node_subnet=subnet))
    conf = json.loads((host.root / "C" / "k" / "cni" / "config" / "cni.conf").read_text())
    assert conf["type"] == "win-overlay"
    assert conf["ipam"]["subnet"] == subnet
    assert "--network-plugin=cni" in host.scm.get("kubelet").bin_path

    vip = await env.run(
        start_kube_proxy, KubeProxyInput(**target(host, node), node_subnet=subnet, timeout_s=20)
    )
    assert ipaddress.ip_address(vip) in ipaddress.ip_network(subnet)
    kube_proxy = host.scm.get("kube-proxy")
    assert f"--source-vip={vip}" in kube_proxy.bin_path
    assert kube_proxy.description == "OpenShift managed kube-proxy"
    assert kube_proxy.depends_on == ["hybrid-overlay-node"]
    assert kube_proxy.failure_actions
    await eventually("the Node Ready", lambda: cluster.node_ready(node))


async def test_running_the_network_phases_again_changes_nothing(cluster: Cluster) -> None:
    host, node = await joined_host(cluster, "WIN-NET2")
    subnet = await eventually("the subnet annotation", lambda: node_subnet(cluster, node))
    env = ActivityEnvironment()
    hybrid = HybridOverlayInput(**target(host, node), timeout_s=20)
    cni = ConfigureCniInput(**target(host, node), node_subnet=subnet)
    proxy = KubeProxyInput(**target(host, node), node_subnet=subnet, timeout_s=20)
    await env.run(start_hybrid_overlay, hybrid)
    await env.run(configure_cni, cni)
    vip = await env.run(start_kube_proxy, proxy)
    for changing in ("New-Service", "sc.exe config", "configure-cni", "New-HnsEndpoint"):
        host.faults.fail_command(changing, times=5, stderr=f"{changing} must not run again")

    await env.run(start_hybrid_overlay, hybrid)
    await env.run(configure_cni, cni)
    assert await env.run(start_kube_proxy, proxy) == vip

    assert host.services["kube-proxy"] == "Running"


async def test_kube_proxy_gets_a_new_vip_when_a_reboot_dropped_the_overlay(
    cluster: Cluster,
) -> None:
    host, node = await joined_host(cluster, "WIN-NET3")
    subnet = await eventually("the subnet annotation", lambda: node_subnet(cluster, node))
    env = ActivityEnvironment()
    hybrid = HybridOverlayInput(**target(host, node), timeout_s=20)
    proxy = KubeProxyInput(**target(host, node), node_subnet=subnet, timeout_s=20)
    await env.run(start_hybrid_overlay, hybrid)
    await env.run(configure_cni, ConfigureCniInput(**target(host, node), node_subnet=subnet))
    first = await env.run(start_kube_proxy, proxy)
    old_network = host.hns_networks[OVERLAY]["Id"]

    await host.reboot()
    await host.wait_up()  # the activity is not retried here, as Temporal would while it boots
    await env.run(start_hybrid_overlay, hybrid)
    assert host.hns_networks[OVERLAY]["Id"] != old_network
    vip = await env.run(start_kube_proxy, proxy)

    assert f"--source-vip={vip}" in host.scm.get("kube-proxy").bin_path
    assert host.services["kube-proxy"] == "Running"
    assert ipaddress.ip_address(first) in ipaddress.ip_network(subnet)


async def test_hybrid_overlay_waits_for_kubelet_credentials_and_gives_up_in_time(
    cluster: Cluster,
) -> None:
    host = await cluster.add_host("WIN-NET4")
    node = "win-net4"
    await ActivityEnvironment().run(
        configure_kubelet, ConfigureKubeletInput(**target(host, node), node_ip=host.address)
    )
    # No CSR approved: kubelet has no client kubeconfig for hybrid-overlay to use.

    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(
            start_hybrid_overlay, HybridOverlayInput(**target(host, node), timeout_s=1)
        )

    assert failure.value.type == "NodeNotReadyYet"
    assert not failure.value.non_retryable
    assert "are its CSRs approved?" in failure.value.message
    assert "hybrid-overlay-node" not in host.services


async def test_kube_proxy_waits_for_hybrid_overlay_first(cluster: Cluster) -> None:
    host = await cluster.add_host("WIN-NET5")

    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(
            start_kube_proxy, KubeProxyInput(**target(host, "win-net5"), timeout_s=2)
        )

    assert failure.value.type == "NodeNotReadyYet"
    assert "kube-proxy" not in host.services


async def test_a_node_subnet_that_is_not_a_network_is_refused_before_touching_the_host(
    cluster: Cluster,
) -> None:
    host = await cluster.add_host("WIN-NET6")

    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(
            configure_cni, ConfigureCniInput(**target(host, "win-net6"), node_subnet="10.1.2.3")
        )

    assert failure.value.type == "InvalidRequest"
    assert failure.value.non_retryable
    assert not (host.root / "C" / "k" / "cni" / "config").exists()
