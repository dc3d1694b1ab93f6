"""Helpers for the VM activity tests (fixtures are in `conftest.py`).

`Ec2` is a test's view of its moto account (instances by tag, state, user data);
`new_account` makes a fresh moto account; `kube_env`/`put_*` seed the Kubernetes twin.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import boto3
from kubernetes import client

from activities import kube
from activities.keys import PRIVATE_KEY_FIELD
from sim.cloud.azure import AzureTwin
from sim.k8s.server import KubeTwin
from sim.windows.fleet import HostFleet

REGION = "us-east-1"
CLUSTER = "test-cluster"
CIDR = "127.7.0.0/16"
NAMESPACE = "winfleet"
IMAGE_NAME = "Windows_Server-2019-English-Full-ContainersLatest-2026.11.01"
MOTO_WINDOWS_AMI = "ami-ekswin"  # a public Windows Server 2019 image moto ships


@dataclass
class Ec2:
    endpoint_url: str
    access_key: str
    secret_key: str
    subnet_id: str
    security_group_id: str
    image_id: str

    def client(self) -> Any:
        return boto3.client(
            "ec2",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def instances(self, **filters: str) -> list[dict[str, Any]]:
        """Instances of this account matching tag filters, any state but terminated."""
        flt = [{"Name": f"tag:{k}", "Values": [v]} for k, v in filters.items()]
        flt.append({"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]})
        out = self.client().describe_instances(Filters=flt)
        return [i for r in out["Reservations"] for i in r["Instances"]]

    def state(self, instance_id: str) -> str:
        out = self.client().describe_instances(InstanceIds=[instance_id])
        return str(out["Reservations"][0]["Instances"][0]["State"]["Name"])

    def user_data(self, instance_id: str) -> str:
        attr = self.client().describe_instance_attribute(
            InstanceId=instance_id, Attribute="userData"
        )
        return base64.b64decode(attr["UserData"]["Value"]).decode()


def new_account(endpoint_url: str) -> tuple[str, str]:
    account = str(100000000000 + secrets.randbelow(900000000000))
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="AKIAWINFLEETTEST0000",
        aws_secret_access_key="bootstrap",
    )

    def in_new_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account

    iam.meta.events.register("before-sign.iam.*", in_new_account)
    iam.create_user(UserName="winfleet")
    key = iam.create_access_key(UserName="winfleet")["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


def kube_env(twin: KubeTwin, **extra: str) -> dict[str, str]:
    """Settings env for the Kubernetes twin (plus whatever cloud settings a test adds)."""
    return {
        "KUBECONFIG": str(twin.kubeconfig_path),
        "WINFLEET_NAMESPACE": NAMESPACE,
        "WINFLEET_CLUSTER_ID": CLUSTER,
        **extra,
    }


async def put_configmap(name: str, data: dict[str, str]) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)
    await asyncio.to_thread(kube.core().create_namespaced_config_map, NAMESPACE, body)


async def put_key_secret(name: str, key: asyncssh.SSHKey) -> None:
    pem = key.export_private_key("openssh")
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name),
        data={PRIVATE_KEY_FIELD: base64.b64encode(pem).decode()},
    )
    await asyncio.to_thread(kube.core().create_namespaced_secret, NAMESPACE, body)


@dataclass
class Azure:
    twin: AzureTwin
    fleet: HostFleet
    env: dict[str, str]


def azure_env(twin: AzureTwin, ca_bundle: Path) -> dict[str, str]:
    return {
        "AZURE_ARM_ENDPOINT": twin.arm_endpoint,
        "AZURE_SUBSCRIPTION_ID": twin.subscription_id,
        "AZURE_CA_BUNDLE": str(ca_bundle),
        "AZURE_AUTHORITY_HOST": twin.authority_host,
        "WINFLEET_AZURE_RESOURCE_GROUP": twin.resource_group,
        "WINFLEET_AZURE_LOCATION": twin.location,
        "WINFLEET_AZURE_SUBNET_ID": twin.subnet_id,
    }


def free_port() -> int:
    """A TCP port free on loopback now (the simulated hosts' SSH port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(what: str, check: Callable[[], Any], limit: float = 10.0) -> Any:
    """Wait on a deadline (not a sleep) until `check()` is truthy."""
    deadline = time.monotonic() + limit
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return value


def opened_ports(sim_host: Any) -> list[int]:
    """TCP ports a simulated host's first boot opened in its firewall (not counting the rule
    the OpenSSH Server capability adds when the script installs it)."""
    return sorted(
        int(rule["LocalPort"])
        for rule in sim_host.firewall_rules
        if rule["Name"] != "OpenSSH-Server-In-TCP"
    )
