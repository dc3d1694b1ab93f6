"""Helpers for the fleet tests: pools as an admin writes them, the watcher, budget samplers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from onboarding import World
from processes import wait_until
from temporalio.testing import WorkflowEnvironment

from sim.twin import Twin
from worker.pool_watcher import PoolWatcher

CRD = (
    Path(__file__).resolve().parents[2] / "deploy" / "crds" / "winfleet.io_windowsmachinepools.yaml"
)
GROUP, VERSION, PLURAL, NS = "winfleet.io", "v1alpha1", "windowsmachinepools", "winfleet"
POOL_LABEL = "winfleet.io/pool"
VERSION_ANNOTATION = "windowsmachineconfig.openshift.io/version"


def api_client(world: World) -> client.ApiClient:
    return config.new_client_from_config(str(world.twin.kube.kubeconfig_path))


async def install_crd(world: World) -> None:
    """`kubectl apply -f deploy/crds/` as an admin does once (the twin serves on this loop:
    every client call runs in a thread)."""
    ext = client.ApiextensionsV1Api(api_client(world))
    body = yaml.safe_load(CRD.read_text())
    try:
        await asyncio.to_thread(ext.create_custom_resource_definition, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def custom(world: World) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client(world))


async def create_pool(world: World, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WindowsMachinePool",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }
    created: dict[str, Any] = await asyncio.to_thread(
        custom(world).create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, body
    )
    return created


async def patch_pool(world: World, name: str, spec: dict[str, Any]) -> None:
    await asyncio.to_thread(
        custom(world).patch_namespaced_custom_object,
        GROUP,
        VERSION,
        NS,
        PLURAL,
        name,
        {"spec": spec},
    )


def get_pool(world: World, name: str) -> dict[str, Any] | None:
    return world.twin.kube.store.get("windowsmachinepools", name, namespace=NS)


def pool_nodes(world: World, pool: str) -> list[dict[str, Any]]:
    return [
        n
        for n in world.twin.kube.store.list("nodes")
        if (n["metadata"].get("labels") or {}).get(POOL_LABEL) == pool
    ]


def ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or ()
    )


def available(node: dict[str, Any]) -> bool:
    return (
        ready(node)
        and not (node.get("spec") or {}).get("unschedulable")
        and not node["metadata"].get("deletionTimestamp")
    )


def version_of(node: dict[str, Any]) -> str:
    return str((node["metadata"].get("annotations") or {}).get(VERSION_ANNOTATION, ""))


async def until(
    what: str, probe: Callable[[], Any], within: float = 120.0, world: World | None = None
) -> Any:
    """Wait for `probe()`; on timeout, fail saying what the fleet workflows were doing."""
    said = (lambda: explain(world)) if world is not None else None
    return await wait_until(what, probe, within, explain=said)


async def explain(world: World) -> str:
    """What every running workflow of the test's task queue is waiting on (for failures)."""
    lines = []
    async for wf in world.client.list_workflows(f"TaskQueue = '{world.task_queue}'"):
        handle = world.client.get_workflow_handle(wf.id, run_id=wf.run_id)
        desc = await handle.describe()
        pending = [
            f"{a.activity_type.name}(attempt {a.attempt}, {a.last_failure.message[:160]})"
            for a in desc.raw_description.pending_activities
        ]
        line = f"{wf.id} {desc.status.name if desc.status else '?'} pending={pending}"
        if (
            wf.workflow_type in ("WindowsPool", "UpgradeWindowsPool")
            and desc.status
            and desc.status.name == "RUNNING"
        ):
            with contextlib.suppress(Exception):
                line += f" progress={await handle.query('progress')}"
        if desc.status and desc.status.name == "FAILED":
            try:
                await handle.result()
            except Exception as exc:
                cause = getattr(exc, "cause", None) or exc
                line += f" failure={cause!r:.600}"
        lines.append(line)
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def watching(world: World) -> AsyncIterator[None]:
    """The worker's pool watcher, for the test's task queue."""
    task = asyncio.create_task(PoolWatcher(world.client, world.task_queue).run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class BudgetSampler:
    """Samples a pool's Nodes every `every` seconds: the most replicas ever unavailable."""

    world: World
    pool: str
    desired: int
    every: float = 0.25
    worst: int = 0
    ready_low: int = 10**6
    samples: int = 0
    history: list[tuple[int, list[str]]] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            nodes = pool_nodes(self.world, self.pool)
            up = [n["metadata"]["name"] for n in nodes if available(n)]
            down = max(0, self.desired - len(up))
            self.worst = max(self.worst, down)
            self.ready_low = min(self.ready_low, len(up))
            self.samples += 1
            if down:
                self.history.append((down, sorted(up)))
            await asyncio.sleep(self.every)


@contextlib.asynccontextmanager
async def sampling(world: World, pool: str, desired: int) -> AsyncIterator[BudgetSampler]:
    sampler = BudgetSampler(world, pool, desired)
    task = asyncio.create_task(sampler.run())
    try:
        yield sampler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def started(world: World, workflow_type: str, prefix: str) -> list[str]:
    """IDs of the `workflow_type` executions of the test's task queue starting with `prefix`."""
    query = f"WorkflowType = '{workflow_type}' AND TaskQueue = '{world.task_queue}'"
    return [wf.id async for wf in world.client.list_workflows(query) if wf.id.startswith(prefix)]


def on_version(world: World, pool: str, version: str, count: int) -> bool:
    """`count` nodes in the pool, every one available and on `version`."""
    nodes = pool_nodes(world, pool)
    good = [n for n in nodes if available(n) and version_of(n) == version]
    return len(good) == count and len(nodes) == count


async def make_pool(world: World, name: str, spec: dict[str, Any], count: int) -> set[str]:
    """Create the pool (CRD installed first) and wait for its `count` nodes; their names."""
    await install_crd(world)
    await create_pool(world, name, spec)
    await until(
        f"{count} nodes of {name} Ready at {spec['version']}",
        lambda: on_version(world, name, spec["version"], count),
        within=180,
        world=world,
    )
    return {n["metadata"]["name"] for n in pool_nodes(world, name)}


def fleet_twin(state: Path, cidr_base: int) -> Twin:
    """A twin of a fleet test module's own, with a node-monitor grace of 15 s (a silent kubelet
    shows within a test's time, and a loaded machine that delays every simulated kubelet's
    heartbeat for a few seconds does not turn the whole pool NotReady at once, which the budget
    samplers would count) and its own address ranges (127.<base>, +1 Azure, +4 BYOH)."""
    return Twin(
        state,
        boot_seconds=1.0,
        byoh_hosts=3,
        aws_cidr=f"127.{cidr_base}.0.0/16",
        azure_cidr=f"127.{cidr_base + 1}.0.0/16",
        byoh_cidr=f"127.{cidr_base + 4}.0.0/16",
        node_monitor_grace_seconds=15.0,
    )


WINFLEET = str(Path(sys.executable).parent / "winfleet")


def cli_env(world: World, temporal: WorkflowEnvironment) -> dict[str, str]:
    """The environment a user's shell has after `. .state/env`, aimed at the test's queue."""
    return {
        **os.environ,
        **world.twin.env,
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
        "WINFLEET_TASK_QUEUE": world.task_queue,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


async def spawn_winfleet(
    world: World, temporal: WorkflowEnvironment, *args: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        WINFLEET,
        *args,
        env=cli_env(world, temporal),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def winfleet(
    world: World, temporal: WorkflowEnvironment, *args: str, within: float = 120.0
) -> tuple[int, str, str]:
    """Run `winfleet ARGS` to its end: (exit code, stdout, stderr)."""
    proc = await spawn_winfleet(world, temporal, *args)
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def blocking_budget_on(world: World, node: str) -> None:
    """A Running pod on `node` whose PodDisruptionBudget allows no disruption (minAvailable 1
    of 1), as an admin's database would have."""
    core = client.CoreV1Api(api_client(world))
    policy = client.PolicyV1Api(api_client(world))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": "default", "labels": {"app": "db"}},
        "spec": {"nodeName": node, "containers": [{"name": "db", "image": "mcr/db"}]},
    }
    await asyncio.to_thread(core.create_namespaced_pod, "default", pod)
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "db-budget", "namespace": "default"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
    }
    await asyncio.to_thread(policy.create_namespaced_pod_disruption_budget, "default", pdb)

    def settled() -> bool:
        store = world.twin.kube.store
        running = (store.get("pods", "db-0", namespace="default") or {}).get("status", {})
        budget = store.get("poddisruptionbudgets", "db-budget", namespace="default") or {}
        status = budget.get("status") or {}
        return running.get("phase") == "Running" and status.get("currentHealthy") == 1

    await until("the pod Running and its budget counted", settled)
