"""SIMULATED AWS EC2: moto in server mode, plus host bring-up for running instances.

`AwsTwin` starts moto's threaded server on loopback, gives itself a fresh AWS account (an IAM
user and access key, so two twins in one process never see each other's instances), and seeds
what an admin would have: a Windows Server 2019 AMI, a VPC and subnet whose CIDR is a loopback
range (so instance private IPs are addresses a simulated host can listen on) and a security
group. A watcher polls DescribeInstances: a `running` instance becomes a simulated Windows host
in the `HostFleet` (from an image without the OpenSSH Server; its user data runs at first boot,
as SYSTEM, as EC2Launch runs it); a stopped instance's host powers off and keeps its disk and
private IP, and boots again (same disk, Automatic services) when the instance starts; a
terminated one is removed and its disk wiped.

Used by `sim.twin.Twin` and `tests/sim_cloud/`. The product only sees `endpoint_url`, the
region and the access key (the `env` file).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from moto.ec2.models import ec2_backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from sim.cloud import moto_idempotency
from sim.cloud.faults import FaultyWsgi, aws_faults
from sim.cloud.hosts import (
    log_bring_up_failure,
    power_off,
    power_on,
    remove_host,
    succeeded,
    windows_build,
)
from sim.windows.fleet import HostFleet, HostSpec

log = logging.getLogger(__name__)

# moto ships this public Windows Server 2019 image; the twin launches it once to create its own
# image with a current, WMCO-style name (moto's RegisterImage cannot set the platform).
_MOTO_WINDOWS_2019_AMI = "ami-ekswin"
IMAGE_NAME = "Windows_Server-2019-English-Full-ContainersLatest-2026.11.12"
SECURITY_GROUP_NAME = "winfleet-windows"
_WINDOWS_PORTS = (22, 10250, 9182)  # ssh, kubelet, windows_exporter (WMCO opens the same)
_DOWN_STATES = {"stopping", "stopped"}
_GONE_STATES = {"shutting-down", "terminated"}


def ec2_hostname(instance_id: str) -> str:
    """The Windows computer name EC2 gives an instance: `EC2AMAZ-` + 7 characters (stable)."""
    digest = base64.b32encode(hashlib.sha256(instance_id.encode()).digest()).decode()
    return "EC2AMAZ-" + digest[:7]


@dataclass
class _Hosted:
    address: str
    bring_up: asyncio.Task[Any]
    powered: bool = True


class AwsTwin:
    """moto EC2 server on `host:port` whose running instances become simulated Windows hosts."""

    def __init__(
        self,
        fleet: HostFleet,
        *,
        cidr: str = "127.10.0.0/16",
        boot_seconds: float = 3.0,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        poll_interval: float = 0.3,
    ) -> None:
        self.fleet = fleet
        self.cidr = cidr
        self._prefix_length = ipaddress.ip_network(cidr).prefixlen
        self.boot_seconds = boot_seconds
        self.region = region
        self.poll_interval = poll_interval
        self._host, self._port = host, port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.faults = (
            aws_faults()
        )  # e.g. faults.add("RunInstances", 500, "InsufficientInstanceCapacity")
        self._watcher: asyncio.Task[None] | None = None
        self._hosted: dict[str, _Hosted] = {}  # instance id -> host
        self._image_names: dict[str, str] = {}
        self.endpoint_url = ""
        self.account_id = ""
        self.access_key = ""
        self.secret_key = ""
        self.image_id = ""
        self.vpc_id = ""
        self.subnet_id = ""
        self.security_group_id = ""

    @property
    def hosted(self) -> dict[str, str]:
        """Instance id -> private IP of every instance whose simulated host is in the fleet
        (`fleet.get(ip)` works; SSH is up once its boot time has passed)."""
        return {iid: h.address for iid, h in self._hosted.items() if succeeded(h.bring_up)}

    def client(self, service: str = "ec2") -> Any:
        """A boto3 client for this twin with its credentials (tests and the twin itself)."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    async def start(self) -> None:
        moto_idempotency.install()
        # werkzeug logs every request at INFO on its own handler unless a level is set.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # What moto's ThreadedMotoServer does, with the fault wrapper around the app.
        app = FaultyWsgi(DomainDispatcherApplication(create_backend_app), self.faults)
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="aws-twin-moto", daemon=True
        )
        self._thread.start()
        self.endpoint_url = f"http://{self._host}:{self._server.server_port}"
        await asyncio.to_thread(self._seed)
        self._ec2 = self.client()
        self._watcher = asyncio.create_task(self._watch(), name="aws-twin-watcher")
        log.info(
            "AWS twin ready at %s (account %s, subnet %s)",
            self.endpoint_url,
            self.account_id,
            self.cidr,
        )

    async def stop(self) -> None:
        if self._watcher:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._shut_down_all()
        if self._server and self._thread:
            await asyncio.to_thread(self._server.shutdown)
            await asyncio.to_thread(self._thread.join)
            self._server.server_close()
            self._server = None

    async def __aenter__(self) -> AwsTwin:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- seeding (as an admin would, through the API) -------------------------------------

    def _seed(self) -> None:
        self.account_id = str(100000000000 + secrets.randbelow(900000000000))
        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="AKIASIMBOOTSTRAP0000",
            aws_secret_access_key="bootstrap",
        )

        def in_new_account(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = self.account_id

        iam.meta.events.register("before-sign.iam.*", in_new_account)
        iam.create_user(UserName="winfleet")
        key = iam.create_access_key(UserName="winfleet")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

        ec2 = self.client()
        self.vpc_id = ec2.create_vpc(CidrBlock=self.cidr)["Vpc"]["VpcId"]
        self.subnet_id = ec2.create_subnet(VpcId=self.vpc_id, CidrBlock=self.cidr)["Subnet"][
            "SubnetId"
        ]
        ec2.create_tags(
            Resources=[self.vpc_id, self.subnet_id], Tags=[{"Key": "Name", "Value": "winfleet"}]
        )
        self.security_group_id = ec2.create_security_group(
            GroupName=SECURITY_GROUP_NAME, Description="Windows nodes", VpcId=self.vpc_id
        )["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=self.security_group_id,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": p,
                    "ToPort": p,
                    "IpRanges": [{"CidrIp": self.cidr}],
                }
                for p in _WINDOWS_PORTS
            ],
        )
        seed = ec2.run_instances(
            ImageId=_MOTO_WINDOWS_2019_AMI,
            MinCount=1,
            MaxCount=1,
            SubnetId=self.subnet_id,
        )["Instances"][0]["InstanceId"]
        self.image_id = ec2.create_image(
            InstanceId=seed,
            Name=IMAGE_NAME,
            Description="Microsoft Windows Server 2019 with Containers Locale English AMI "
            "(SIMULATED)",
        )["ImageId"]
        ec2.terminate_instances(InstanceIds=[seed])

    # -- watcher ---------------------------------------------------------------------------

    def _describe(self) -> dict[str, dict[str, Any]]:
        """Every instance's state, private IP and image, read straight from moto's in-process
        backend: the watcher polls often, and serializing 50 instances to EC2 XML and back
        several times a second would eat the CPU the simulated hosts need."""
        backend = ec2_backends[self.account_id][self.region]
        for _ in range(5):
            try:
                instances = list(backend.all_instances())
                break
            except RuntimeError:  # moto's server thread changed the dicts under us; read again
                continue
        else:
            instances = []
        return {
            inst.id: {
                "State": {"Name": inst._state.name},
                "PrivateIpAddress": inst.private_ip,
                "ImageId": inst.image_id,
                "InstanceType": inst.instance_type,
                "Placement": {"AvailabilityZone": inst.placement.zone},
            }
            for inst in instances
        }

    def instances(self) -> dict[str, dict[str, Any]]:
        """Every instance of the twin's account (DescribeInstances shape, without the HTTP
        round trip): what the simulated cloud controller manager asks EC2 (`sim.cloud.nodes`)."""
        return self._describe() if self.account_id else {}

    def _image_name(self, image_id: str) -> str:
        if image_id not in self._image_names:
            images = self._ec2.describe_images(ImageIds=[image_id])["Images"]
            self._image_names[image_id] = images[0].get("Name", "") if images else ""
        return self._image_names[image_id]

    def _user_data(self, instance_id: str) -> str | None:
        attr = self._ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        value = attr.get("UserData", {}).get("Value")
        return base64.b64decode(value).decode("utf-8", "replace") if value else None

    async def _watch(self) -> None:
        while True:
            try:
                await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep watching; a hiccup must not stop host bring-up
                log.exception("AWS twin: reconciling instances failed")
            await asyncio.sleep(self.poll_interval)

    async def _reconcile(self) -> None:
        instances = await asyncio.to_thread(self._describe)
        state = {iid: inst["State"]["Name"] for iid, inst in instances.items()}
        # Removals first: EC2 (and moto) reuse a terminated instance's private IP.
        for iid in [i for i in self._hosted if state.get(i, "terminated") in _GONE_STATES]:
            await self._take_down(iid)
        for iid, hosted in self._hosted.items():
            if state.get(iid) in _DOWN_STATES and hosted.powered:
                log.info("AWS twin: instance %s stopped, powering off %s", iid, hosted.address)
                hosted.powered = False
                await power_off(hosted.bring_up)
            elif state.get(iid) == "running" and not hosted.powered:
                log.info("AWS twin: instance %s started, booting %s", iid, hosted.address)
                hosted.powered = True
                power_on(hosted.bring_up)
        for iid, inst in instances.items():
            if iid in self._hosted or state[iid] != "running" or not inst.get("PrivateIpAddress"):
                continue
            user_data = await asyncio.to_thread(self._user_data, iid)
            image_name = await asyncio.to_thread(self._image_name, inst["ImageId"])
            spec = HostSpec(
                address=inst["PrivateIpAddress"],
                hostname=ec2_hostname(iid),
                username="Administrator",
                user_data=user_data,
                boot_seconds=self.boot_seconds,
                os_build=windows_build(image_name),
                cloud="aws",
                prefix_length=self._prefix_length,
            )
            log.info("AWS twin: instance %s running at %s, booting host", iid, spec.address)
            task = asyncio.create_task(self.fleet.add_host(spec), name=f"aws-host-{iid}")
            task.add_done_callback(log_bring_up_failure)
            self._hosted[iid] = _Hosted(spec.address, task)

    async def _take_down(self, iid: str) -> None:
        hosted = self._hosted.pop(iid)
        log.info("AWS twin: instance %s terminated, removing host %s", iid, hosted.address)
        await remove_host(self.fleet, hosted.address, hosted.bring_up, wipe_disk=True)

    async def _shut_down_all(self) -> None:
        """The twin stops: every host leaves the fleet; the instances' disks stay."""
        for iid in list(self._hosted):
            hosted = self._hosted.pop(iid)
            await remove_host(self.fleet, hosted.address, hosted.bring_up, wipe_disk=False)
