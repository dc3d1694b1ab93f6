"""Fixtures for the VM activities: moto's EC2 server, the Kubernetes twin, an SSH key.

`ec2` starts moto in server mode on loopback once per module, in a fresh AWS account of its own
(an IAM user's access key selects it, so other tests' instances never show up here), with a VPC
and subnet in 127.7.0.0/16 and an account-owned Windows Server 2019 "ContainersLatest" image.
`aws_env` points winfleet's settings and the boto3 credential chain at it for one test.
`kube_twin` starts `sim.k8s.server.KubeTwin` and points the settings' kubeconfig at it (with
WINFLEET_CLUSTER_ID=test-cluster): VM activities tag the cluster and forget host-key pins there.
`azure` starts `sim.cloud.azure.AzureTwin` (ARM + AAD) whose VMs boot simulated hosts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import boto3
import pytest
from cloud_twins import (
    CIDR,
    IMAGE_NAME,
    MOTO_WINDOWS_AMI,
    REGION,
    Azure,
    Ec2,
    azure_env,
    free_port,
    kube_env,
    new_account,
)
from moto.server import ThreadedMotoServer

from activities import kube
from activities.config import Settings, use_settings
from activities.keys import public_key_openssh
from sim.cloud import moto_idempotency
from sim.cloud.azure import AzureTwin
from sim.k8s.server import KubeTwin
from sim.pki import CertificateAuthority
from sim.windows.fleet import HostFleet


@pytest.fixture(scope="module")
def ec2() -> Iterator[Ec2]:
    moto_idempotency.install()  # RunInstances honours ClientToken, as real EC2 does
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        access, secret = new_account(url)
        c = boto3.client(
            "ec2",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
        )
        vpc = c.create_vpc(CidrBlock=CIDR)["Vpc"]["VpcId"]
        subnet = c.create_subnet(VpcId=vpc, CidrBlock=CIDR)["Subnet"]["SubnetId"]
        sg = c.create_security_group(GroupName="windows", Description="nodes", VpcId=vpc)
        # moto's RegisterImage cannot mark an image Windows; an image of a Windows instance is.
        seed = c.run_instances(ImageId=MOTO_WINDOWS_AMI, MinCount=1, MaxCount=1, SubnetId=subnet)
        seed_id = seed["Instances"][0]["InstanceId"]
        image = c.create_image(InstanceId=seed_id, Name=IMAGE_NAME)["ImageId"]
        c.terminate_instances(InstanceIds=[seed_id])
        yield Ec2(url, access, secret, subnet, sg["GroupId"], image)
    finally:
        server.stop()


@pytest.fixture
def aws_env(ec2: Ec2, kube_twin: KubeTwin, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ec2]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ec2.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ec2.secret_key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    env = kube_env(kube_twin, AWS_ENDPOINT_URL=ec2.endpoint_url, AWS_REGION=REGION)
    use_settings(Settings.from_env(env))
    yield ec2
    use_settings(Settings.from_env({}))


@pytest.fixture
def ssh_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def public_key(ssh_key: asyncssh.SSHKey) -> str:
    return public_key_openssh(ssh_key)


@pytest.fixture
async def kube_twin(tmp_path: Path) -> AsyncIterator[KubeTwin]:
    """The Kubernetes twin, with winfleet's settings pointing at it (tests may add to them)."""
    twin = KubeTwin(tmp_path / "kube")
    await twin.start()
    use_settings(Settings.from_env(kube_env(twin)))
    try:
        yield twin
    finally:
        with contextlib.suppress(Exception):  # the test may have replaced the settings
            kube.api_client().close()
        use_settings(Settings.from_env({}))
        await twin.stop()


@pytest.fixture
async def azure(
    tmp_path: Path, kube_twin: KubeTwin, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Azure]:
    """`AzureTwin` (ARM + AAD over HTTPS) with a host fleet; settings and the service
    principal's environment point at it."""
    ca = CertificateAuthority("winfleet-test-azure-ca")
    fleet = HostFleet(tmp_path / "hosts", ssh_port=free_port())
    await fleet.start()
    twin = AzureTwin(fleet, ca, cidr="127.7.200.0/24", boot_seconds=0.0, provision_seconds=0.2)
    await twin.start()
    bundle = tmp_path / "azure-ca.pem"
    bundle.write_bytes(ca.ca_pem)
    monkeypatch.setenv("AZURE_TENANT_ID", twin.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", twin.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", twin.client_secret)
    env = {**azure_env(twin, bundle), **kube_env(kube_twin)}
    use_settings(Settings.from_env(env))
    try:
        yield Azure(twin, fleet, env)
    finally:
        use_settings(Settings.from_env({}))
        await twin.stop()
        await fleet.stop()
