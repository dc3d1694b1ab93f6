"""Fixtures for the SSH, payload and host activity tests: real SSH against simulated hosts.

`lab` starts a Kubernetes API twin (Secrets, the host-key ConfigMap, Nodes) and a fleet of
simulated Windows hosts on 127.4.0.0/16 port 22, stores a fresh operator key in Secret
`cloud-private-key` and points winfleet's settings at both. `lab.add_host(...)` powers on a
host that trusts that key.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from host_lab import KEY_SECRET, NAMESPACE, Lab
from kubernetes import client

from activities import kube
from activities.config import Settings, use_settings
from sim.k8s.server import KubeTwin
from sim.windows.fleet import HostFleet


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    twin = KubeTwin(tmp_path / "kube")
    await twin.start()
    payload_dir = tmp_path / "payload"
    payload_dir.mkdir()
    use_settings(
        Settings.from_env(
            {
                "KUBECONFIG": str(twin.kubeconfig_path),
                "WINFLEET_NAMESPACE": NAMESPACE,
                "WINFLEET_PAYLOAD_DIR": str(payload_dir),
                "WINFLEET_SSH_PORT": "22",
                "WINFLEET_SSH_CONNECT_TIMEOUT": "5",
            }
        )
    )
    fleet = HostFleet(tmp_path / "fleet", ssh_port=22)
    await fleet.start()
    key = asyncssh.generate_private_key("ssh-ed25519")
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name=KEY_SECRET, namespace=NAMESPACE),
        data={"private-key.pem": base64.b64encode(key.export_private_key()).decode()},
    )
    await kube.call("create secret", kube.core().create_namespaced_secret, NAMESPACE, secret)
    try:
        yield Lab(twin=twin, fleet=fleet, key=key, payload_dir=payload_dir)
    finally:
        await fleet.stop()
        kube.api_client().close()
        use_settings(Settings.from_env({}))
        await twin.stop()
