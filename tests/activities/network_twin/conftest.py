"""Fixtures for the kubelet, network and deconfigure activity tests: real SSH and HTTPS.

`cluster` starts the Kubernetes API twin (with its Machine Config Server) and a fleet of
simulated Windows hosts on 127.6.0.0/16 (see network_lab.py) and points winfleet's settings at
both; it stops them afterwards.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from kubernetes import client
from network_lab import KEY_SECRET, NAMESPACE, Cluster

from activities import kube
from activities.config import Settings, use_settings
from sim.k8s.server import KubeTwin
from sim.payload import build_sample_payload
from sim.windows.fleet import HostFleet


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    # a short node-monitor grace period: a Node whose kubelet was stopped (deconfigure) turns
    # Unknown after 4 s instead of 40 s
    twin = KubeTwin(tmp_path / "kube", node_monitor_grace_seconds=4.0)
    await twin.start()
    payload_dir = tmp_path / "payload"
    build_sample_payload(payload_dir)
    use_settings(
        Settings.from_env(
            {
                "KUBECONFIG": str(twin.kubeconfig_path),
                "WINFLEET_NAMESPACE": NAMESPACE,
                "WINFLEET_PAYLOAD_DIR": str(payload_dir),
                "WINFLEET_MCS_URL": twin.mcs_url,
                "WINFLEET_SSH_PORT": "22",
                "WINFLEET_SSH_CONNECT_TIMEOUT": "5",
            }
        )
    )
    fleet = HostFleet(tmp_path / "fleet", kube_ca_pem=twin.ca.ca_pem, ssh_port=22)
    await fleet.start()
    key = asyncssh.generate_private_key("ssh-ed25519")
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name=KEY_SECRET, namespace=NAMESPACE),
        data={"private-key.pem": base64.b64encode(key.export_private_key()).decode()},
    )
    await kube.call("create secret", kube.core().create_namespaced_secret, NAMESPACE, secret)
    try:
        yield Cluster(twin=twin, fleet=fleet, key=key, payload_dir=payload_dir)
    finally:
        await fleet.stop()
        kube.api_client().close()
        use_settings(Settings.from_env({}))
        await twin.stop()
