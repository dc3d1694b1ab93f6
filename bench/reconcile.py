"""`python -m bench.reconcile`: one drift reconciliation of a 500-node pool (`make bench`).

Runs the real pieces: a Temporal dev server, the SIMULATED twin in this process (500 BYOH hosts
listed in `windows-instances`) and a `winfleet worker` subprocess, as bench/onboard.py does.
The hosts are first configured as onboarding leaves them, with the product's own command
builders run in this process (500 onboardings through Temporal and SSH would take far longer
than the measurement; the twin's CSRs are approved as an admin would), then finalized and
pinned by the product's activities as members of the BYOH pool `bench`. That the run finds
nothing on them is the check that setup matches onboarding. Then it measures one
`ReconcileWindowsPool` run with node-level checks on every node (and a second, warm one):
- its wall time (target <= 60 s on 2 cores, twin included) and what it found (0 expected);
- its history: events and bytes;
- the worker's peak memory (VmHWM of the subprocess).
Prints the figures and writes bench-results/reconcile.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path, PureWindowsPath
from typing import Any

import aiohttp
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import desired_state, hostkeys
from activities.config import Settings, use_settings
from activities.contracts import TASK_QUEUE, ByohHostSpec, Platform
from activities.drift_contracts import ReconcileReport
from activities.kubelet import APPLIED_MARKER, CNI_APPLIED_MARKER, fetch_worker_ignition
from activities.node import FinalizeNodeInput, finalize_node
from activities.windows import hns, paths, services, wmcb
from activities.windows.cni import OVERLAY_NETWORK, cni_config
from activities.windows.powershell import (
    ADMINISTRATORS_SID,
    SYSTEM_SID,
    WindowsCommand,
    exit_with_last_exit_code,
    grant_full_control_only,
    powershell,
    remove_item,
)
from bench.onboard import worker_process
from sim.twin import Twin
from sim.windows.bench import approve_pending
from sim.windows.host import SimulatedWindowsHost
from workflows import search_attributes

RESULTS = Path("bench-results")
TARGET_S = 60.0
POOL = "bench"
VERSION = "1.1.0"
SETUP_CONCURRENCY = 24
IDLE_SAMPLE_S = 5.0
SUBNET = "k8s.ovn.org/hybrid-overlay-node-subnet"
CRD = (
    Path(__file__).resolve().parents[1] / "deploy" / "crds" / "winfleet.io_windowsmachinepools.yaml"
)


async def approve_csrs(twin: Twin, stop: asyncio.Event) -> None:
    """Approve every pending CSR, as an admin (or the CSR activity) would, until `stop`."""
    while not stop.is_set():
        await approve_pending(twin.kube)
        await asyncio.sleep(0.5)


async def until(what: str, probe: Any, within: float = 300.0) -> Any:
    deadline = time.monotonic() + within
    while not (got := probe()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench setup: timed out waiting for {what}")
        await asyncio.sleep(0.2)
    return got


def _copy_payload(src: Path, host: SimulatedWindowsHost) -> None:
    for f in src.rglob("*"):
        if f.is_file():
            dst = host.root / "C" / "k" / f.relative_to(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(f.read_bytes())


def _local(host: SimulatedWindowsHost, path: str) -> Path:
    return host.root / PureWindowsPath(path).as_posix().replace(":", "", 1)


def _write(host: SimulatedWindowsHost, path: str, data: bytes) -> None:
    """A file on the host's disk, as the product's SFTP writes put it there."""
    local = _local(host, path)
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)


async def _run(host: SimulatedWindowsHost, cmd: WindowsCommand) -> str:
    out, err, code = await host.run(cmd.line)
    if code != 0 or (cmd.success_line and cmd.success_line not in out):
        raise RuntimeError(f"bench setup: {cmd.display} on {host.address}: {err[:300]}")
    return out


async def _restrict(host: SimulatedWindowsHost, path: paths.WindowsPath) -> None:
    """What the product's `lockdown.restrict` does to a folder others can read (one that does
    not exist yet is left alone)."""
    if not _local(host, path).is_dir():
        return
    grant = grant_full_control_only(path, ADMINISTRATORS_SID, SYSTEM_SID, inherit=True)
    await _run(host, powershell(grant, exit_with_last_exit_code(), display=f"restrict {path}"))


async def _ensure(host: SimulatedWindowsHost, spec: services.ServiceSpec) -> None:
    """What the product's `ensure_service` does to a host without the service."""
    plan = services.ensure_service_commands(spec, None, definition_current=False)
    for cmd in plan.configure:
        await _run(host, cmd)
    _write(host, services.definition_marker(spec.name), spec.definition())
    assert plan.start is not None
    await _run(host, plan.start)


async def configure(twin: Twin, host: SimulatedWindowsHost, ignition: bytes) -> None:
    """One host configured as onboarding leaves it (the same command builders, run in this
    process instead of over SSH), then finalized as a member of the pool."""
    node = host.hostname.lower()
    store = twin.kube.store
    await asyncio.to_thread(_copy_payload, twin.state_dir / "payload" / VERSION, host)
    digest = hashlib.sha256(ignition).hexdigest()
    await _restrict(host, paths.K_DIR)
    _write(host, paths.IGNITION, ignition)
    await _run(host, wmcb.initialize_kubelet(node_ip=host.address))
    _write(host, APPLIED_MARKER, hashlib.sha256(digest.encode()).hexdigest().encode())
    await _restrict(host, services.KUBELET_STATE_DIR)

    def annotation(key: str) -> str:
        obj = store.get("nodes", node) or {}
        return str(((obj.get("metadata") or {}).get("annotations") or {}).get(key) or "")

    node_subnet = await until(f"{node}'s subnet", lambda: annotation(SUBNET))
    kubeconfig = _local(host, paths.KUBECONFIG)
    await until(f"{node}'s kubelet client kubeconfig", kubeconfig.is_file)
    await _run(host, powershell(remove_item(paths.IGNITION), display="rm worker.ign"))
    await _ensure(host, services.hybrid_overlay_service(node))
    await until(f"{node}'s HNS network", lambda: OVERLAY_NETWORK in host.hns_networks)
    text = cni_config(node_subnet, twin.env.get("WINFLEET_SERVICE_CIDR", "172.30.0.0/16"))
    cni_digest = hashlib.sha256(text.encode()).hexdigest()
    _write(host, paths.CNI_CONFIG, text.encode())
    await _run(host, wmcb.configure_cni())
    _write(host, CNI_APPLIED_MARKER, hashlib.sha256(cni_digest.encode()).hexdigest().encode())
    network = hns.find_network(
        hns.parse_networks(await _run(host, hns.list_networks_command())), OVERLAY_NETWORK
    )
    assert network is not None
    (vip,) = hns.parse_endpoints(await _run(host, hns.create_endpoint_command(network.id)))
    await _ensure(host, services.kube_proxy_service(node, node_subnet, vip.ip_address))
    pem = host.root / "C" / "var" / "lib" / "kubelet" / "pki" / "kubelet-server-current.pem"
    await until(
        f"{node} Ready with its serving certificate",
        lambda: pem.is_file() and ready(store.get("nodes", node)),
    )
    await hostkeys.pin(host.address, node, host.host_key_public)
    byoh = ByohHostSpec(address=host.address)
    await ActivityEnvironment().run(
        finalize_node,
        FinalizeNodeInput(
            node_name=node,
            version=VERSION,
            pool=POOL,
            host=host.address,
            node_subnet=node_subnet,
            machine_hash=desired_state.machine_hash(Platform.BYOH, byoh=byoh),
        ),
    )


def ready(node: dict[str, Any] | None) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in ((node or {}).get("status") or {}).get("conditions") or ()
    )


async def kube_post(twin: Twin, path: str, body: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {twin.kube.admin_token}"}
    async with (
        aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(ssl=False)) as http,
        http.post(f"{twin.kube.url}{path}", json=body) as resp,
    ):
        if resp.status not in (200, 201, 409):
            raise RuntimeError(f"POST {path}: {resp.status} {await resp.text()}")


async def setup(twin: Twin) -> float:
    import yaml

    start = time.monotonic()
    await kube_post(
        twin,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        yaml.safe_load(CRD.read_text()),
    )
    stop = asyncio.Event()
    approver = asyncio.create_task(approve_csrs(twin, stop))
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    done = 0

    async def one(host: SimulatedWindowsHost, ignition: bytes) -> None:
        nonlocal done
        async with gate:
            await configure(twin, host, ignition)
        done += 1
        if done % 50 == 0:
            print(f"  {done} hosts configured ({time.monotonic() - start:.0f} s)", flush=True)

    ignition = await fetch_worker_ignition()
    try:
        hosts = [twin.fleet.get(a) for a in twin.byoh_addresses]
        await asyncio.gather(*(one(h, ignition) for h in hosts))
    finally:
        stop.set()
        await approver
    return time.monotonic() - start


def cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default)."""
    fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def history_size(client: Client, workflow_id: str) -> tuple[int, int]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return len(history.events), len(history.to_json())


async def one_run(client: Client, label: str, worker: int) -> dict[str, Any]:
    workflow_id = f"reconcile-{POOL}-bench-{label}"
    twin_cpu, worker_cpu = cpu_s(), cpu_s(worker)
    start = time.monotonic()
    report: ReconcileReport = await client.execute_workflow(
        "ReconcileWindowsPool",
        {"pool": POOL},
        id=workflow_id,
        task_queue=TASK_QUEUE,
        result_type=ReconcileReport,
    )
    wall = time.monotonic() - start
    twin_cpu, worker_cpu = cpu_s() - twin_cpu, cpu_s(worker) - worker_cpu
    events, size = await history_size(client, workflow_id)
    print(
        f"  {label}: {wall:6.2f} s, {report.nodes_checked} nodes checked, state {report.state}, "
        f"found {report.summary.found}; history {events} events, {size / 1024:.0f} KiB; "
        f"CPU: twin {twin_cpu:.1f} s, worker {worker_cpu:.1f} s",
        flush=True,
    )
    return {
        "wall_s": round(wall, 2),
        "nodes_checked": report.nodes_checked,
        "state": report.state,
        "found": report.summary.found,
        "history_events": events,
        "history_kib": round(size / 1024, 1),
        "cpu_s_twin": round(twin_cpu, 1),
        "cpu_s_worker": round(worker_cpu, 1),
    }


async def main_async(nodes: int, state: Path) -> dict[str, Any]:
    print(f"reconcile benchmark: {nodes}-node BYOH pool (real Temporal dev server, SIMULATED twin)")
    server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    async with server:
        twin = Twin(
            state / "twin-reconcile",
            boot_seconds=0.0,
            byoh_hosts=nodes,
            aws_cidr="127.44.0.0/16",
            azure_cidr="127.45.0.0/16",
            byoh_cidr="127.43.0.0/16",
        )
        async with twin:
            use_settings(Settings.from_env(dict(twin.env)))
            setup_s = await setup(twin)
            print(f"  {nodes} hosts configured and finalized in {setup_s:.0f} s (not measured)")
            env = {
                **os.environ,
                **twin.env,
                "TEMPORAL_ADDRESS": server.client.service_client.config.target_host,
                "WINFLEET_TRACE_FILE": str(state / "traces-reconcile.jsonl"),
                "WINFLEET_LOG_LEVEL": "WARNING",
            }
            worker = worker_process(env, state / "worker-reconcile.log")
            try:
                await kube_post(
                    twin,
                    "/apis/winfleet.io/v1alpha1/namespaces/winfleet/windowsmachinepools",
                    {
                        "apiVersion": "winfleet.io/v1alpha1",
                        "kind": "WindowsMachinePool",
                        "metadata": {"name": POOL, "namespace": "winfleet"},
                        "spec": {
                            "platform": "byoh",
                            "maxUnhealthy": "10%",
                            "reconcile": {"interval": "1h"},
                        },
                    },
                )
                idle = cpu_s()
                await asyncio.sleep(IDLE_SAMPLE_S)  # the twin's own load, for the record
                idle = (cpu_s() - idle) / IDLE_SAMPLE_S
                print(f"  the twin alone (hosts' kubelets, API server) uses {idle:.0%} of a core")
                cold = await one_run(server.client, "cold", worker.pid)
                warm = await one_run(server.client, "warm", worker.pid)
                peak = peak_rss_mb(worker.pid)
            finally:
                worker.terminate()
                await asyncio.to_thread(worker.wait, 30)
    ok = cold["wall_s"] <= TARGET_S
    print(f"  worker peak memory: {peak:.0f} MB")
    print(f"  {'PASS' if ok else 'FAIL'}  one run over {nodes} nodes <= {TARGET_S:.0f} s")
    report = {
        "nodes": nodes,
        "cold": cold,
        "warm": warm,
        "worker_peak_rss_mb": round(peak, 1),
        "twin_idle_core_share": round(idle, 2),
        "target_s": TARGET_S,
        "check": "PASS" if ok else "FAIL",
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reconcile", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--nodes", type=int, default=500, help="pool size")
    args = parser.parse_args()
    state = Path(".state/bench").resolve()
    state.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(main_async(args.nodes, state))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reconcile.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {RESULTS / 'reconcile.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
