"""Fixtures for the Kubernetes API server twin tests (SIMULATED cluster).

The twin runs on its own event loop in a background thread, so tests can drive it with the
official, synchronous `kubernetes` client exactly as the product does.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config

from sim.k8s.server import KubeTwin

T = TypeVar("T")


class RunningTwin:
    """A KubeTwin served from a background thread's event loop."""

    def __init__(self, state_dir: Path, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.twin = KubeTwin(state_dir, **kwargs)

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> KubeTwin:
        self.thread.start()
        self.run(self.twin.start())
        return self.twin

    def stop(self) -> None:
        try:
            self.run(self.twin.stop(), timeout=30.0)
        except TimeoutError as exc:
            # Name what the twin's loop was still doing, so a hang can be found from the log.
            stuck = [
                f"{t.get_coro()!r} at {t.get_stack(limit=1)}"
                for t in asyncio.all_tasks(self.loop)
                if not t.done()
            ]
            raise AssertionError(
                f"the twin did not stop within 30 s; still running: {stuck}"
            ) from exc
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def wait_for(predicate: Callable[[], T | None], timeout: float = 5.0, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def start_twin(tmp_path: Path) -> Iterator[Callable[..., RunningTwin]]:
    """Start a twin with custom KubeTwin keyword arguments; stopped at teardown."""
    started: list[RunningTwin] = []

    def start(**kwargs: Any) -> RunningTwin:
        running = RunningTwin(tmp_path / f"twin{len(started)}", **kwargs)
        running.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def running(start_twin: Callable[..., RunningTwin]) -> RunningTwin:
    return start_twin(bookmark_interval=0.2)


@pytest.fixture
def twin(running: RunningTwin) -> KubeTwin:
    return running.twin


@pytest.fixture
def api_client(twin: KubeTwin) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(twin.kubeconfig_path))
    yield api
    api.close()


def client_for_cert(twin: KubeTwin, tmp_path: Path, cn: str, orgs: list[str]) -> client.ApiClient:
    """An ApiClient authenticating with a client certificate issued by the twin CA."""
    cert, key = twin.ca.issue_client_cert(cn, orgs)
    safe = cn.replace(":", "_")
    (tmp_path / f"{safe}.crt").write_bytes(cert)
    (tmp_path / f"{safe}.key").write_bytes(key)
    cfg = client.Configuration()
    cfg.host = twin.url
    cfg.ssl_ca_cert = str(twin.ca_path)
    cfg.cert_file = str(tmp_path / f"{safe}.crt")
    cfg.key_file = str(tmp_path / f"{safe}.key")
    return client.ApiClient(cfg)


def client_for_token(twin: KubeTwin, token: str | None) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = twin.url
    cfg.ssl_ca_cert = str(twin.ca_path)
    if token:
        cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def node_body(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": [{"key": "os", "value": "Windows", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "False", "reason": "Booting"}],
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.5"},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def run_kubectl(
    twin: KubeTwin, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl against the twin (admin kubeconfig, or `--token` when given)."""
    env = {**os.environ, "KUBECONFIG": str(twin.kubeconfig_path), "HOME": str(twin.state_dir)}
    extra = ["--token", token] if token else []
    return subprocess.run(
        ["/usr/bin/kubectl", *extra, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def kubectl_ok(twin: KubeTwin, *args: str, token: str | None = None) -> str:
    done = run_kubectl(twin, *args, token=token)
    assert done.returncode == 0, done.stderr
    return done.stdout
