"""Whose VM is it: cluster, pool and node tags, the run that launched it, and its host-key pin.

Two clusters or two pools in one account never reuse or delete each other's machines; only a
VM this very workflow run launched counts as `created_by_us`; terminating a VM forgets the SSH
host-key pin of its address, so a new VM there is trusted on first use while a changed key on
a live host is still refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from cloud_twins import (
    CLUSTER,
    NAMESPACE,
    REGION,
    Azure,
    Ec2,
    eventually,
    free_port,
    kube_env,
    put_key_secret,
)
from kubernetes import client
from reimaged import until_connections_dropped
from temporalio.testing import ActivityEnvironment

from activities import hostkeys, kube
from activities.cloud import aws, ownership
from activities.cloud import azure as az
from activities.cloud.ownership import Owner
from activities.cloud.vm import CreateVmInput, create_vm, terminate_vm
from activities.config import Settings, use_settings
from activities.contracts import AwsMachineSpec, AzureMachineSpec, HostRef, Platform
from activities.errors import CloudRequestRejected, HostKeyMismatch
from activities.ssh import open_session
from sim.cloud.aws import AwsTwin
from sim.k8s.server import KubeTwin
from sim.windows.fleet import HostFleet, HostSpec

OTHER_CLUSTER = "someone-elses-cluster"


# --- AWS -------------------------------------------------------------------------------------
def aws_spec(ec2: Ec2) -> AwsMachineSpec:
    return AwsMachineSpec(subnet_id=ec2.subnet_id, security_group_ids=(ec2.security_group_id,))


async def launch(ec2: Ec2, owner: Owner, public_key: str, run: str = "run-1") -> HostRef:
    return await ActivityEnvironment().run(
        aws.create_aws_instance, owner, aws_spec(ec2), public_key, incarnation=run
    )


async def test_an_instance_of_another_cluster_is_never_reused_or_terminated(
    aws_env: Ec2, public_key: str
) -> None:
    theirs = await launch(aws_env, Owner(OTHER_CLUSTER, "pool-a", "win-own1"), public_key)
    ours = await launch(aws_env, Owner(CLUSTER, "pool-a", "win-own1"), public_key)
    assert ours.instance_id != theirs.instance_id and theirs.instance_id is not None

    with pytest.raises(CloudRequestRejected, match=f"tagged for cluster '{OTHER_CLUSTER}'"):
        await aws.terminate_aws_instance(
            theirs.instance_id, REGION, Owner(CLUSTER, "pool-a", "win-own1")
        )
    assert await ActivityEnvironment().run(terminate_vm, ours) is True

    assert aws_env.state(theirs.instance_id) == "running"
    assert aws_env.state(str(ours.instance_id)) in ("shutting-down", "terminated")


async def test_an_instance_of_another_pool_is_never_terminated(
    aws_env: Ec2, public_key: str
) -> None:
    theirs = await launch(aws_env, Owner(CLUSTER, "pool-b", "win-own2"), public_key)
    assert theirs.instance_id is not None
    forged = HostRef(
        Platform.AWS,
        theirs.address,
        theirs.username,
        theirs.instance_id,
        created_by_us=True,
        region=REGION,
        pool="pool-a",
        node_name="win-own2",
    )

    with pytest.raises(Exception, match="pool 'pool-b'") as err:
        await ActivityEnvironment().run(terminate_vm, forged)
    assert "will not terminate" in str(err.value)
    assert aws_env.state(theirs.instance_id) == "running"


async def test_an_instance_an_earlier_run_launched_is_reused_but_not_created_by_this_run(
    aws_env: Ec2, public_key: str
) -> None:
    owner = Owner(CLUSTER, "pool-a", "win-own3")
    first = await launch(aws_env, owner, public_key, run="run-1")
    again = await launch(aws_env, owner, public_key, run="run-2")

    assert again.instance_id == first.instance_id
    assert (first.created_by_us, again.created_by_us) == (True, False)
    assert await ActivityEnvironment().run(terminate_vm, again) is False
    assert aws_env.state(str(first.instance_id)) == "running"


# --- Azure -----------------------------------------------------------------------------------
def azure_spec(a: Azure) -> AzureMachineSpec:
    t = a.twin
    return AzureMachineSpec(
        resource_group=t.resource_group, location=t.location, subnet_id=t.subnet_id
    )


async def create_az(a: Azure, owner: Owner, public_key: str, run: str = "run-1") -> HostRef:
    return await ActivityEnvironment().run(
        az.create_azure_vm, owner, azure_spec(a), public_key, run=run
    )


def arm_names(a: Azure) -> tuple[list[str], list[str]]:
    vms = sorted(vm["name"] for vm in a.twin.compute.list(None))
    nics = sorted(nic["name"] for nic in a.twin.network.list_nics(a.twin.resource_group))
    return vms, nics


@pytest.mark.parametrize(
    ("theirs", "words"),
    [
        (Owner(CLUSTER, "pool-b", "win-az21"), "pool 'pool-b'"),
        (Owner(OTHER_CLUSTER, "pool-a", "win-az21"), f"cluster '{OTHER_CLUSTER}'"),
    ],
)
async def test_a_same_named_vm_of_another_pool_or_cluster_is_refused_saying_whose_it_is(
    azure: Azure, public_key: str, theirs: Owner, words: str
) -> None:
    await create_az(azure, theirs, public_key)
    ours = Owner(CLUSTER, "pool-a", "win-az21")

    with pytest.raises(CloudRequestRejected, match=words):
        await create_az(azure, ours, public_key)
    with pytest.raises(CloudRequestRejected, match=words):
        await az.delete_azure_vm(azure.twin.resource_group, ours)

    assert arm_names(azure) == (["win-az21"], ["win-az21-nic"])
    assert azure.twin.compute.get(azure.twin.resource_group, "win-az21")["tags"][
        "winfleet-pool"
    ] == (theirs.pool)


async def test_a_delete_checks_the_nic_too_and_then_deletes_neither(
    azure: Azure, public_key: str
) -> None:
    owner = Owner(CLUSTER, "pool-a", "win-az22")
    await create_az(azure, owner, public_key)
    nic = azure.twin.network.get_nic(azure.twin.resource_group, "win-az22-nic")
    nic["tags"] = {**nic["tags"], "winfleet-pool": "pool-b"}  # someone else's NIC now

    with pytest.raises(CloudRequestRejected, match=r"NIC .*win-az22-nic.*pool 'pool-b'"):
        await az.delete_azure_vm(azure.twin.resource_group, owner)

    assert arm_names(azure) == (["win-az22"], ["win-az22-nic"])


async def test_a_vm_an_earlier_run_created_is_not_created_by_this_run_nor_released(
    azure: Azure, public_key: str
) -> None:
    owner = Owner(CLUSTER, "pool-a", "win-az23")
    first = await create_az(azure, owner, public_key, run="run-1")
    again = await create_az(azure, owner, public_key, run="run-2")

    assert again.instance_id == first.instance_id
    assert (first.created_by_us, again.created_by_us) == (True, False)
    assert await az.release_azure_vm(azure.twin.resource_group, owner, "run-2") is None
    assert arm_names(azure) == (["win-az23"], ["win-az23-nic"])
    assert await az.release_azure_vm(azure.twin.resource_group, owner, "run-1") == first.ip
    assert arm_names(azure) == ([], [])


# --- the cluster's identity ------------------------------------------------------------------
@pytest.fixture
async def unnamed_cluster(kube_twin: KubeTwin) -> AsyncIterator[KubeTwin]:
    """The Kubernetes twin with WINFLEET_CLUSTER_ID unset."""
    env = kube_env(kube_twin)
    del env["WINFLEET_CLUSTER_ID"]
    use_settings(Settings.from_env(env))
    yield kube_twin


async def test_without_a_setting_the_cluster_is_named_by_its_api_server_host(
    unnamed_cluster: KubeTwin,
) -> None:
    assert await ownership.cluster_id() == "127.0.0.1"


async def test_on_openshift_the_cluster_is_named_by_its_infrastructure_name(
    unnamed_cluster: KubeTwin,
) -> None:
    ext = client.ApiextensionsV1Api(kube.api_client())
    crd: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "infrastructures.config.openshift.io"},
        "spec": {
            "group": "config.openshift.io",
            "scope": "Cluster",
            "names": {
                "plural": "infrastructures",
                "singular": "infrastructure",
                "kind": "Infrastructure",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    await kube.call_json("create CRD", ext.create_custom_resource_definition, crd)
    infra = {
        "apiVersion": "config.openshift.io/v1",
        "kind": "Infrastructure",
        "metadata": {"name": "cluster"},
        "status": {"infrastructureName": "ocp-7x2kq"},
    }
    await kube.call_json(
        "create infrastructure",
        kube.custom_objects().create_cluster_custom_object,
        "config.openshift.io",
        "v1",
        "infrastructures",
        infra,
    )

    assert await ownership.cluster_id() == "ocp-7x2kq"


# --- host-key pins follow the VM -------------------------------------------------------------
@pytest.fixture
async def ec2_with_hosts(
    tmp_path: Path, kube_twin: KubeTwin, ssh_key: asyncssh.SSHKey, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[AwsTwin, HostFleet]]:
    """EC2 (moto) whose running instances boot simulated hosts, plus the Kubernetes twin."""
    port = free_port()
    fleet = HostFleet(tmp_path / "hosts", ssh_port=port)
    await fleet.start()
    twin = AwsTwin(fleet, cidr="127.7.150.0/24", boot_seconds=0.0, poll_interval=0.05)
    await twin.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", twin.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", twin.secret_key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    env = kube_env(
        kube_twin,
        AWS_ENDPOINT_URL=twin.endpoint_url,
        AWS_REGION=twin.region,
        WINFLEET_AWS_SUBNET_ID=twin.subnet_id,
        WINFLEET_AWS_SECURITY_GROUP_ID=twin.security_group_id,
        WINFLEET_SSH_PORT=str(port),
        WINFLEET_SSH_CONNECT_TIMEOUT="5",
    )
    use_settings(Settings.from_env(env))
    await put_key_secret("cloud-private-key", ssh_key)
    try:
        yield twin, fleet
    finally:
        use_settings(Settings.from_env({}))
        await twin.stop()
        await fleet.stop()


async def onboard_vm(twin: AwsTwin, node: str) -> HostRef:
    """create_vm for `node` and wait until its host answers SSH (the key is pinned then)."""
    inp = CreateVmInput("pool-a", node, Platform.AWS, aws=AwsMachineSpec())
    host = await ActivityEnvironment().run(create_vm, inp)
    await eventually("the instance's host", lambda: host.instance_id in twin.hosted)
    await twin.fleet.get(host.address).wait_up()
    async with open_session(
        host.address, host.username, private_key_secret="cloud-private-key", node_name=node
    ) as session:
        assert session.presented_host_key == await hostkeys.pinned(host.address, node)
    return host


async def pins() -> dict[str, str]:
    try:
        cm = await kube.call(
            "read pins",
            kube.core().read_namespaced_config_map,
            hostkeys.CONFIGMAP,
            NAMESPACE,
        )
    except kube.NotFound:
        return {}
    return dict(cm.data or {})


async def session_to(address: str, node: str) -> str:
    """Log in as winfleet does (pinning on first use); the host key the host presented."""
    async with open_session(
        address, "Administrator", private_key_secret="cloud-private-key", node_name=node
    ) as session:
        return session.presented_host_key


async def test_a_new_vm_at_a_terminated_vms_address_is_trusted_while_a_live_host_is_not(
    ec2_with_hosts: tuple[AwsTwin, HostFleet], public_key: str
) -> None:
    twin, fleet = ec2_with_hosts
    old = await onboard_vm(twin, "win-reuse1")
    old_key = (await pins())[old.address]

    assert await ActivityEnvironment().run(terminate_vm, old) is True
    assert old.address not in await pins()  # forgotten with the VM
    disk = fleet.state_dir / "hosts" / old.address
    await eventually("the terminated instance's disk to be gone", lambda: not disk.exists())

    # EC2 hands a freed private IP out again: a new machine, a new host key, the same address.
    await fleet.add_host(HostSpec(old.address, "WIN-REUSE2", authorized_keys=(public_key,)))
    new_key = await session_to(old.address, "win-reuse2")
    assert new_key != old_key
    assert (await pins())[old.address] == new_key

    # A live host whose key changes is still refused.
    fleet.get(old.address).faults.change_host_key()
    await until_connections_dropped(old.address)
    with pytest.raises(HostKeyMismatch, match=old.address):
        await session_to(old.address, "win-reuse2")
