"""The twin's cloud controller manager: Nodes get their providerID, a stopped instance's Node
its shutdown taint, and the Node of a terminated instance or deleted VM goes away, while a BYOH
Node stays. Driven through boto3, azure-mgmt-compute and the `kubernetes` client (in threads:
the twin serves from this test's event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from sim.twin import Twin
from tests.sim_cloud.conftest import wait_until
from tests.sim_cloud.test_azure_twin import RG, clients, create_vm

GRACE = 2.0
SHUTDOWN = "node.cloudprovider.kubernetes.io/shutdown"


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[Twin]:
    started = Twin(
        tmp_path / "state",
        boot_seconds=0.5,
        byoh_hosts=1,
        aws_cidr="127.11.128.0/17",
        azure_cidr="127.21.128.0/18",
        byoh_cidr="127.21.201.0/24",
        node_monitor_grace_seconds=GRACE,
    )
    async with started:
        yield started


@pytest.fixture
def core(twin: Twin) -> Any:
    api = config.new_client_from_config(config_file=str(twin.kube.kubeconfig_path))
    yield client.CoreV1Api(api)
    api.close()


def registered_node(name: str, address: str) -> dict[str, Any]:
    """The Node a kubelet on `address` registers (Ready when it first reports)."""
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/os": "windows"}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": address}],
        },
    }


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def node_or_none(core: Any, name: str) -> Any:
    try:
        return await call(core.read_node, name)
    except client.ApiException as exc:
        assert exc.status == 404
        return None


def taints(node: Any) -> set[str]:
    return {t.key for t in (node.spec.taints or [])}


async def test_a_terminated_instances_node_is_deleted_and_a_byoh_node_is_not(
    twin: Twin, core: Any
) -> None:
    ec2 = twin.aws.client()
    instance = (
        await call(
            ec2.run_instances,
            ImageId=twin.aws.image_id,
            InstanceType="m5a.large",
            MinCount=1,
            MaxCount=1,
            SubnetId=twin.aws.subnet_id,
        )
    )["Instances"][0]
    iid, ip = instance["InstanceId"], instance["PrivateIpAddress"]
    zone = instance["Placement"]["AvailabilityZone"]
    await call(core.create_node, registered_node("win-aws", ip))
    await call(core.create_node, registered_node("win-byoh", twin.byoh_addresses[0]))

    async def initialised() -> bool:
        return bool((await call(core.read_node, "win-aws")).spec.provider_id)

    await wait_until(initialised, "the providerID")
    node = await call(core.read_node, "win-aws")
    assert node.spec.provider_id == f"aws:///{zone}/{iid}"
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "m5a.large"
    assert node.metadata.labels["topology.kubernetes.io/zone"] == zone

    # no kubelet reports for either Node: both turn Unknown
    await call(ec2.stop_instances, InstanceIds=[iid])

    async def shut_down() -> bool:
        return SHUTDOWN in taints(await call(core.read_node, "win-aws"))

    await wait_until(shut_down, "the shutdown taint")
    assert (await call(core.read_node, "win-aws")).status.conditions[0].status == "Unknown"

    await call(ec2.terminate_instances, InstanceIds=[iid])

    async def deleted() -> bool:
        return await node_or_none(core, "win-aws") is None

    await wait_until(deleted, "the terminated instance's Node to be deleted")
    byoh = await call(core.read_node, "win-byoh")
    assert {c.type: c.status for c in byoh.status.conditions}["Ready"] == "Unknown"
    assert not byoh.spec.provider_id and SHUTDOWN not in taints(byoh)


async def test_a_deleted_azure_vms_node_is_deleted(twin: Twin, core: Any) -> None:
    ca_bundle = str(twin.kube.ca_path)
    nic, vm = await asyncio.to_thread(create_vm, twin.azure, ca_bundle, "win-az-node", "")
    await call(
        core.create_node,
        registered_node("win-az-node", nic.ip_configurations[0].private_ip_address),
    )

    async def initialised() -> bool:
        return bool((await call(core.read_node, "win-az-node")).spec.provider_id)

    await wait_until(initialised, "the providerID")
    node = await call(core.read_node, "win-az-node")
    assert node.spec.provider_id == f"azure://{vm.id}"
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "Standard_D2s_v3"

    async def unknown() -> bool:
        node = await call(core.read_node, "win-az-node")
        return bool(node.status.conditions[0].status == "Unknown")

    await wait_until(unknown, "the silent Node to turn Unknown")
    assert await node_or_none(core, "win-az-node") is not None  # its VM still exists

    def delete_vm() -> None:
        with clients(twin.azure, ca_bundle) as (compute, _network):
            compute.virtual_machines.begin_delete(RG, "win-az-node").result()

    await asyncio.to_thread(delete_vm)

    async def deleted() -> bool:
        return await node_or_none(core, "win-az-node") is None

    await wait_until(deleted, "the deleted VM's Node to be deleted")
