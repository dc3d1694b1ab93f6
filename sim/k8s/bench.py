"""Benchmark for the SIMULATED Kubernetes API server: list 1,000 Nodes over loopback TLS.

`bench_list_nodes(n)` starts a twin, stores `n` realistic Windows Nodes, then times
`GET /api/v1/nodes` (full round trip, JSON parsed) from a client in another thread, returning the
median in milliseconds. Called by `make bench-sim`; `python -m sim.k8s.bench` prints the figure.
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
            timings = await asyncio.to_thread(
                _time_lists, twin.url, twin.admin_token, twin.ca.ca_pem, runs
            )
        finally:
            await twin.stop()
    return statistics.median(timings)


def main() -> None:
    median = asyncio.run(bench_list_nodes())
    print(f"sim k8s: list 1000 nodes over TLS: median {median:.1f} ms (target < 50 ms)")


if __name__ == "__main__":
    main()
