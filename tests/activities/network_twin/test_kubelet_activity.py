"""configure_kubelet against the twins: MCS over HTTPS, the host over SSH."""

from __future__ import annotations

import logging
from dataclasses import replace

import aiohttp
import pytest
from network_lab import CLIENT_SIGNER, KEY_SECRET, Cluster, eventually
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.config import settings, use_settings
from activities.kubelet import ConfigureKubeletInput, configure_kubelet
from sim.pki import CertificateAuthority


def kubelet_input(host_address: str, node: str) -> ConfigureKubeletInput:
    return ConfigureKubeletInput(
        node_name=node,
        address=host_address,
        username="Administrator",
        private_key_secret=KEY_SECRET,
        node_ip=host_address,
    )


async def served_ignition(cluster: Cluster) -> bytes:
    headers = {"Accept": "application/vnd.coreos.ignition+json;version=3.2.0"}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as s,
        s.get(cluster.twin.mcs_url, headers=headers) as r,
    ):
        return await r.read()


async def test_kubelet_runs_from_the_cluster_ignition_and_asks_for_its_client_certificate(
    cluster: Cluster,
) -> None:
    host = await cluster.add_host("WIN-KUBELET1")
    await ActivityEnvironment().run(configure_kubelet, kubelet_input(host.address, "win-kubelet1"))

    assert host.services["kubelet"] == "Running"
    assert (host.root / "C" / "k" / "worker.ign").read_bytes() == await served_ignition(cluster)
    csr = await eventually("the client CSR", lambda: cluster.csrs(CLIENT_SIGNER))
    assert csr[0]["spec"]["username"].endswith(":node-bootstrapper")


async def test_a_second_run_leaves_a_configured_kubelet_alone(cluster: Cluster) -> None:
    host = await cluster.add_host("WIN-KUBELET2")
    inp = kubelet_input(host.address, "win-kubelet2")
    await ActivityEnvironment().run(configure_kubelet, inp)
    host.faults.fail_command("initialize-kubelet", times=5, stderr="WMCB must not run again")

    await ActivityEnvironment().run(configure_kubelet, inp)

    assert host.services["kubelet"] == "Running"


async def test_a_stopped_kubelet_is_configured_again(cluster: Cluster) -> None:
    host = await cluster.add_host("WIN-KUBELET3")
    inp = kubelet_input(host.address, "win-kubelet3")
    await ActivityEnvironment().run(configure_kubelet, inp)
    host.scm.stop("kubelet", force=True)

    await ActivityEnvironment().run(configure_kubelet, inp)

    assert host.services["kubelet"] == "Running"


async def test_a_failing_wmcb_is_a_retryable_failure_naming_the_step(cluster: Cluster) -> None:
    host = await cluster.add_host("WIN-KUBELET4")
    host.faults.fail_command("initialize-kubelet", stderr="Error: kubelet.exe is locked")

    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(
            configure_kubelet, kubelet_input(host.address, "win-kubelet4")
        )

    assert failure.value.type == "RemoteCommandFailed"
    assert not failure.value.non_retryable
    assert "wmcb initialize-kubelet" in failure.value.message
    assert "kubelet.exe is locked" in failure.value.message


async def test_the_bootstrap_token_never_reaches_logs_or_heartbeats(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    host = await cluster.add_host("WIN-KUBELET5")
    env = ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.extend(details)
    caplog.set_level(logging.DEBUG)

    await env.run(configure_kubelet, kubelet_input(host.address, "win-kubelet5"))

    token = cluster.twin.bootstrap_token
    assert token not in caplog.text
    assert all(token not in str(b) for b in beats)


@pytest.mark.parametrize(
    ("url_suffix", "error_type", "permanent"),
    [
        ("/config/master-typo", "InvalidRequest", True),  # 404: misconfigured URL
        ("", "KubernetesUnavailable", False),  # nothing listens: retry
    ],
)
async def test_machine_config_server_failures_say_whether_to_retry(
    cluster: Cluster, url_suffix: str, error_type: str, permanent: bool
) -> None:
    host = await cluster.add_host("WIN-KUBELET6", payload=False)
    base = cluster.twin.mcs_url.rsplit("/config/", 1)[0]
    url = base + url_suffix if url_suffix else "https://127.0.0.1:9/config/worker"
    use_settings(replace(settings(), mcs_url=url))

    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(
            configure_kubelet, kubelet_input(host.address, "win-kubelet6")
        )

    assert failure.value.type == error_type
    assert failure.value.non_retryable is permanent
    assert not (host.root / "C" / "k" / "worker.ign").exists()


async def test_a_machine_config_server_with_an_untrusted_certificate_is_refused(
    cluster: Cluster,
) -> None:
    host = await cluster.add_host("WIN-KUBELET7", payload=False)
    other_ca = CertificateAuthority("someone else")
    bundle = cluster.payload_dir.parent / "other-ca.pem"
    bundle.write_bytes(other_ca.ca_pem)
    use_settings(replace(settings(), mcs_ca_bundle=str(bundle)))

    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(
            configure_kubelet, kubelet_input(host.address, "win-kubelet7")
        )

    assert failure.value.type == "InvalidRequest"
    assert "not trusted" in failure.value.message
