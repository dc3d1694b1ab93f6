"""Fixtures for the CSR and Node activity tests: a fresh Kubernetes API twin per test.

`twin` starts `sim.k8s.server.KubeTwin` (which seeds winfleet's namespace) and points winfleet's
settings at the twin's (admin) kubeconfig; `admin`, `bootstrapper` and `as_node(name)` are the
identities tests act as.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from twin_callers import NAMESPACE, OPEN_CLIENTS, Caller

from activities import kube
from activities.config import Settings, use_settings
from sim.k8s.server import KubeTwin


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
