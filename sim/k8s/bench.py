"""Benchmarks for the SIMULATED Kubernetes API server.

`bench_list_nodes(n)` starts a twin, stores `n` realistic Windows Nodes, then times
`GET /api/v1/nodes` (full round trip, JSON parsed) from a client in another thread, returning the
median in milliseconds. `bench_run_pods(nodes, pods)` stores `nodes` Ready Windows Nodes, POSTs
a Deployment of `pods` Windows replicas over HTTPS and times until its status shows them all
available: ReplicaSet, scheduler and the pods' kubelets (1 s simulated start) together.
Called by `make bench-sim`; `python -m sim.k8s.bench` prints the figures.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import statistics
import tempfile
import time
from typing import Any

from sim.k8s.auth import INTERNAL
from sim.k8s.server import KubeTwin


def windows_node(i: int) -> dict[str, Any]:
    name = f"winworker-{i:05d}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/os": "windows",
                "node.openshift.io/os_id": "Windows",
                "kubernetes.io/hostname": name,
                "node-role.kubernetes.io/worker": "",
            },
            "annotations": {
                "windowsmachineconfig.openshift.io/version": "1.0.0",
                "k8s.ovn.org/hybrid-overlay-node-subnet": f"10.132.{i % 256}.0/24",
            },
        },
        "spec": {"taints": [{"key": "os", "value": "Windows", "effect": "NoSchedule"}]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.{i // 256}.{i % 256}"},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                }
                for t, s in (
                    ("Ready", "True"),
                    ("MemoryPressure", "False"),
                    ("DiskPressure", "False"),
                    ("PIDPressure", "False"),
                )
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.29.0",
                "osImage": "Windows Server 2019 Datacenter",
                "kernelVersion": "10.0.17763.1457",
                "operatingSystem": "windows",
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://1.7",
                "bootID": f"boot-{i}",
                "machineID": f"machine-{i}",
                "systemUUID": f"uuid-{i}",
                "kubeProxyVersion": "v1.29.0",
            },
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "250"},
        },
    }


async def seed_nodes(twin: KubeTwin, n: int) -> None:
    rt = twin.registry.get("", "v1", "nodes")
    assert rt is not None
    for i in range(n):
        twin.api.create(rt, "", windows_node(i), INTERNAL)


async def _settled(twin: KubeTwin, limit: float = 30.0) -> None:
    """Wait until the node lifecycle controller has taken the admission's not-ready taint off
    every Ready Node, so the timing sees the steady state, not 1,000 updates in flight."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not any(
            t.get("key") == "node.kubernetes.io/not-ready"
            for e in twin.store.entries(("", "nodes"))
            for t in (e.obj.get("spec") or {}).get("taints") or []
        ):
            return
        await asyncio.sleep(0.05)


def _time_lists(url: str, token: str, ca_pem: bytes, runs: int) -> list[float]:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    import http.client

    host, port = url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    out = []
    try:
        for i in range(runs + 1):
            started = time.perf_counter()
            conn.request("GET", "/api/v1/nodes", headers=headers)
            body = json.loads(conn.getresponse().read())
            elapsed = (time.perf_counter() - started) * 1000
            assert body["kind"] == "NodeList"
            if i:  # the first run pays for the TLS handshake
                out.append(elapsed)
    finally:
        conn.close()
    return out


async def bench_list_nodes(n: int = 1000, runs: int = 9) -> float:
    """Median milliseconds to list `n` Nodes over loopback TLS, JSON parsed."""
    with tempfile.TemporaryDirectory() as state:
        twin = KubeTwin(state)
        await twin.start()
        try:
            await seed_nodes(twin, n)
            await _settled(twin)
            timings = await asyncio.to_thread(
                _time_lists, twin.url, twin.admin_token, twin.ca.ca_pem, runs
            )
        finally:
            await twin.stop()
    return statistics.median(timings)


def _windows_deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench-web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench-web"}},
            "template": {
                "metadata": {"labels": {"app": "bench-web"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "windows"},
                    "tolerations": [{"key": "os", "value": "Windows", "effect": "NoSchedule"}],
                    "containers": [{"name": "web", "image": "servercore:ltsc2019"}],
                },
            },
        },
    }


def _time_rollout(url: str, token: str, ca_pem: bytes, replicas: int, limit: float) -> float:
    """Seconds from POSTing the Deployment until all its replicas are available."""
    import http.client

    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    host, port = url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    path = "/apis/apps/v1/namespaces/default/deployments"
    try:
        started = time.perf_counter()
        conn.request("POST", path, json.dumps(_windows_deployment(replicas)), headers)
        assert conn.getresponse().read() and True
        while time.perf_counter() - started < limit:
            conn.request("GET", f"{path}/bench-web", headers=headers)
            status = json.loads(conn.getresponse().read()).get("status") or {}
            if status.get("availableReplicas") == replicas:
                return time.perf_counter() - started
            time.sleep(0.1)
    finally:
        conn.close()
    return float("inf")


async def bench_run_pods(nodes: int = 200, pods: int = 1000, limit: float = 120.0) -> float:
    """Seconds until `pods` replicas run on `nodes` Ready Windows Nodes (inf past `limit`)."""
    with tempfile.TemporaryDirectory() as state:
        twin = KubeTwin(state)
        await twin.start()
        try:
            await seed_nodes(twin, nodes)
            return await asyncio.to_thread(
                _time_rollout, twin.url, twin.admin_token, twin.ca.ca_pem, pods, limit
            )
        finally:
            await twin.stop()


def main() -> None:
    median = asyncio.run(bench_list_nodes())
    print(f"sim k8s: list 1000 nodes over TLS: median {median:.1f} ms (target < 50 ms)")
    seconds = asyncio.run(bench_run_pods())
    print(f"sim k8s: 1000 pods on 200 nodes Running: {seconds:.1f} s (target < 30 s)")


if __name__ == "__main__":
    main()
