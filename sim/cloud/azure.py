"""SIMULATED Azure: an HTTPS ARM endpoint (resource groups, Compute VMs, Network) plus AAD tokens.

`AzureTwin` serves, on one loopback HTTPS port with a certificate from the twin CA:
- the AAD token endpoint for one tenant/app registration (`sim.cloud.azure_aad`);
- the ARM subset used through `azure-mgmt-resource` (resource groups), `azure-mgmt-compute`
  (VMs, power actions, extensions) and `azure-mgmt-network` (VNets, subnets, NICs), with
  bearer-token checks, ARM error bodies and the real long-running operation protocol
  (`sim.cloud.azure_arm`, `azure_network`, `azure_compute`, `azure_extensions`).
Seeded at start-up (so `make run` and the product's defaults work): resource group
`winfleet-rg` in `eastus`, vnet `winfleet-vnet`, subnet `windows` whose prefix is a loopback
range. A VM that reaches Succeeded becomes a simulated Windows host (address = its NIC's private
IP, hostname = osProfile.computerName, user = adminUsername, an image without the OpenSSH
Server, custom data written to `C:\\AzureData\\CustomData.bin` and, as on Azure, nothing run at
first boot); its CustomScriptExtension (`sim.cloud.azure_extensions`) runs a command on the
host as SYSTEM. powerOff/deallocate power the host off (disk kept), start boots it again,
restart reboots it; deleting the VM removes the host and wipes its disk.

Client construction that works against it (the product copies this):

    cred = ClientSecretCredential(tenant_id, client_id, client_secret,
                                  authority=twin.authority_host,        # https://127.0.0.1:PORT
                                  disable_instance_discovery=True,
                                  connection_verify=ca_bundle_path)
    ComputeManagementClient(cred, subscription_id, base_url=twin.arm_endpoint,
                            credential_scopes=[twin.credential_scope],
                            connection_verify=ca_bundle_path)
    (same kwargs for NetworkManagementClient)

Used by `sim.twin.Twin` and `tests/sim_cloud/`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import socket
import ssl
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from sim.cloud.azure_aad import TokenIssuer
from sim.cloud.azure_arm import ArmError, Operations, error_response, json_body
from sim.cloud.azure_compute import Compute
from sim.cloud.azure_extensions import Extensions
from sim.cloud.azure_network import Network, group_id
from sim.cloud.faults import azure_faults
from sim.cloud.hosts import (
    log_bring_up_failure,
    power_off,
    power_on,
    remove_host,
    succeeded,
    windows_build,
)
from sim.pki import CertificateAuthority
from sim.windows.fleet import HostFleet, HostSpec
from sim.windows.host import SimulatedWindowsHost

log = logging.getLogger(__name__)

CREDENTIAL_SCOPE = "https://management.azure.com/.default"
_SUB = r"^/subscriptions/(?P<sub>[^/]+)"
_RG = _SUB + r"/resourceGroups/(?P<rg>[^/]+)"


@dataclass
class _Hosted:
    address: str
    bring_up: asyncio.Task[Any]


class AzureTwin:
    """ARM + AAD on `https://host:port`; VMs that reach Succeeded become simulated hosts."""

    def __init__(
        self,
        fleet: HostFleet,
        ca: CertificateAuthority,
        *,
        cidr: str = "127.20.0.0/16",
        boot_seconds: float = 3.0,
        provision_seconds: float = 1.0,
        subscription_id: str | None = None,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        location: str = "eastus",
        resource_group: str = "winfleet-rg",
        vnet: str = "winfleet-vnet",
        subnet: str = "windows",
    ) -> None:
        self.fleet, self.ca = fleet, ca
        self.cidr = cidr
        self.boot_seconds = boot_seconds
        self.subscription_id = subscription_id or str(uuid.uuid4())
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.location = location
        self.resource_group = resource_group
        self._host, self._port = host, port
        self.url = ""
        self.credential_scope = CREDENTIAL_SCOPE
        self.aad = TokenIssuer(self.tenant_id, self.client_id, self.client_secret)
        self.ops = Operations(lambda: self.url, self.subscription_id)
        self.network = Network(self.subscription_id, self.ops)
        self.compute = Compute(
            self.subscription_id,
            self.ops,
            self.network,
            provision_seconds=provision_seconds,
            on_ready=self._vm_ready,
            on_deleted=self._vm_deleted,
            on_power=self._vm_power,
        )
        self.extensions = Extensions(self.ops, self.compute, self._host_of)
        self.groups: dict[str, dict[str, Any]] = {}
        self._add_group(resource_group)
        self.subnet_id = self.network.seed_vnet(resource_group, vnet, subnet, cidr, location)
        self._hosted: dict[str, _Hosted] = {}  # vm id (lower) -> host
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[Any] = set()  # aiohttp RequestHandlers (not weak-referenceable)
        self._routes = self._route_table()
        # e.g. faults.add("PUT virtualMachines", 429, "TooManyRequests", "...", count=2)
        self.faults = azure_faults()

    # -- what clients need -----------------------------------------------------------------

    @property
    def arm_endpoint(self) -> str:
        return self.url

    @property
    def authority_host(self) -> str:
        return self.url

    @property
    def hosted(self) -> dict[str, str]:
        """VM name -> private IP of every VM whose simulated host is in the fleet
        (`fleet.get(ip)` works; SSH is up once its boot time has passed)."""
        return {
            k.rsplit("/", 1)[-1]: h.address
            for k, h in self._hosted.items()
            if succeeded(h.bring_up)
        }

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        port = sock.getsockname()[1]
        self.url = f"https://{self._host}:{port}"
        cert, key = self.ca.issue_server_cert(dns_names=("localhost",), ip_addresses=(self._host,))
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "tls.crt").write_bytes(cert)
            (Path(tmp) / "tls.key").write_bytes(key)
            tls.load_cert_chain(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.add_routes(self.aad.routes(self.url))
        app.router.add_route("*", "/{tail:.*}", self._arm)
        app.on_response_prepare.append(_request_ids)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        handler_factory = self._runner.server
        assert handler_factory is not None

        def track() -> Any:
            handler = handler_factory()
            # forget handlers whose connection is over (aiohttp drops `_manager` then)
            self._handlers.difference_update(
                [h for h in self._handlers if getattr(h, "_manager", None) is None]
            )
            self._handlers.add(handler)
            return handler

        self._server = await asyncio.get_running_loop().create_server(track, sock=sock, ssl=tls)
        log.info(
            "Azure twin ready at %s (subscription %s, subnet %s)",
            self.url,
            self.subscription_id,
            self.cidr,
        )

    async def stop(self) -> None:
        await self.ops.stop()
        for key in list(self._hosted):
            await self._take_down(key)
        if self._server:
            self._server.close()
            # Clients with pooled keep-alive connections never answer the TLS close_notify;
            # abort them so no socket outlives the twin.
            for handler in self._handlers:
                if handler.transport is not None:
                    handler.transport.abort()
            self._handlers.clear()
            await self._server.wait_closed()
            self._server = None
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> AzureTwin:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- hosts -----------------------------------------------------------------------------

    async def _vm_ready(self, vm: dict[str, Any], address: str, custom_data: bytes | None) -> None:
        os_profile = vm["properties"]["osProfile"]
        image = vm["properties"]["storageProfile"].get("imageReference") or {}
        spec = HostSpec(
            address=address,
            hostname=os_profile["computerName"],
            username=os_profile["adminUsername"],
            custom_data=custom_data,
            boot_seconds=self.boot_seconds,
            os_build=windows_build(str(image.get("sku") or image.get("id") or "")),
            cloud="azure",
            prefix_length=self.network.prefix_length(address),
        )
        log.info("Azure twin: VM %s succeeded at %s, booting host", vm["name"], address)
        task = asyncio.create_task(self.fleet.add_host(spec), name=f"azure-host-{vm['name']}")
        task.add_done_callback(log_bring_up_failure)
        self._hosted[vm["id"].lower()] = _Hosted(address, task)

    async def _host_of(self, vm_id: str) -> SimulatedWindowsHost | None:
        """The VM's simulated host once it is in the fleet (booting or up), else None."""
        hosted = self._hosted.get(vm_id.lower())
        if hosted is None:
            return None
        await asyncio.wait([hosted.bring_up])  # never cancels the bring-up itself
        return hosted.bring_up.result() if succeeded(hosted.bring_up) else None

    async def _vm_power(self, vm: dict[str, Any], action: str) -> None:
        hosted = self._hosted.get(vm["id"].lower())
        if hosted is None:
            return
        if action in ("powerOff", "deallocate"):
            await power_off(hosted.bring_up)
        elif action == "start":
            power_on(hosted.bring_up)
        elif succeeded(hosted.bring_up):  # restart
            await hosted.bring_up.result().reboot()

    async def _vm_deleted(self, vm: dict[str, Any], address: str) -> None:
        self.extensions.forget_vm(vm["id"])
        if vm["id"].lower() in self._hosted:
            await self._take_down(vm["id"].lower(), wipe_disk=True)

    async def _take_down(self, key: str, *, wipe_disk: bool = False) -> None:
        hosted = self._hosted.pop(key)
        log.info(
            "Azure twin: VM %s deleted, removing host %s", key.rsplit("/", 1)[-1], hosted.address
        )
        await remove_host(self.fleet, hosted.address, hosted.bring_up, wipe_disk=wipe_disk)

    # -- ARM dispatch ----------------------------------------------------------------------

    def _add_group(self, name: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
        group = {
            "id": group_id(self.subscription_id, name),
            "name": name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.location,
            "tags": tags or {},
            "properties": {"provisioningState": "Succeeded"},
        }
        self.groups[name.lower()] = group
        return group

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Callable[..., Any]]]:
        ops_path = _SUB + r"/providers/(?P<ns>[^/]+)/locations/(?P<loc>[^/]+)"
        vms = _RG + r"/providers/Microsoft\.Compute/virtualMachines"
        exts = vms + r"/(?P<vm>[^/]+)/extensions"
        nics = _RG + r"/providers/Microsoft\.Network/networkInterfaces"
        vnet = _RG + r"/providers/Microsoft\.Network/virtualNetworks/(?P<vnet>[^/]+)"
        group = _SUB + r"/resourceGroups/(?P<group>[^/]+)$"
        vnets = _RG + r"/providers/Microsoft\.Network/virtualNetworks"
        table: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", ops_path + r"/operations/(?P<op>[^/]+)$", self._op_status),
            ("GET", ops_path + r"/operationResults/(?P<op>[^/]+)$", self._op_result),
            ("GET", _SUB + r"/resourceGroups$", self._list_groups),
            ("GET", group, self._get_group),
            ("HEAD", group, self._head_group),
            ("PUT", group, self._put_group),
            ("DELETE", group, self._delete_group),
            ("GET", _SUB + r"/providers/Microsoft\.Compute/virtualMachines$", self._list_all_vms),
            ("GET", vms + "$", self._list_vms),
            ("GET", vms + r"/(?P<name>[^/]+)$", self._get_vm),
            ("PUT", vms + r"/(?P<name>[^/]+)$", self._put_vm),
            ("DELETE", vms + r"/(?P<name>[^/]+)$", self._delete_vm),
            (
                "POST",
                vms + r"/(?P<name>[^/]+)/(?P<action>powerOff|deallocate|start|restart)$",
                self._power_vm,
            ),
            ("GET", exts + "$", self._list_extensions),
            ("GET", exts + r"/(?P<name>[^/]+)$", self._get_extension),
            ("PUT", exts + r"/(?P<name>[^/]+)$", self._put_extension),
            ("DELETE", exts + r"/(?P<name>[^/]+)$", self._delete_extension),
            ("GET", nics + "$", self._list_nics),
            ("GET", nics + r"/(?P<name>[^/]+)$", self._get_nic),
            ("PUT", nics + r"/(?P<name>[^/]+)$", self._put_nic),
            ("DELETE", nics + r"/(?P<name>[^/]+)$", self._delete_nic),
            ("GET", vnets + "$", self._list_vnets),
            ("GET", vnet + "$", self._get_vnet),
            ("PUT", vnet + "$", self._put_vnet),
            ("DELETE", vnet + "$", self._delete_vnet),
            ("GET", vnet + r"/subnets$", self._list_subnets),
            ("GET", vnet + r"/subnets/(?P<name>[^/]+)$", self._get_subnet),
            ("PUT", vnet + r"/subnets/(?P<name>[^/]+)$", self._put_subnet),
            ("DELETE", vnet + r"/subnets/(?P<name>[^/]+)$", self._delete_subnet),
        ]
        return [(m, re.compile(p, re.IGNORECASE), h) for m, p, h in table]

    async def _arm(self, request: web.Request) -> web.StreamResponse:
        try:
            if not request.path.lower().startswith("/subscriptions/"):
                raise ArmError(404, "NotFound", f"The path '{request.path}' was not found.")
            self.aad.check(request.headers.get("Authorization"))
            if "api-version" not in request.query:
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            path = request.path.rstrip("/")
            fault = self.faults.take(f"{request.method} {path}") if self.faults.armed else None
            if fault is not None:
                throttled = {"retry-after-ms": "100"} if fault.status == 429 else {}
                return error_response(fault.status, fault.code, fault.message, throttled)
            matched = [(m, mt, h) for m, p, h in self._routes if (mt := p.match(path))]
            if not matched:
                raise ArmError(
                    404,
                    "InvalidResourceType",
                    f"The resource type of '{request.path}' could not be found for "
                    f"api version '{request.query['api-version']}'.",
                )
            args = matched[0][1].groupdict()
            if args.pop("sub").lower() != self.subscription_id.lower():
                raise ArmError(
                    404,
                    "SubscriptionNotFound",
                    f"The subscription '{matched[0][1].group('sub')}' could not be found.",
                )
            if "rg" in args and args["rg"].lower() not in self.groups:
                raise ArmError(
                    404,
                    "ResourceGroupNotFound",
                    f"Resource group '{args['rg']}' could not be found.",
                )
            for method, _, handler in matched:
                if method == request.method:
                    response: web.StreamResponse = await handler(request, **args)
                    return response
            raise ArmError(
                405, "MethodNotAllowed", f"The requested method '{request.method}' is not allowed."
            )
        except ArmError as exc:
            return error_response(exc.status, exc.code, exc.message)

    async def _located_body(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        body = json_body(await request.read())
        location = body.get("location")
        if not location:
            raise ArmError(
                400, "LocationRequired", "The location property is required for this definition."
            )
        if str(location).replace(" ", "").lower() != self.location.lower():
            raise ArmError(
                400,
                "LocationNotAvailableForResourceType",
                f"The provided location '{location}' is not available for this "
                f"resource type. List of available regions is '{self.location}'.",
            )
        return self.location, body

    async def _op_status(self, request: web.Request, ns: str, loc: str, op: str) -> web.Response:
        return self.ops.status(op)

    async def _op_result(self, request: web.Request, ns: str, loc: str, op: str) -> web.Response:
        return self.ops.result(op)

    def _group(self, name: str) -> dict[str, Any]:
        found = self.groups.get(name.lower())
        if found is None:
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
            )
        return found

    async def _list_groups(self, request: web.Request) -> web.Response:
        return web.json_response({"value": list(self.groups.values())})

    async def _get_group(self, request: web.Request, group: str) -> web.Response:
        return web.json_response(self._group(group))

    async def _head_group(self, request: web.Request, group: str) -> web.Response:
        return web.Response(status=204 if group.lower() in self.groups else 404)

    async def _put_group(self, request: web.Request, group: str) -> web.Response:
        """Create or update (tags) a resource group: synchronous, 201 or 200."""
        if not re.fullmatch(r"[-\w._()]{1,90}", group) or group.endswith("."):
            raise ArmError(
                400,
                "InvalidResourceGroup",
                f"The provided resource group name '{group}' has these invalid characters: "
                "the name must be 1-90 characters of letters, digits, '_', '-', '.', '(', ')' "
                "and must not end in '.'.",
            )
        _, body = await self._located_body(request)
        existing = self.groups.get(group.lower())
        if existing is not None:
            existing["tags"] = body.get("tags") or existing["tags"]
            return web.json_response(existing, status=200)
        return web.json_response(self._add_group(group, body.get("tags")), status=201)

    async def _delete_group(self, request: web.Request, group: str) -> web.Response:
        found = self._group(group)
        prefix = found["id"].lower() + "/"
        if any(k.startswith(prefix) for k in self.compute.vms):
            raise ArmError(
                409,
                "Conflict",
                f"sim: deleting resource group '{group}' while it holds VMs is not modelled "
                "by the Azure twin; delete the VMs first.",
            )

        async def deleted() -> None:
            for key in [k for k in self.network.nics if k.startswith(prefix)]:
                del self.network.nics[key]
            for key in [k for k in self.network.vnets if k.startswith(prefix)]:
                del self.network.vnets[key]
            self.groups.pop(group.lower(), None)

        op = self.ops.start("Microsoft.Resources", self.location, 0.1, deleted)
        return self.ops.accepted(op)

    async def _list_all_vms(self, request: web.Request) -> web.Response:
        return web.json_response({"value": self.compute.list(None)})

    async def _list_vms(self, request: web.Request, rg: str) -> web.Response:
        return web.json_response({"value": self.compute.list(rg)})

    async def _get_vm(self, request: web.Request, rg: str, name: str) -> web.Response:
        return web.json_response(self.compute.get(rg, name, request.query.get("$expand")))

    async def _put_vm(self, request: web.Request, rg: str, name: str) -> web.Response:
        location, body = await self._located_body(request)
        return self.compute.put(rg, name, location, body)

    async def _delete_vm(self, request: web.Request, rg: str, name: str) -> web.Response:
        return self.compute.delete(rg, name)

    async def _power_vm(
        self, request: web.Request, rg: str, name: str, action: str
    ) -> web.Response:
        canonical = {"poweroff": "powerOff"}.get(action.lower(), action.lower())
        return self.compute.power(rg, name, canonical)

    async def _list_extensions(self, request: web.Request, rg: str, vm: str) -> web.Response:
        return web.json_response({"value": self.extensions.list(rg, vm)})

    async def _get_extension(
        self, request: web.Request, rg: str, vm: str, name: str
    ) -> web.Response:
        return web.json_response(self.extensions.get(rg, vm, name, request.query.get("$expand")))

    async def _put_extension(
        self, request: web.Request, rg: str, vm: str, name: str
    ) -> web.Response:
        return self.extensions.put(rg, vm, name, json_body(await request.read()))

    async def _delete_extension(
        self, request: web.Request, rg: str, vm: str, name: str
    ) -> web.Response:
        return self.extensions.delete(rg, vm, name)

    async def _list_nics(self, request: web.Request, rg: str) -> web.Response:
        return web.json_response({"value": self.network.list_nics(rg)})

    async def _get_nic(self, request: web.Request, rg: str, name: str) -> web.Response:
        return web.json_response(self.network.get_nic(rg, name))

    async def _put_nic(self, request: web.Request, rg: str, name: str) -> web.Response:
        location, body = await self._located_body(request)
        return self.network.put_nic(rg, name, location, body)

    async def _delete_nic(self, request: web.Request, rg: str, name: str) -> web.Response:
        return self.network.delete_nic(rg, name)

    async def _list_vnets(self, request: web.Request, rg: str) -> web.Response:
        return web.json_response({"value": self.network.list_vnets(rg)})

    async def _get_vnet(self, request: web.Request, rg: str, vnet: str) -> web.Response:
        return web.json_response(self.network.get_vnet(rg, vnet))

    async def _put_vnet(self, request: web.Request, rg: str, vnet: str) -> web.Response:
        location, body = await self._located_body(request)
        return self.network.put_vnet(rg, vnet, location, body)

    async def _delete_vnet(self, request: web.Request, rg: str, vnet: str) -> web.Response:
        return self.network.delete_vnet(rg, vnet)

    async def _list_subnets(self, request: web.Request, rg: str, vnet: str) -> web.Response:
        return web.json_response({"value": self.network.list_subnets(rg, vnet)})

    async def _put_subnet(
        self, request: web.Request, rg: str, vnet: str, name: str
    ) -> web.Response:
        return self.network.put_subnet(rg, vnet, name, json_body(await request.read()))

    async def _delete_subnet(
        self, request: web.Request, rg: str, vnet: str, name: str
    ) -> web.Response:
        return self.network.delete_subnet(rg, vnet, name)

    async def _get_subnet(
        self, request: web.Request, rg: str, vnet: str, name: str
    ) -> web.Response:
        return web.json_response(self.network.get_subnet(rg, vnet, name))


async def _request_ids(request: web.Request, response: web.StreamResponse) -> None:
    rid = str(uuid.uuid4())
    response.headers.setdefault("x-ms-request-id", rid)
    response.headers.setdefault(
        "x-ms-correlation-request-id", request.headers.get("x-ms-correlation-request-id", rid)
    )
