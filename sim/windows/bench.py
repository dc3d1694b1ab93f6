"""Benchmark: many SIMULATED Windows hosts in one process (wired into `make bench-sim`).

`await bench_hosts(n=200)` starts n hosts (no boot delay) on 127.77.x.y:<ssh_port>, runs
`hostname` over real SSH on each, and, with `kube=True` (default), also starts a KubeTwin,
bootstraps every host's kubelet through WMCB (client CSRs auto-approved through the API as the
product would), waits until every Node is registered, and reports resident memory
(VmRSS from /proc/self/status) and timings as a dict.
Run directly: `python -m sim.windows.bench [n]`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh

from sim.payload import build_sample_payload
from sim.windows.fleet import HostFleet, HostSpec


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _address(i: int, base: str) -> str:
    a, b = base.split(".")[:2]
    return f"{a}.{b}.{i // 250}.{i % 250 + 1}"


def _copy_payload(src: Path, dst: Path) -> None:
    for f in src.rglob("*"):
        if f.is_file():
            target = dst / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes())


async def approve_pending(twin: Any) -> int:
    """Approve every pending CSR once (admin token, /approval subresource)."""
    pending = [
        e.obj["metadata"]["name"]
        for e in twin.store.entries(("certificates.k8s.io", "certificatesigningrequests"))
        if not (e.obj.get("status") or {}).get("conditions")
    ]
    if not pending:
        return 0
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {twin.admin_token}"},
        connector=aiohttp.TCPConnector(ssl=False),
    ) as session:
        for name in pending:
            body = {
                "apiVersion": "certificates.k8s.io/v1",
                "kind": "CertificateSigningRequest",
                "metadata": {"name": name},
                "status": {
                    "conditions": [
                        {
                            "type": "Approved",
                            "status": "True",
                            "reason": "Bench",
                            "message": "bench",
                        }
                    ]
                },
            }
            url = (
                f"{twin.url}/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval"
            )
            async with session.put(url, json=body) as resp:
                await resp.read()
    return len(pending)


async def bench_hosts(
    n: int = 200, kube: bool = True, base: str = "127.77.0.0", ssh_port: int = 22
) -> dict[str, Any]:
    result: dict[str, Any] = {"hosts": n, "rss_mb_start": round(rss_mb(), 1)}
    with tempfile.TemporaryDirectory(prefix="winfleet-bench-") as tmp:
        state = Path(tmp)
        payload = state / "payload"
        build_sample_payload(payload)
        key = asyncssh.generate_private_key("ssh-ed25519")
        twin = None
        if kube:
            from sim.k8s.mcs import worker_ignition
            from sim.k8s.server import KubeTwin

            twin = await KubeTwin(state / "k8s").start()
        fleet = HostFleet(
            state / "fleet", kube_ca_pem=twin.ca.ca_pem if twin else None, ssh_port=ssh_port
        )
        await fleet.start()
        try:
            t0 = time.perf_counter()
            hosts = []
            for i in range(n):
                hosts.append(
                    await fleet.add_host(
                        HostSpec(
                            address=_address(i, base),
                            hostname=f"WIN-BENCH{i:04d}",
                            authorized_keys=(key.export_public_key().decode(),),
                        )
                    )
                )
            result["start_seconds"] = round(time.perf_counter() - t0, 2)
            result["rss_mb_hosts_up"] = round(rss_mb(), 1)

            sem = asyncio.Semaphore(50)

            async def ssh_hostname(h: Any) -> None:
                async with (
                    sem,
                    asyncssh.connect(
                        h.address,
                        port=h.port,
                        username="Administrator",
                        client_keys=[key],
                        known_hosts=None,
                    ) as conn,
                ):
                    await conn.run("hostname", check=True)

            t0 = time.perf_counter()
            await asyncio.gather(*(ssh_hostname(h) for h in hosts))
            result["ssh_hostname_all_seconds"] = round(time.perf_counter() - t0, 2)

            if twin is not None:
                ign = json.dumps(worker_ignition(twin.url, twin.ca.ca_pem, twin.bootstrap_token))
                t0 = time.perf_counter()
                for h in hosts:
                    _copy_payload(payload, h.root / "C" / "k")
                    (h.root / "C" / "k" / "worker.ign").write_text(ign)
                    _, err, code = await h.run(
                        r"C:\k\wmcb.exe initialize-kubelet --ignition-file C:\k\worker.ign "
                        r"--kubelet-path C:\k\kubelet.exe"
                    )
                    assert code == 0, err
                deadline = time.perf_counter() + 300
                while len(twin.store.entries(("", "nodes"))) < n:
                    await approve_pending(twin)
                    assert time.perf_counter() < deadline, "nodes did not all register"
                    await asyncio.sleep(0.5)
                result["kubelets_registered_seconds"] = round(time.perf_counter() - t0, 2)
                await asyncio.sleep(3)  # steady state: a few status ticks (measurement, not sync)
            result["rss_mb_peak_steady"] = round(rss_mb(), 1)
        finally:
            await fleet.stop()
            if twin is not None:
                await twin.stop()
    return result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print(json.dumps(asyncio.run(bench_hosts(n)), indent=2))


if __name__ == "__main__":
    main()
