"""SIMULATED world in one object: cluster, clouds and Windows hosts, plus the admin's setup.

`Twin(state_dir)` starts, sharing one CA: the Kubernetes API server twin (and its Machine Config
Server), a `HostFleet`, the AWS twin and the Azure twin, and the cloud controller manager's node
controllers that join them (`sim.cloud.nodes`: providerIDs, deleting the Node of a terminated
instance or deleted VM, the shutdown taint). `node_monitor_grace_seconds` (40) is the node
lifecycle controller's grace period; tests shorten it. It then does what a cluster admin does
once before installing winfleet: generates the SSH key the operator uses (RSA 2048, OpenSSH
PEM, like `ssh-keygen -t rsa`) and stores it as Secret `cloud-private-key` (key
`private-key.pem`) in namespace `winfleet`; builds the sample payloads (`payload/<version>/`,
one per version); brings up BYOH hosts that already authorize that key and lists them in
ConfigMap `windows-instances`. Last, it writes
`state_dir/env` (shell `KEY=value` lines, atomically) — everything the product needs to reach
the twin, exactly as it would reach production. The private key is only in the cluster Secret.

Used by `python -m sim up` (sim/__main__.py) and tests. Never imported by the product.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import shlex
import shutil
import ssl
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sim.cloud.aws import AwsTwin
from sim.cloud.azure import AzureTwin
from sim.cloud.nodes import CloudNodeLifecycle
from sim.k8s.server import KubeTwin
from sim.payload import PAYLOAD_VERSIONS, build_sample_payloads
from sim.pki import CertificateAuthority
from sim.windows.fleet import HostFleet, HostSpec

log = logging.getLogger(__name__)

NAMESPACE = "winfleet"
PRIVATE_KEY_SECRET = "cloud-private-key"
PRIVATE_KEY_FIELD = "private-key.pem"
INSTANCES_CONFIGMAP = "windows-instances"
ENV_KEYS = (
    "KUBECONFIG",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AZURE_ARM_ENDPOINT",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_CA_BUNDLE",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_AUTHORITY_HOST",
    "AZURE_CREDENTIAL_SCOPE",
    "WINFLEET_MCS_URL",
    "WINFLEET_MCS_CA_BUNDLE",
    "WINFLEET_PAYLOAD_DIR",
    "WINFLEET_PAYLOAD_VERSIONS",
    "WINFLEET_VERSION",
    "WINFLEET_NAMESPACE",
    "WINFLEET_AWS_IMAGE_ID",
    "WINFLEET_AWS_SUBNET_ID",
    "WINFLEET_AWS_SECURITY_GROUP_ID",
    "WINFLEET_AZURE_RESOURCE_GROUP",
    "WINFLEET_AZURE_LOCATION",
    "WINFLEET_AZURE_SUBNET_ID",
    "WINFLEET_BYOH_HOSTS",
)


def new_operator_key() -> tuple[bytes, str]:
    """(private key PEM in OpenSSH format, public key line): RSA 2048, as WMCO docs use."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode() + " winfleet-operator"


class Twin:
    """Everything `python -m sim up` runs; `await Twin(dir).start()`, then source `dir/env`."""

    def __init__(
        self,
        state_dir: str | Path,
        *,
        boot_seconds: float = 3.0,
        byoh_hosts: int = 2,
        aws_cidr: str = "127.10.0.0/16",
        azure_cidr: str = "127.20.0.0/16",
        byoh_cidr: str = "127.30.0.0/16",
        ssh_port: int = 22,
        node_monitor_grace_seconds: float = 40.0,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.boot_seconds = boot_seconds
        self.byoh_count = byoh_hosts
        self.byoh_cidr = byoh_cidr
        self.ca = CertificateAuthority("winfleet-sim-ca")
        self.kube = KubeTwin(
            self.state_dir, ca=self.ca, node_monitor_grace_seconds=node_monitor_grace_seconds
        )
        self.fleet = HostFleet(
            self.state_dir / "fleet", kube_ca_pem=self.ca.ca_pem, ssh_port=ssh_port
        )
        self.aws = AwsTwin(self.fleet, cidr=aws_cidr, boot_seconds=boot_seconds)
        self.azure = AzureTwin(self.fleet, self.ca, cidr=azure_cidr, boot_seconds=boot_seconds)
        self.cloud_nodes = CloudNodeLifecycle(
            self.kube.api, self.aws, self.azure, period=min(5.0, node_monitor_grace_seconds / 4)
        )
        self.byoh_addresses: list[str] = []
        self.public_key = ""
        self.env: dict[str, str] = {}
        self._started: list[Any] = []

    @property
    def env_path(self) -> Path:
        return self.state_dir / "env"

    async def start(self) -> Twin:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.env_path.unlink(missing_ok=True)  # a stale env must not look ready
        # The cluster twin starts empty, so hosts must too: no C:\k or services from last run.
        shutil.rmtree(self.state_dir / "fleet", ignore_errors=True)
        try:
            await self.kube.start()
            self._started.append(self.kube)
            await self.fleet.start()
            self._started.append(self.fleet)
            payload_dir = self.state_dir / "payload"
            build_sample_payloads(payload_dir)  # payload_dir/<version>/ for each version
            private_pem, self.public_key = new_operator_key()
            await self._admin_setup(private_pem)
            del private_pem
            self._started.append(self.aws)  # its stop() copes with a half-done start()
            await self.aws.start()
            self._started.append(self.azure)
            await self.azure.start()
            self.cloud_nodes.start()
            self._started.append(self.cloud_nodes)
        except BaseException:
            await self.stop()
            raise
        self.env = self._env(payload_dir)
        _write_atomically(
            self.env_path, "".join(f"{k}={shlex.quote(v)}\n" for k, v in self.env.items())
        )
        log.info("twin ready: source %s", self.env_path)
        return self

    async def stop(self) -> None:
        self.env_path.unlink(missing_ok=True)
        while self._started:
            part = self._started.pop()
            try:
                await part.stop()
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)

    async def __aenter__(self) -> Twin:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the admin's one-time setup --------------------------------------------------------

    async def _admin_setup(self, private_pem: bytes) -> None:
        net = ipaddress.ip_network(self.byoh_cidr)
        for i in range(1, self.byoh_count + 1):
            address = str(net.network_address + 10 + i)
            await self.fleet.add_host(
                HostSpec(
                    address=address,
                    hostname=f"byoh-{i}",
                    username="Administrator",
                    authorized_keys=(self.public_key,),
                    boot_seconds=0.0,
                    cloud="byoh",
                )
            )
            self.byoh_addresses.append(address)
        await self._kube_create(
            "secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": PRIVATE_KEY_SECRET, "namespace": NAMESPACE},
                "data": {PRIVATE_KEY_FIELD: base64.b64encode(private_pem).decode()},
            },
        )
        await self._kube_create(
            "configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": INSTANCES_CONFIGMAP, "namespace": NAMESPACE},
                "data": {a: "username=Administrator" for a in self.byoh_addresses},
            },
        )

    async def _kube_create(self, resource: str, body: dict[str, Any]) -> None:
        tls = ssl.create_default_context(cadata=self.ca.ca_pem.decode())
        url = f"{self.kube.url}/api/v1/namespaces/{NAMESPACE}/{resource}"
        headers = {"Authorization": f"Bearer {self.kube.admin_token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, json=body, headers=headers, ssl=tls) as resp,
        ):
            if resp.status != 201:
                raise RuntimeError(
                    f"creating {resource}/{body['metadata']['name']} in the "
                    f"cluster twin failed: HTTP {resp.status}"
                )

    def _env(self, payload_dir: Path) -> dict[str, str]:
        ca_bundle = str(self.kube.ca_path)
        return {
            "KUBECONFIG": str(self.kube.kubeconfig_path),
            "AWS_ENDPOINT_URL": self.aws.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.aws.access_key,
            "AWS_SECRET_ACCESS_KEY": self.aws.secret_key,
            "AWS_DEFAULT_REGION": self.aws.region,
            "AZURE_ARM_ENDPOINT": self.azure.arm_endpoint,
            "AZURE_SUBSCRIPTION_ID": self.azure.subscription_id,
            "AZURE_CA_BUNDLE": ca_bundle,
            "AZURE_TENANT_ID": self.azure.tenant_id,
            "AZURE_CLIENT_ID": self.azure.client_id,
            "AZURE_CLIENT_SECRET": self.azure.client_secret,
            "AZURE_AUTHORITY_HOST": self.azure.authority_host,
            "AZURE_CREDENTIAL_SCOPE": self.azure.credential_scope,
            "WINFLEET_MCS_URL": self.kube.mcs_url,
            "WINFLEET_MCS_CA_BUNDLE": ca_bundle,
            "WINFLEET_PAYLOAD_DIR": str(payload_dir),
            "WINFLEET_PAYLOAD_VERSIONS": ",".join(PAYLOAD_VERSIONS),  # oldest first
            "WINFLEET_VERSION": PAYLOAD_VERSIONS[-1],  # the default: the newest
            "WINFLEET_NAMESPACE": NAMESPACE,
            "WINFLEET_AWS_IMAGE_ID": self.aws.image_id,
            "WINFLEET_AWS_SUBNET_ID": self.aws.subnet_id,
            "WINFLEET_AWS_SECURITY_GROUP_ID": self.aws.security_group_id,
            "WINFLEET_AZURE_RESOURCE_GROUP": self.azure.resource_group,
            "WINFLEET_AZURE_LOCATION": self.azure.location,
            "WINFLEET_AZURE_SUBNET_ID": self.azure.subnet_id,
            "WINFLEET_BYOH_HOSTS": ",".join(self.byoh_addresses),
        }


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
