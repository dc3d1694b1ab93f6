"""Drift reconciliation of cloud pools: a Node whose VM is gone, an orphan VM and a scaled-down
pool in the run the spec change triggers; a repair and a rollout sharing one budget."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from drift_lab import (
    explain,
    host_of,
    node_metadata,
    outcomes,
    ready_nodes,
    reconcile,
    scheduled_run,
    settled,
)
from fleet import (
    api_client,
    available,
    blocking_budget_on,
    create_pool,
    install_crd,
    patch_pool,
    pool_nodes,
    sampling,
    until,
    version_of,
    watching,
)
from host_changes import changed, snapshot, writes
from kubernetes import client
from onboarding import World

pytestmark = pytest.mark.asyncio(loop_scope="session")

QUIET = {"interval": "1h"}


def instance_of(node: dict[str, Any]) -> str:
    return str(node["spec"]["providerID"]).rsplit("/", 1)[-1]


async def instances(world: World, **filters: str) -> list[dict[str, Any]]:
    ec2 = world.twin.aws.client()
    found = await asyncio.to_thread(
        ec2.describe_instances,
        Filters=[{"Name": f"tag:{k}", "Values": [v]} for k, v in filters.items()],
    )
    return [i for r in found["Reservations"] for i in r["Instances"]]


async def orphan_vm(world: World, pool: str, node: str, like: str) -> str:
    """An instance tagged for `pool` and `node` (no Node of that name): what an onboarding
    whose compensation failed leaves behind. The cluster tag is copied from `like`'s."""
    (model,) = [i for i in await instances(world) if i["InstanceId"] == like]
    tags = {t["Key"]: t["Value"] for t in model["Tags"]}
    ec2 = world.twin.aws.client()
    launched = await asyncio.to_thread(
        ec2.run_instances,
        ImageId=model["ImageId"],
        InstanceType=model["InstanceType"],
        SubnetId=model["SubnetId"],
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "winfleet.io/cluster", "Value": tags["winfleet.io/cluster"]},
                    {"Key": "winfleet.io/pool", "Value": pool},
                    {"Key": "winfleet.io/node", "Value": node},
                ],
            }
        ],
    )
    return str(launched["Instances"][0]["InstanceId"])


async def state_of(world: World, instance_id: str) -> str:
    (found,) = [i for i in await instances(world) if i["InstanceId"] == instance_id]
    return str(found["State"]["Name"])


async def unpin(world: World) -> None:
    policy = client.PolicyV1Api(api_client(world))
    await asyncio.to_thread(policy.delete_namespaced_pod_disruption_budget, "db-budget", "default")


def scale_down_victim(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The node the pool takes out first when all serve: the oldest, then by name."""
    return min(nodes, key=lambda n: (n["metadata"]["creationTimestamp"], n["metadata"]["name"]))


async def test_a_lost_vm_an_orphan_vm_and_a_scale_down_are_all_handled_by_one_triggered_run(
    world: World,
) -> None:
    await install_crd(world)
    async with watching(world):
        await create_pool(
            world,
            "pcl",
            {
                "platform": "aws",
                "replicas": 3,
                "maxUnhealthy": 2,
                "upgrade": {"nodeStartupTimeout": "1s"},  # an orphan is one after 1 s
                "reconcile": QUIET,
            },
        )
        nodes = await ready_nodes(world, "pcl", 3)
        victim = scale_down_victim(nodes)
        lost, kept = [n for n in nodes if n is not victim]
        await blocking_budget_on(world, victim["metadata"]["name"])
        orphan = await orphan_vm(world, "pcl", "pcl-orphn", like=instance_of(kept))
        launched = time.time()
        await until("the orphan older than nodeStartupTimeout", lambda: time.time() - launched > 1)
        kept_host = host_of(world, kept)
        kept_state, kept_logged = snapshot(kept_host), len(kept_host.command_log)
        ec2 = world.twin.aws.client()
        await asyncio.to_thread(ec2.terminate_instances, InstanceIds=[instance_of(lost)])
        since = time.time()

        await patch_pool(world, "pcl", {"replicas": 2})  # the spec change triggers a run
        report = await scheduled_run(world, "pcl", since)

        found, text = outcomes(report), explain(report)
        assert found[("", "extra-replica", "1 node(s)")] == "delegated", text
        assert found[("", "orphan-vm", orphan)] == "done", text
        assert found[(lost["metadata"]["name"], "vm-gone", "")] == "done", text
        assert kept["metadata"]["name"] not in {n.node for n in report.nodes}, text
        assert await state_of(world, orphan) in ("shutting-down", "terminated")

        await unpin(world)  # the scale-down's drain may go on now
        gone = {victim["metadata"]["name"], lost["metadata"]["name"]}
        await until(
            "2 available nodes, neither the lost one nor the scale-down victim",
            lambda: (
                len(pool_nodes(world, "pcl")) == 2
                and all(available(n) for n in pool_nodes(world, "pcl"))
                and not gone & {n["metadata"]["name"] for n in pool_nodes(world, "pcl")}
            ),
            within=180,
            world=world,
        )
        assert writes(kept_host.command_log[kept_logged:]) == []
        assert changed(kept_state, snapshot(kept_host)) == set()


async def test_a_repair_and_a_rollout_at_once_stay_within_max_unhealthy(world: World) -> None:
    await install_crd(world)
    async with watching(world):
        await create_pool(
            world,
            "pup",
            {
                "platform": "aws",
                "replicas": 2,
                "version": "1.0.0",
                "maxUnhealthy": 1,
                "reconcile": QUIET,
            },
        )
        await ready_nodes(world, "pup", 2)
        async with sampling(world, "pup", 2) as sampler:
            since = time.time()
            # A new version (the rollout) and a new machine spec (drift: every node must be
            # replaced) at once; the spec change triggers a reconciliation run.
            await patch_pool(
                world, "pup", {"version": "1.1.0", "aws": {"instanceType": "m5a.xlarge"}}
            )
            report = await scheduled_run(world, "pup", since)
            await until(
                "2 available nodes on 1.1.0",
                lambda: (
                    len(pool_nodes(world, "pup")) == 2
                    and all(
                        available(n) and version_of(n) == "1.1.0" for n in pool_nodes(world, "pup")
                    )
                ),
                within=300,
                world=world,
            )
        machine = [
            o
            for n in report.nodes
            for o in n.outcomes
            if o.check == "desired-state" and o.subject == "machine"
        ]
        assert len(machine) == 2, explain(report)  # every node: its machine spec changed
        assert all(
            o.result == "done"
            or (o.result == "deferred" and ("budget" in o.why or "upgrade" in o.why))
            for o in machine
        ), explain(report)
        assert sampler.worst <= 1, sampler.history
        assert sampler.samples > 20
        types = {
            i["InstanceType"]
            for i in await instances(world, **{"winfleet.io/pool": "pup"})
            if i["State"]["Name"] == "running"
        }
        assert types == {"m5a.xlarge"}
        # Once all is as declared, a run changes nothing: no VM, Node or host is written.
        nodes = pool_nodes(world, "pup")
        vms = {i["InstanceId"]: i["State"]["Name"] for i in await instances(world)}
        metadata = {
            n["metadata"]["name"]: node_metadata(world, n["metadata"]["name"]) for n in nodes
        }
        hosts = [host_of(world, n) for n in nodes]
        for host, n in zip(hosts, nodes, strict=True):
            await settled(host, world, n["metadata"]["name"])  # the newest may still be fetching
        logged = [len(h.command_log) for h in hosts]
        again = await reconcile(world, "pup")
        assert again.state == "Clean" and again.nodes_checked == 2, explain(again)
        assert {i["InstanceId"]: i["State"]["Name"] for i in await instances(world)} == vms
        assert {name: node_metadata(world, name) for name in metadata} == metadata
        assert all(writes(h.command_log[n:]) == [] for h, n in zip(hosts, logged, strict=True))
