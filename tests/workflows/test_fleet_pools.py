"""Pools over their life: BYOH in place, scale-down, drains a budget blocks, deletion, a worker
killed mid-rollout."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from fleet import (
    GROUP,
    NS,
    PLURAL,
    api_client,
    available,
    create_pool,
    custom,
    fleet_twin,
    get_pool,
    install_crd,
    make_pool,
    on_version,
    patch_pool,
    pool_nodes,
    sampling,
    started,
    until,
    version_of,
    watching,
)
from kubernetes import client
from onboarding import World
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from sim.twin import Twin

pytestmark = pytest.mark.asyncio(loop_scope="session")

NEW, OLD = "1.1.0", "1.0.0"
BIN = Path(sys.executable).parent


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def twin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Twin]:
    async with fleet_twin(tmp_path_factory.mktemp("pools-twin"), 28) as t:
        yield t


def hosts_of(world: World, pool: str) -> dict[str, str]:
    return {
        n["metadata"]["name"]: n["metadata"]["annotations"]["winfleet.io/host"]
        for n in pool_nodes(world, pool)
    }


async def aws_states(world: World, pool: str) -> Counter[str]:
    ec2 = world.twin.aws.client()
    found = await asyncio.to_thread(
        ec2.describe_instances, Filters=[{"Name": "tag:winfleet.io/pool", "Values": [pool]}]
    )
    return Counter(i["State"]["Name"] for r in found["Reservations"] for i in r["Instances"])


async def test_a_byoh_pool_is_upgraded_in_place_on_the_same_hosts(world: World) -> None:
    addresses = world.twin.byoh_addresses[:2]
    spec = {
        "platform": "byoh",
        "byoh": {"hosts": [{"address": a} for a in addresses]},
        "version": OLD,
        "maxUnhealthy": 1,
    }
    async with watching(world):
        await make_pool(world, "pb", spec, 2)
        before = hosts_of(world, "pb")
        assert sorted(before.values()) == sorted(addresses)
        async with sampling(world, "pb", 2) as sampler:
            await patch_pool(world, "pb", {"version": NEW})
            await until(
                "both hosts on 1.1.0",
                lambda: on_version(world, "pb", NEW, 2),
                within=240,
                world=world,
            )
            await world.client.get_workflow_handle("upgrade-pb").result()
    assert hosts_of(world, "pb") == before  # same names, same hosts: configured again in place
    assert sampler.worst <= 1, sampler.history
    for address in addresses:
        host = world.twin.fleet.get(address)
        assert host is not None
        kubelet = (
            (host.root / "C" / "k" / "kubelet.exe").read_bytes()[:4096].decode(errors="replace")
        )
        assert "v1.20.0+simulated" in kubelet  # 1.1.0's kubelet, not 1.0.0's


async def test_scaling_down_takes_the_unhealthy_node_first_and_terminates_its_vm(
    world: World,
) -> None:
    spec = {"platform": "aws", "replicas": 3, "version": OLD, "maxUnhealthy": 1}
    async with watching(world):
        await make_pool(world, "pd", spec, 3)
        sick = sorted(pool_nodes(world, "pd"), key=lambda n: n["metadata"]["name"])[0]
        sick_name = sick["metadata"]["name"]
        host = world.twin.fleet.get(sick["metadata"]["annotations"]["winfleet.io/host"])
        assert host is not None
        host.scm.stop("kubelet", force=True)
        await until(
            "the silent node NotReady",
            lambda: all(
                not available(n)
                for n in pool_nodes(world, "pd")
                if n["metadata"]["name"] == sick_name
            ),
            within=60,
        )
        await patch_pool(world, "pd", {"replicas": 2})
        await until(
            "2 nodes left", lambda: len(pool_nodes(world, "pd")) == 2, within=120, world=world
        )
    assert sick_name not in {n["metadata"]["name"] for n in pool_nodes(world, "pd")}
    await until("its VM terminated", lambda: aws_has(world, "pd", "terminated", 1), within=60)


async def aws_has(world: World, pool: str, state: str, count: int) -> bool:
    return (await aws_states(world, pool))[state] == count


async def test_a_drain_blocked_past_its_timeout_halts_the_rollout_naming_the_budget(
    world: World,
) -> None:
    spec = {
        "platform": "aws",
        "replicas": 2,
        "version": OLD,
        "maxUnhealthy": 1,
        "upgrade": {"drainTimeout": "3s", "onDrainTimeout": "Fail"},
    }
    async with watching(world):
        first = await make_pool(world, "pq", spec, 2)
        await run_blocked_workload(world, "pq")
        await patch_pool(world, "pq", {"version": NEW})
        await until(
            "upgrade-pq to start", lambda: started(world, "UpgradeWindowsPool", "upgrade-pq")
        )
        with pytest.raises(WorkflowFailureError) as halted:
            await world.client.get_workflow_handle("upgrade-pq").result()
    cause = halted.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "RolloutHalted"
    assert "PodDisruptionBudget winfleet/web-budget" in cause.message
    nodes = pool_nodes(world, "pq")
    assert {n["metadata"]["name"] for n in nodes} == first  # nothing replaced
    assert all(version_of(n) == OLD for n in nodes)
    await until(
        "the drained node uncordoned again",
        lambda: all(
            not (n.get("spec") or {}).get("unschedulable") for n in pool_nodes(world, "pq")
        ),
        within=30,
    )


async def run_blocked_workload(world: World, pool: str) -> None:
    """Two replicas of a Windows workload on the pool's two nodes, and a budget that lets
    none of them go."""
    apps = client.AppsV1Api(api_client(world))
    policy = client.PolicyV1Api(api_client(world))
    labels = {"app": "web"}
    deployment = {
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "windows", "winfleet.io/pool": pool},
                    "tolerations": [{"key": "os", "value": "Windows", "effect": "NoSchedule"}],
                    "containers": [{"name": "web", "image": "mcr.microsoft.com/windows/iis"}],
                },
            },
        },
    }
    await asyncio.to_thread(apps.create_namespaced_deployment, NS, deployment)
    budget = {
        "metadata": {"name": "web-budget", "namespace": NS},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": labels}},
    }
    await asyncio.to_thread(policy.create_namespaced_pod_disruption_budget, NS, budget)

    def running() -> bool:
        pods = [
            p
            for p in world.twin.kube.store.list("pods", namespace=NS)
            if (p["metadata"].get("labels") or {}).get("app") == "web"
        ]
        return len([p for p in pods if (p.get("status") or {}).get("phase") == "Running"]) == 2

    await until("the workload running", running, within=60)


async def test_deleting_a_pool_takes_its_nodes_out_and_then_lets_it_go(world: World) -> None:
    spec = {"platform": "aws", "replicas": 2, "version": OLD, "maxUnhealthy": 1}
    async with watching(world):
        await make_pool(world, "px", spec, 2)
        await asyncio.to_thread(
            custom(world).delete_namespaced_custom_object, GROUP, "v1alpha1", NS, PLURAL, "px"
        )
        await until("the pool gone", lambda: get_pool(world, "px") is None, within=120, world=world)
    assert pool_nodes(world, "px") == []
    await until("its VMs terminated", lambda: aws_has(world, "px", "terminated", 2), within=60)


async def test_a_worker_killed_mid_rollout_finishes_it_without_replacing_a_node_twice(
    world: World, temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    await install_crd(world)
    queue = world.task_queue + "-crash"
    env = {
        **os.environ,
        **world.twin.env,
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
        "WINFLEET_TASK_QUEUE": queue,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    log = tmp_path / "worker.log"

    def spawn() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [str(BIN / "winfleet"), "worker"], env=env, stdout=out, stderr=out
            )

    worker = spawn()
    try:
        await create_pool(
            world, "pk", {"platform": "aws", "replicas": 3, "version": OLD, "maxUnhealthy": 1}
        )
        await until("3 nodes at 1.0.0", lambda: on_version(world, "pk", OLD, 3), within=180)
        first = {n["metadata"]["name"] for n in pool_nodes(world, "pk")}
        async with sampling(world, "pk", 3) as sampler:
            await patch_pool(world, "pk", {"version": NEW})
            await until(
                "a node taken down",
                lambda: (
                    len(
                        first
                        & {n["metadata"]["name"] for n in pool_nodes(world, "pk") if available(n)}
                    )
                    < 3
                ),
                within=120,
            )
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            await asyncio.sleep(2)
            worker = spawn()
            await until("3 nodes on 1.1.0", lambda: on_version(world, "pk", NEW, 3), within=300)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert sampler.worst <= 1, sampler.history
    # The twin is shared: this worker also sees pools other tests left behind; count pk's only.
    query = f"WorkflowType = 'DecommissionWindowsNode' AND TaskQueue = '{queue}'"
    taken = [
        wf.id
        async for wf in world.client.list_workflows(query)
        if wf.id.startswith("decommission-pk-")
    ]
    assert sorted(taken) == sorted(f"decommission-pk-{n}" for n in first)  # each exactly once
    onboarded = [
        wf.id
        async for wf in world.client.list_workflows(
            f"WorkflowType = 'OnboardWindowsNode' AND TaskQueue = '{queue}'"
        )
        if wf.id.startswith("onboard-pk-")
    ]
    assert len(onboarded) == 6  # 3 at creation, 3 replacements: none twice
    assert (await aws_states(world, "pk"))["running"] == 3
