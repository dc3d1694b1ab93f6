"""The Azure twin as an Azure SDK user sees it: AAD tokens, ARM pollers, VMs that boot hosts.

The SDK is synchronous and the twin serves from this event loop, so SDK calls run in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.identity import ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient

from sim.cloud.azure import AzureTwin
from sim.pki import CertificateAuthority
from sim.windows.fleet import HostFleet
from tests.sim_cloud.conftest import (
    AZURE_CIDR,
    BOOT_SECONDS,
    authorized_key_user_data,
    ssh,
    wait_until,
)

RG = "winfleet-rg"


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority("sim-cloud-test-ca")


@pytest.fixture
def ca_bundle(ca: CertificateAuthority, tmp_path: Path) -> str:
    path = tmp_path / "ca.crt"
    path.write_bytes(ca.ca_pem)
    return str(path)


@pytest.fixture
async def azure(fleet: HostFleet, ca: CertificateAuthority) -> AsyncIterator[AzureTwin]:
    twin = AzureTwin(fleet, ca, cidr=AZURE_CIDR, boot_seconds=BOOT_SECONDS, provision_seconds=0.3)
    await twin.start()
    yield twin
    await twin.stop()


@contextlib.contextmanager
def clients(
    twin: AzureTwin, ca_bundle: str
) -> Iterator[tuple[ComputeManagementClient, NetworkManagementClient]]:
    """The client construction the product uses (documented in sim/cloud/azure.py)."""
    cred = ClientSecretCredential(
        twin.tenant_id,
        twin.client_id,
        twin.client_secret,
        authority=twin.authority_host,
        disable_instance_discovery=True,
        connection_verify=ca_bundle,
    )
    kwargs: dict[str, Any] = dict(
        base_url=twin.arm_endpoint,
        credential_scopes=[twin.credential_scope],
        connection_verify=ca_bundle,
    )
    with (
        cred,
        ComputeManagementClient(cred, twin.subscription_id, **kwargs) as compute,
        NetworkManagementClient(cred, twin.subscription_id, **kwargs) as network,
    ):
        yield compute, network


def create_vm(twin: AzureTwin, ca_bundle: str, name: str, user_data: str) -> tuple[Any, Any]:
    """NIC + VM through the SDK pollers, as the product's Azure activity does."""
    with clients(twin, ca_bundle) as (compute, network):
        subnet = network.subnets.get(RG, "winfleet-vnet", "windows")
        nic = network.network_interfaces.begin_create_or_update(
            RG,
            f"{name}-nic",
            {
                "location": "eastus",
                "properties": {
                    "ipConfigurations": [
                        {"name": "ipconfig1", "properties": {"subnet": {"id": subnet.id}}}
                    ]
                },
            },
        ).result()
        vm = compute.virtual_machines.begin_create_or_update(
            RG,
            name,
            {
                "location": "eastus",
                "properties": {
                    "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
                    "storageProfile": {
                        "imageReference": {
                            "publisher": "MicrosoftWindowsServer",
                            "offer": "WindowsServer",
                            "sku": "2019-Datacenter-with-Containers",
                            "version": "latest",
                        }
                    },
                    "osProfile": {
                        "computerName": name,
                        "adminUsername": "capi",
                        "adminPassword": "Sim-Passw0rd-123",
                    },
                    "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
                    "userData": base64.b64encode(user_data.encode()).decode(),
                },
            },
        ).result()
        return nic, vm


async def test_client_secret_credential_gets_a_token_only_with_the_right_secret(
    azure: AzureTwin, ca_bundle: str
) -> None:
    def token(secret: str) -> str:
        with ClientSecretCredential(
            azure.tenant_id,
            azure.client_id,
            secret,
            authority=azure.authority_host,
            disable_instance_discovery=True,
            connection_verify=ca_bundle,
        ) as cred:
            return cred.get_token(azure.credential_scope).token

    assert await asyncio.to_thread(token, azure.client_secret)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        await asyncio.to_thread(token, "not-the-secret")


async def test_vm_created_through_the_sdk_pollers_boots_a_host_at_its_nic_ip(
    azure: AzureTwin, ca_bundle: str, client_key: asyncssh.SSHKey
) -> None:
    user_data = authorized_key_user_data(client_key.export_public_key().decode().strip())
    nic, vm = await asyncio.to_thread(create_vm, azure, ca_bundle, "winworker-a1", user_data)

    assert vm.properties.provisioning_state == "Succeeded"
    address = nic.ip_configurations[0].private_ip_address
    assert address.startswith("127.21.")
    assert await ssh(address, client_key, "capi") == "refused"  # still booting

    async def logged_in() -> bool:
        return await ssh(address, client_key, "capi") == "winworker-a1"

    await wait_until(logged_in, "the VM's host to boot and accept the key as 'capi'")
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    assert await ssh(address, stranger, "capi") == "denied"


async def test_deleting_the_vm_through_the_poller_takes_its_host_away(
    azure: AzureTwin, ca_bundle: str, client_key: asyncssh.SSHKey
) -> None:
    user_data = authorized_key_user_data(client_key.export_public_key().decode().strip())
    nic, _ = await asyncio.to_thread(create_vm, azure, ca_bundle, "winworker-b1", user_data)
    address = nic.ip_configurations[0].private_ip_address

    async def up() -> bool:
        return await ssh(address, client_key, "capi") != "refused"

    await wait_until(up, "the VM's host to boot")

    def delete_vm_then_nic() -> tuple[str, str]:
        with clients(azure, ca_bundle) as (compute, network):
            with pytest.raises(HttpResponseError) as in_use:
                network.network_interfaces.begin_delete(RG, "winworker-b1-nic").result()
            compute.virtual_machines.begin_delete(RG, "winworker-b1").result()
            network.network_interfaces.begin_delete(RG, "winworker-b1-nic").result()
            with pytest.raises(ResourceNotFoundError) as gone:
                compute.virtual_machines.get(RG, "winworker-b1")
            return in_use.value.error.code, gone.value.error.code

    assert await asyncio.to_thread(delete_vm_then_nic) == ("NicInUse", "ResourceNotFound")
    assert await ssh(address, client_key, "capi") == "refused"
    assert azure.hosted == {}


async def test_arm_request_without_a_bearer_token_is_refused_with_an_arm_error_body(
    azure: AzureTwin, ca: CertificateAuthority
) -> None:
    tls = ssl.create_default_context(cadata=ca.ca_pem.decode())
    url = (
        f"{azure.arm_endpoint}/subscriptions/{azure.subscription_id}/resourceGroups/{RG}"
        "/providers/Microsoft.Compute/virtualMachines?api-version=2026-04-01"
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(url, ssl=tls) as resp:
            assert resp.status == 401
            body = await resp.json()
        async with http.get(url, ssl=tls, headers={"Authorization": "Bearer forged"}) as resp:
            forged = (resp.status, (await resp.json())["error"]["code"])
    assert body["error"]["code"] == "AuthenticationFailed"
    assert "Authorization" in body["error"]["message"]
    assert forged == (401, "InvalidAuthenticationToken")


async def test_missing_resources_surface_in_the_sdk_as_resource_not_found(
    azure: AzureTwin, ca_bundle: str
) -> None:
    def lookups() -> list[tuple[str, str]]:
        out = []
        with clients(azure, ca_bundle) as (compute, network):
            for call in (
                lambda: compute.virtual_machines.get(RG, "no-such-vm"),
                lambda: network.network_interfaces.get("no-such-rg", "nic"),
            ):
                with pytest.raises(ResourceNotFoundError) as err:
                    call()
                out.append((err.value.error.code, err.value.error.message))
        return out

    (vm_code, vm_message), (rg_code, rg_message) = await asyncio.to_thread(lookups)
    assert vm_code == "ResourceNotFound" and "no-such-vm" in vm_message
    assert rg_code == "ResourceGroupNotFound" and "no-such-rg" in rg_message


async def test_windows_computer_name_longer_than_15_characters_is_rejected(
    azure: AzureTwin, ca_bundle: str
) -> None:
    with pytest.raises(HttpResponseError) as err:
        await asyncio.to_thread(create_vm, azure, ca_bundle, "winworker-much-too-long", "")
    assert err.value.status_code == 400
    assert err.value.error.code == "InvalidParameter"
    assert "15 characters" in err.value.error.message


async def test_arm_throttling_is_retried_by_the_sdk_and_a_persistent_fault_surfaces(
    azure: AzureTwin, ca_bundle: str
) -> None:
    azure.faults.add(
        "GET virtualMachines", 429, "TooManyRequests", "The request is being throttled."
    )
    azure.faults.add(
        "GET networkInterfaces/",
        500,
        "InternalServerError",
        "Encountered internal server error.",
        count=10,
    )

    def calls() -> tuple[list[Any], str]:
        with clients(azure, ca_bundle) as (compute, network):
            listed = list(compute.virtual_machines.list(RG))  # 429 once, retried
            with pytest.raises(HttpResponseError) as err:
                network.network_interfaces.get(RG, "n1", retry_total=0)
            return listed, err.value.error.code

    assert await asyncio.to_thread(calls) == ([], "InternalServerError")
    assert [f.code for f in azure.faults.taken][:1] == ["TooManyRequests"]
