"""`python -m sim.demo` (`make run`): the main job on the embedded default, end to end.

Starts the Temporal dev server (SQLite file, Web UI on 8233), the whole SIMULATED twin (cluster,
AWS, Azure, BYOH hosts), and a `winfleet worker`; then does what an admin does: applies the
WindowsMachinePool CRD (deploy/crds/) and a small pool `demo-aws` (2 AWS nodes at the older
payload version, so `winfleet upgrade --pool demo-aws --version <newest>` has work to do), and
runs `winfleet onboard` for a small mixed fleet with live progress. Once the fleet is onboarded
and the pool is Ready it prints where to look and what to try, and keeps everything up until
Ctrl-C (`--exit-when-done`: stops instead).
The product runs as separate processes, configured only through the twin's env file, exactly as
it would run against production; nothing here imports it (the pool is written with the
`kubernetes` client, as an admin's script would).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from sim.payload import PAYLOAD_VERSIONS
from sim.twin import NAMESPACE, Twin

log = logging.getLogger(__name__)

TEMPORAL_PORT = 7233
UI_PORT = 8233
METRICS_PORT = 9464  # the worker's /metrics, /healthz, /readyz (the SDK's exporter on +1)
SEARCH_ATTRIBUTES = ("WinfleetNode", "WinfleetPool", "WinfleetPhase")
DEFAULT_FLEET = (
    "aws:win-aws-1",
    "aws:win-aws-2",
    "azure:win-az-1",
    "azure:win-az-2",
    "byoh:win-byoh-1@{byoh0}",
    "byoh:win-byoh-2@{byoh1}",
)
CRD_FILE = (
    Path(__file__).resolve().parents[1] / "deploy" / "crds" / "winfleet.io_windowsmachinepools.yaml"
)
DEMO_POOL = "demo-aws"
DEMO_POOL_REPLICAS = 2
POOL_READY_WITHIN = 600.0  # seconds; the pool's nodes onboard alongside the fleet


def installed_command(name: str) -> str:
    """A console script of this virtual environment (`temporal`, `winfleet`), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"sim demo: no `{name}` command; run `make install`")
    return found


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def wait_for_port(port: int, *, within: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"sim demo: the Temporal dev server exited ({proc.returncode}); see its log"
            )
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"sim demo: nothing listens on port {port} after {within:.0f} s")


def start_temporal(state_dir: Path, log_file: IO[bytes]) -> subprocess.Popen[bytes]:
    for port in (TEMPORAL_PORT, UI_PORT):
        if not port_free(port):
            raise SystemExit(
                f"sim demo: port {port} is taken (another Temporal dev server?); stop it first"
            )
    args = [
        installed_command("temporal"), "server", "start-dev",
        "--db-filename", str(state_dir / "temporal.db"),
        "--ip", "127.0.0.1", "--port", str(TEMPORAL_PORT), "--ui-port", str(UI_PORT),
        "--log-level", "warn",
    ]  # fmt: skip
    for name in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{name}=Keyword"]
    return spawn(args, None, log_file)


def spawn(
    args: list[str], env: dict[str, str] | None, log_file: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )


def prepare(state_dir: Path) -> tuple[Path, IO[bytes], IO[bytes]]:
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(state_dir / "sim", ignore_errors=True)  # a fresh twin every run
    return state_dir, (state_dir / "temporal.log").open("ab"), (state_dir / "worker.log").open("ab")


def product_env(twin: Twin, state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(twin.env)
    env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{TEMPORAL_PORT}"
    env["TEMPORAL_NAMESPACE"] = "default"
    env["WINFLEET_TRACE_FILE"] = str(state_dir / "traces.jsonl")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def write_env_file(env: dict[str, str], twin: Twin, path: Path) -> None:
    keys = [*twin.env, "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "WINFLEET_TRACE_FILE"]
    path.write_text("".join(f"export {k}='{env[k]}'\n" for k in keys))


def stop_process(proc: subprocess.Popen[bytes] | None, name: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop in 15 s; killing it", name)
        proc.kill()
        proc.wait()


def demo_pool(twin: Twin) -> None:
    """`kubectl apply -f deploy/crds/` and a small AWS pool at the oldest payload version."""
    api = k8s_config.new_client_from_config(str(twin.kube.kubeconfig_path))
    ext = k8s.ApiextensionsV1Api(api)
    crd = yaml.safe_load(CRD_FILE.read_text())
    ext.create_custom_resource_definition(crd)
    deadline = time.monotonic() + 30
    while not any(
        c.type == "Established" and c.status == "True"
        for c in ext.read_custom_resource_definition(crd["metadata"]["name"]).status.conditions
        or ()
    ):
        if time.monotonic() > deadline:
            raise SystemExit("sim demo: the WindowsMachinePool CRD was not Established in 30 s")
        time.sleep(0.2)
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        "winfleet.io",
        "v1alpha1",
        NAMESPACE,
        "windowsmachinepools",
        {
            "apiVersion": "winfleet.io/v1alpha1",
            "kind": "WindowsMachinePool",
            "metadata": {"name": DEMO_POOL, "namespace": NAMESPACE},
            "spec": {
                "platform": "aws",
                "replicas": DEMO_POOL_REPLICAS,
                "version": PAYLOAD_VERSIONS[0],
                "maxUnhealthy": 1,
            },
        },
    )


def pool_ready(twin: Twin) -> tuple[int, int]:
    """(ready, updated) replicas of the demo pool, as its status says."""
    api = k8s_config.new_client_from_config(str(twin.kube.kubeconfig_path))
    pool = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        "winfleet.io", "v1alpha1", NAMESPACE, "windowsmachinepools", DEMO_POOL
    )
    status = pool.get("status") or {}
    return int(status.get("readyReplicas") or 0), int(status.get("updatedReplicas") or 0)


async def wait_for_pool(twin: Twin, stop: asyncio.Event) -> bool:
    """Until the demo pool has all its replicas Ready at its version (or Ctrl-C, or time)."""
    deadline = time.monotonic() + POOL_READY_WITHIN
    shown = (-1, -1)
    while not stop.is_set() and time.monotonic() < deadline:
        got = await asyncio.to_thread(pool_ready, twin)
        if got != shown:
            shown = got
            print(
                f"pool {DEMO_POOL}: {got[0]}/{DEMO_POOL_REPLICAS} ready, "
                f"{got[1]}/{DEMO_POOL_REPLICAS} at {PAYLOAD_VERSIONS[0]}",
                flush=True,
            )
        if got == (DEMO_POOL_REPLICAS, DEMO_POOL_REPLICAS):
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return False


def summary(state_dir: Path, ok: bool) -> str:
    env_file = state_dir / "env"
    kubeconfig = state_dir / "sim" / "kubeconfig"
    winfleet = installed_command("winfleet")
    return "\n".join(
        [
            "",
            "winfleet demo "
            + (
                f"finished: every node onboarded, pool {DEMO_POOL} Ready"
                if ok
                else "finished with failures"
            ),
            f"  Temporal Web UI:   http://localhost:{UI_PORT}/namespaces/default/workflows",
            f"  nodes:             KUBECONFIG={kubeconfig} kubectl get nodes -o wide",
            f"  a trace:           . {env_file} && {winfleet} trace onboard-demo-win-aws-1",
            f"  more nodes:        . {env_file} && {winfleet} onboard --pool demo aws:win-aws-5",
            f"  worker metrics:    http://127.0.0.1:{METRICS_PORT}/metrics (and /readyz)",
            f"  the pool:          KUBECONFIG={kubeconfig} kubectl get wmp -n {NAMESPACE}",
            f"  plan an upgrade:   . {env_file} && {winfleet} upgrade --pool {DEMO_POOL} "
            f"--version {PAYLOAD_VERSIONS[-1]} --dry-run",
            f"  roll it out:       . {env_file} && {winfleet} upgrade --pool {DEMO_POOL} "
            f"--version {PAYLOAD_VERSIONS[-1]}",
            f"  (then {winfleet} pause|resume|status --pool {DEMO_POOL}; README "
            '"Pools and rolling upgrades")',
            f"  check for drift:   . {env_file} && {winfleet} reconcile --pool {DEMO_POOL} "
            "--dry-run",
            f"  its Schedule:      . {env_file} && {installed_command('temporal')} schedule "
            f"describe --schedule-id reconcile-{DEMO_POOL}",
            f"  logs:              {state_dir}/worker.log, {state_dir}/temporal.log",
            "",
        ]
    )


async def run_demo(
    state_dir: Path, *, boot_seconds: float, nodes: list[str], keep_running: bool
) -> int:
    state_dir, temporal_log, worker_log = prepare(state_dir)
    temporal: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    twin = Twin(state_dir / "sim", boot_seconds=boot_seconds, byoh_hosts=2)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        print(f"starting Temporal dev server (UI http://localhost:{UI_PORT}) ...", flush=True)
        temporal = start_temporal(state_dir, temporal_log)
        await wait_for_port(TEMPORAL_PORT, within=60, proc=temporal)
        print(
            "starting the twin (Kubernetes API, AWS, Azure, Windows hosts; SIMULATED) ...",
            flush=True,
        )
        await twin.start()
        env = product_env(twin, state_dir)
        write_env_file(env, twin, state_dir / "env")
        print("starting the winfleet worker ...", flush=True)
        worker_env = {**env, "WINFLEET_HTTP_ADDRESS": f"127.0.0.1:{METRICS_PORT}"}
        worker = spawn([installed_command("winfleet"), "worker"], worker_env, worker_log)
        print(
            f"applying the WindowsMachinePool CRD and pool {DEMO_POOL} "
            f"({DEMO_POOL_REPLICAS} AWS nodes at {PAYLOAD_VERSIONS[0]}) ...",
            flush=True,
        )
        await asyncio.to_thread(demo_pool, twin)
        fleet = [
            n.format(byoh0=twin.byoh_addresses[0], byoh1=twin.byoh_addresses[1]) for n in nodes
        ]
        print(f"onboarding {len(fleet)} nodes in parallel: {' '.join(fleet)}\n", flush=True)
        onboard = await asyncio.create_subprocess_exec(
            installed_command("winfleet"), "onboard", "--pool", "demo", *fleet, env=env
        )
        waiter = asyncio.create_task(onboard.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            onboard.terminate()
            await onboard.wait()
            return 130
        ok = waiter.result() == 0
        ok = await wait_for_pool(twin, stop) and ok
        if stop.is_set():
            return 130
        print(summary(state_dir, ok), flush=True)
        if keep_running:
            print("everything keeps running; Ctrl-C stops it", flush=True)
            await stop.wait()
        return 0 if ok else 1
    finally:
        print("stopping ...", flush=True)
        stop_process(worker, "worker")
        await twin.stop()
        stop_process(temporal, "Temporal dev server")
        temporal_log.close()
        worker_log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=".state", help="Temporal DB, twin state, logs")
    parser.add_argument("--boot-seconds", type=float, default=5.0, help="simulated VM boot time")
    parser.add_argument(
        "--exit-when-done",
        action="store_true",
        help="stop once the fleet is onboarded and the demo pool is Ready",
    )
    parser.add_argument("nodes", nargs="*", default=list(DEFAULT_FLEET), help="node specs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(
        run_demo(
            Path(args.state_dir),
            boot_seconds=args.boot_seconds,
            nodes=args.nodes,
            keep_running=not args.exit_when_done,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
