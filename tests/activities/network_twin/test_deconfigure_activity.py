"""deconfigure_host against a fully configured simulated host, and against an empty one."""

from __future__ import annotations

import pytest
from network_lab import CLIENT_SIGNER, SERVING_SIGNER, Cluster, eventually, target
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deconfigure import DeconfigureInput, deconfigure_host
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

SUBNET_ANNOTATION = "k8s.ovn.org/hybrid-overlay-node-subnet"
IMAGE_SERVICES = {"sshd", "ssh-agent"}  # the host's own OpenSSH services: never deconfigured


def node_services(host: SimulatedWindowsHost) -> dict[str, str]:
    """The services onboarding installed (the host's name -> state minus its own)."""
    return {name: state for name, state in host.services.items() if name not in IMAGE_SERVICES}


async def configured_host(
    cluster: Cluster, hostname: str = "", host: SimulatedWindowsHost | None = None
) -> tuple[SimulatedWindowsHost, str]:
    """A host taken through phases 4-8 (a new one, or `host` again)."""
    host = host or await cluster.add_host(hostname)
    node = host.hostname.lower()
    env = ActivityEnvironment()
    await env.run(
        configure_kubelet, ConfigureKubeletInput(**target(host, node), node_ip=host.address)
    )
    await cluster.join(node)
    subnet: str = await eventually(
        "the subnet annotation",
        lambda: (
            (cluster.node(node) or {})
            .get("metadata", {})
            .get("annotations", {})
            .get(SUBNET_ANNOTATION)
        ),
    )
    await env.run(start_hybrid_overlay, HybridOverlayInput(**target(host, node), timeout_s=20))
    await env.run(configure_cni, ConfigureCniInput(**target(host, node), node_subnet=subnet))
    await env.run(
        start_kube_proxy, KubeProxyInput(**target(host, node), node_subnet=subnet, timeout_s=20)
    )
    return host, node


async def test_deconfiguring_removes_services_hns_state_and_the_payload_directory(
    cluster: Cluster,
) -> None:
    host, node = await configured_host(cluster, "WIN-DECONF1")
    await eventually("the Node Ready", lambda: cluster.node_ready(node))

    await ActivityEnvironment().run(deconfigure_host, DeconfigureInput(**target(host, node)))

    assert node_services(host) == {}
    assert host.hns_networks == {}
    assert host.hns.endpoints == {}
    assert not (host.root / "C" / "k").exists()
    assert not (host.root / "C" / "var" / "lib" / "kubelet").exists()
    await eventually("the Node NotReady", lambda: not cluster.node_ready(node))


async def test_a_deconfigured_host_can_be_configured_again_and_asks_for_new_certificates(
    cluster: Cluster,
) -> None:
    host, node = await configured_host(cluster, "WIN-DECONF5")
    await ActivityEnvironment().run(deconfigure_host, DeconfigureInput(**target(host, node)))
    csrs_before = {c["metadata"]["name"] for c in cluster.csrs(CLIENT_SIGNER)} | {
        c["metadata"]["name"] for c in cluster.csrs(SERVING_SIGNER)
    }
    cluster.install_payload(host)

    await configured_host(cluster, host=host)

    def new(signer: str) -> list[str]:
        names = [c["metadata"]["name"] for c in cluster.csrs(signer)]
        return [n for n in names if n not in csrs_before]

    assert new(CLIENT_SIGNER) and new(SERVING_SIGNER)
    await eventually("the Node Ready again", lambda: cluster.node_ready(node))


async def test_deconfiguring_twice_or_a_host_never_configured_is_harmless(
    cluster: Cluster,
) -> None:
    host, node = await configured_host(cluster, "WIN-DECONF2")
    bare = await cluster.add_host("WIN-DECONF3", payload=False)

    await ActivityEnvironment().run(deconfigure_host, DeconfigureInput(**target(host, node)))
    await ActivityEnvironment().run(deconfigure_host, DeconfigureInput(**target(host, node)))
    await ActivityEnvironment().run(
        deconfigure_host, DeconfigureInput(**target(bare, "win-deconf3"))
    )

    assert node_services(host) == {}
    assert not (host.root / "C" / "k").exists()


async def test_a_failed_step_is_reported_and_the_rest_still_done_then_a_retry_finishes(
    cluster: Cluster,
) -> None:
    host, node = await configured_host(cluster, "WIN-DECONF4")
    host.faults.fail_command("uninstall-kubelet", stderr="Error: access denied")
    inp = DeconfigureInput(**target(host, node))

    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(deconfigure_host, inp)

    assert failure.value.type == "RemoteCommandFailed"
    assert "uninstall kubelet" in failure.value.message
    assert "access denied" in failure.value.message
    assert set(node_services(host)) == {"kubelet"}  # kube-proxy, hybrid-overlay gone all the same
    assert host.hns_networks == {}
    assert (host.root / "C" / "k" / "wmcb.exe").exists()  # kept so the retry can use it

    await ActivityEnvironment().run(deconfigure_host, inp)

    assert node_services(host) == {}
    assert not (host.root / "C" / "k").exists()
