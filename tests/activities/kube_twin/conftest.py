"""Fixtures for the CSR and Node activity tests: a fresh Kubernetes API twin per test.

`twin` starts `sim.k8s.server.KubeTwin` (which seeds winfleet's namespace) and points winfleet's
settings at the twin's (admin) kubeconfig; `admin`, `bootstrapper` and `as_node(name)` are the
identities tests act as. `kubelet_host` is the simulated Windows host the node runs on (SSH on
KUBELET_IP:22, trusting the key in Secret `cloud-private-key`): the CSR activity reads the
kubelet's bootstrap key from its disk.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncssh
import pytest
from kubernetes import client
from twin_callers import (
    KUBELET_HOSTNAME,
    KUBELET_IP,
    NAMESPACE,
    OPEN_CLIENTS,
    Caller,
    KubeletHost,
)

from activities import kube
from activities.config import Settings, use_settings
from activities.keys import PRIVATE_KEY_FIELD, public_key_openssh
from sim.k8s.server import KubeTwin
from sim.windows.fleet import HostFleet, HostSpec


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[KubeTwin]:
    t = KubeTwin(tmp_path / "kube")
    await t.start()
    use_settings(
        Settings.from_env(
            {
                "KUBECONFIG": str(t.kubeconfig_path),
                "WINFLEET_NAMESPACE": NAMESPACE,
                "WINFLEET_VERSION": "9.9.9-test",
            }
        )
    )
    try:
        yield t
    finally:
        kube.api_client().close()
        while OPEN_CLIENTS:
            OPEN_CLIENTS.pop().close()
        use_settings(Settings.from_env({}))
        await t.stop()


@pytest.fixture
async def kubelet_host(twin: KubeTwin, tmp_path: Path) -> AsyncIterator[KubeletHost]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="cloud-private-key", namespace=NAMESPACE),
        data={PRIVATE_KEY_FIELD: base64.b64encode(key.export_private_key()).decode()},
    )
    await kube.call("create secret", kube.core().create_namespaced_secret, NAMESPACE, secret)
    fleet = HostFleet(tmp_path / "fleet", ssh_port=22)
    await fleet.start()
    try:
        host = await fleet.add_host(
            HostSpec(KUBELET_IP, KUBELET_HOSTNAME, authorized_keys=(public_key_openssh(key),))
        )
        yield KubeletHost(host)
    finally:
        await fleet.stop()


@pytest.fixture
def admin(twin: KubeTwin, tmp_path: Path) -> Caller:
    return Caller(twin, tmp_path, token=twin.admin_token)


@pytest.fixture
def bootstrapper(twin: KubeTwin, tmp_path: Path) -> Caller:
    return Caller(twin, tmp_path, token=twin.bootstrap_token)


@pytest.fixture
def as_node(twin: KubeTwin, tmp_path: Path) -> Callable[[str], Caller]:
    """A caller authenticated by a twin-CA client certificate for `system:node:<name>`."""

    def make(name: str) -> Caller:
        cert = twin.ca.issue_client_cert(f"system:node:{name}", ("system:nodes",))
        return Caller(twin, tmp_path, cert=cert)

    return make
