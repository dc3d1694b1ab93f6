"""Azure resource groups, virtual networks and subnets as azure-mgmt-resource/-network users see
them: created through the SDK pollers, validated and refused like ARM does."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from sim.cloud.azure import AzureTwin
from tests.sim_cloud.azure_sdk import (
    RUN_CUSTOM_DATA,
    authorized_key_script,
    clients,
    create_vm,
    put_extension,
    resources,
)
from tests.sim_cloud.conftest import ssh

GROUP = "lab-rg"
VNET_BODY = {
    "location": "eastus",
    "properties": {
        "addressSpace": {"addressPrefixes": ["127.22.0.0/16"]},
        "subnets": [{"name": "nodes", "properties": {"addressPrefix": "127.22.1.0/24"}}],
    },
}


def create_group_and_vnet(twin: AzureTwin, ca_bundle: str) -> tuple[Any, Any, Any, Any]:
    with resources(twin, ca_bundle) as rm:
        group = rm.resource_groups.create_or_update(GROUP, {"location": "eastus"})
        exists = rm.resource_groups.check_existence(GROUP)
    with clients(twin, ca_bundle) as (_, network):
        vnet = network.virtual_networks.begin_create_or_update(GROUP, "lab", VNET_BODY).result()
        subnet = network.subnets.begin_create_or_update(
            GROUP, "lab", "extra", {"properties": {"addressPrefix": "127.22.2.0/24"}}
        ).result()
    return group, exists, vnet, subnet


async def test_a_resource_group_vnet_and_subnets_are_created_through_the_sdk(
    azure: AzureTwin, ca_bundle: str
) -> None:
    group, exists, vnet, subnet = await asyncio.to_thread(create_group_and_vnet, azure, ca_bundle)

    assert (group.name, group.location, group.properties.provisioning_state) == (
        GROUP,
        "eastus",
        "Succeeded",
    )
    assert exists is True
    assert vnet.provisioning_state == "Succeeded"
    assert vnet.address_space.address_prefixes == ["127.22.0.0/16"]
    assert [s.name for s in vnet.subnets] == ["nodes"]
    assert subnet.id.endswith(
        f"/resourceGroups/{GROUP}/providers/Microsoft.Network/virtualNetworks/lab/subnets/extra"
    )
    assert subnet.address_prefix == "127.22.2.0/24"

    def listed() -> tuple[list[str], list[str]]:
        with clients(azure, ca_bundle) as (_, network):
            vnets = [v.name for v in network.virtual_networks.list(GROUP)]
            subnets = [s.name for s in network.subnets.list(GROUP, "lab")]
        return vnets, subnets

    assert await asyncio.to_thread(listed) == (["lab"], ["nodes", "extra"])


async def test_the_default_group_vnet_and_subnet_exist_from_start_up(
    azure: AzureTwin, ca_bundle: str
) -> None:
    def lookups() -> tuple[bool, str]:
        with resources(azure, ca_bundle) as rm:
            exists = rm.resource_groups.check_existence("winfleet-rg")
        with clients(azure, ca_bundle) as (_, network):
            subnet = network.subnets.get("winfleet-rg", "winfleet-vnet", "windows")
        return exists, subnet.id

    assert await asyncio.to_thread(lookups) == (True, azure.subnet_id)


async def test_a_nic_in_a_missing_subnet_is_refused_as_an_invalid_reference(
    azure: AzureTwin, ca_bundle: str
) -> None:
    missing = azure.subnet_id.replace("/subnets/windows", "/subnets/nope")

    def create_nic() -> Any:
        with clients(azure, ca_bundle) as (_, network):
            with pytest.raises(HttpResponseError) as refused:
                network.network_interfaces.begin_create_or_update(
                    "winfleet-rg",
                    "orphan-nic",
                    {
                        "location": "eastus",
                        "properties": {
                            "ipConfigurations": [
                                {"name": "ipconfig1", "properties": {"subnet": {"id": missing}}}
                            ]
                        },
                    },
                ).result()
            with pytest.raises(ResourceNotFoundError):
                network.network_interfaces.get("winfleet-rg", "orphan-nic")
        return refused.value

    error = await asyncio.to_thread(create_nic)
    assert error.status_code == 400
    assert error.error.code == "InvalidResourceReference"
    assert error.error.message.startswith(f"Resource {missing} referenced by resource ")
    assert "/networkInterfaces/orphan-nic was not found." in error.error.message


@pytest.mark.parametrize(
    ("prefix", "code"),
    [
        ("127.23.0.0/24", "NetcfgSubnetRangeOutsideVnet"),
        ("127.22.1.128/25", "NetcfgSubnetRangesOverlap"),
        ("127.22.300.0/24", "InvalidAddressPrefixFormat"),
    ],
)
async def test_a_subnet_outside_the_vnet_or_overlapping_another_is_refused(
    azure: AzureTwin, ca_bundle: str, prefix: str, code: str
) -> None:
    def create() -> str:
        with resources(azure, ca_bundle) as rm:
            rm.resource_groups.create_or_update(GROUP, {"location": "eastus"})
        with clients(azure, ca_bundle) as (_, network):
            network.virtual_networks.begin_create_or_update(GROUP, "lab", VNET_BODY).result()
            with pytest.raises(HttpResponseError) as refused:
                network.subnets.begin_create_or_update(
                    GROUP, "lab", "bad", {"properties": {"addressPrefix": prefix}}
                ).result()
        return str(refused.value.error.code)

    assert await asyncio.to_thread(create) == code


async def test_a_vm_in_a_new_subnet_boots_there_and_the_subnet_cannot_be_deleted_under_it(
    azure: AzureTwin, ca_bundle: str, client_key: asyncssh.SSHKey
) -> None:
    script = authorized_key_script(client_key.export_public_key().decode().strip())

    def build() -> tuple[str, str]:
        _, _, vnet, _ = create_group_and_vnet(azure, ca_bundle)
        nic, _ = create_vm(
            azure,
            ca_bundle,
            "lab-1",
            script,
            group=GROUP,
            subnet_id=vnet.subnets[0].id,
            sku="2022-datacenter",
        )
        put_extension(azure, ca_bundle, "lab-1", RUN_CUSTOM_DATA, group=GROUP)
        with clients(azure, ca_bundle) as (_, network):
            with pytest.raises(HttpResponseError) as in_use:
                network.subnets.begin_delete(GROUP, "lab", "nodes").result()
        return nic.ip_configurations[0].private_ip_address, in_use.value.error.code

    address, refusal = await asyncio.to_thread(build)

    assert address == "127.22.1.4"  # .0-.3 are Azure's
    assert refusal == "InUseSubnetCannotBeDeleted"
    assert await ssh(address, client_key, "capi") == "lab-1"
    out = await ssh(
        address,
        client_key,
        "capi",
        'powershell.exe -Command "(Get-NetIPAddress -AddressFamily IPv4 '
        '-InterfaceAlias Ethernet).PrefixLength"',
    )
    assert out == "24"
    build_query = (
        'powershell.exe -Command "(Get-CimInstance -ClassName Win32_OperatingSystem).BuildNumber"'
    )
    assert await ssh(address, client_key, "capi", build_query) == "20348"
