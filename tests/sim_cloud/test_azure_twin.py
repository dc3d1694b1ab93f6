"""The Azure twin as an Azure SDK user sees it: AAD tokens, ARM pollers, VMs that boot hosts,
custom data that only a CustomScriptExtension runs.

The SDK is synchronous and the twin serves from this event loop, so SDK calls run in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
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

from sim.cloud.azure import AzureTwin
from sim.pki import CertificateAuthority
from tests.sim_cloud.azure_sdk import (
    RG,
    RUN_CUSTOM_DATA,
    authorized_key_script,
    clients,
    create_vm,
    get_extension,
    power_state,
    put_extension,
)
from tests.sim_cloud.conftest import ssh, wait_until


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
    script = authorized_key_script(client_key.export_public_key().decode().strip())
    nic, vm = await asyncio.to_thread(create_vm, azure, ca_bundle, "winworker-a1", script)

    assert vm.properties.provisioning_state == "Succeeded"
    address = nic.ip_configurations[0].private_ip_address
    assert address.startswith("127.21.")
    assert await ssh(address, client_key, "capi") == "refused"  # still booting

    await wait_until(lambda: _booted(azure, address), "the VM's host to boot")
    host = azure.fleet.get(address)
    assert (host.root / "C" / "AzureData" / "CustomData.bin").read_text() == script
    # Azure's Windows Server images come without the OpenSSH Server: nothing listens yet
    assert await ssh(address, client_key, "capi") == "refused"
    assert "sshd" not in host.services


async def _booted(azure: AzureTwin, address: str) -> bool:
    return address in azure.hosted.values() and azure.fleet.get(address).is_up


async def test_custom_data_and_user_data_are_never_run_so_the_key_is_not_authorized(
    azure: AzureTwin, ca_bundle: str, client_key: asyncssh.SSHKey
) -> None:
    script = authorized_key_script(client_key.export_public_key().decode().strip())
    nic, _ = await asyncio.to_thread(
        create_vm, azure, ca_bundle, "winworker-c1", script, user_data=script
    )
    address = nic.ip_configurations[0].private_ip_address

    await wait_until(lambda: _booted(azure, address), "the VM's host to boot")
    assert await ssh(address, client_key, "capi") == "refused"  # the script never installed sshd
    assert azure.fleet.get(address).command_log == []
    shown = azure.compute.get(RG, "winworker-c1", "userData")["properties"]["userData"]
    assert base64.b64decode(shown).decode() == script  # kept, as Azure keeps it


async def test_a_custom_script_extension_runs_the_custom_data_once_and_then_the_key_works(
    azure: AzureTwin, ca_bundle: str, client_key: asyncssh.SSHKey
) -> None:
    script = authorized_key_script(client_key.export_public_key().decode().strip())
    nic, _ = await asyncio.to_thread(create_vm, azure, ca_bundle, "winworker-d1", script)
    address = nic.ip_configurations[0].private_ip_address

    # the extension waits for the host to finish booting, then runs the command
    ext = await asyncio.to_thread(put_extension, azure, ca_bundle, "winworker-d1", RUN_CUSTOM_DATA)

    assert ext.properties.provisioning_state == "Succeeded"
    assert ext.properties.protected_settings is None  # never shown back
    assert await ssh(address, client_key, "capi") == "winworker-d1"
    host = azure.fleet.get(address)
    assert host.command_log.count(RUN_CUSTOM_DATA) == 1
    view = await asyncio.to_thread(get_extension, azure, ca_bundle, "winworker-d1")
    assert view.properties.instance_view.statuses[0].code == "ProvisioningState/succeeded"

    again = await asyncio.to_thread(
        put_extension, azure, ca_bundle, "winworker-d1", RUN_CUSTOM_DATA
    )
    assert again.properties.provisioning_state == "Succeeded"
    assert host.command_log.count(RUN_CUSTOM_DATA) == 1  # same settings: not run again
    await asyncio.to_thread(
        put_extension, azure, ca_bundle, "winworker-d1", RUN_CUSTOM_DATA, "rerun-1"
    )
    assert host.command_log.count(RUN_CUSTOM_DATA) == 2  # a new forceUpdateTag runs it again


async def test_a_failing_extension_command_fails_the_operation_and_the_extension(
    azure: AzureTwin, ca_bundle: str
) -> None:
    nic, _ = await asyncio.to_thread(
        create_vm, azure, ca_bundle, "winworker-e1", "Get-Service -Name no-such-service\n"
    )

    with pytest.raises(HttpResponseError) as err:
        await asyncio.to_thread(put_extension, azure, ca_bundle, "winworker-e1", RUN_CUSTOM_DATA)

    assert err.value.error.code == "VMExtensionProvisioningError"
    assert "non-zero exit code of: '1'" in err.value.error.message
    assert "Cannot find any service" in err.value.error.message
    ext = await asyncio.to_thread(get_extension, azure, ca_bundle, "winworker-e1")
    assert ext.properties.provisioning_state == "Failed"
    status = ext.properties.instance_view.statuses[0]
    assert (status.code, status.level) == ("ProvisioningState/failed/1", "Error")
    # the same settings again: not run again, still failed
    with pytest.raises(HttpResponseError):
        await asyncio.to_thread(put_extension, azure, ca_bundle, "winworker-e1", RUN_CUSTOM_DATA)
    address = nic.ip_configurations[0].private_ip_address
    assert azure.fleet.get(address).command_log == [RUN_CUSTOM_DATA]


async def test_extensions_of_a_missing_vm_or_of_an_unknown_type_are_refused(
    azure: AzureTwin, ca_bundle: str
) -> None:
    def calls() -> tuple[str, str]:
        with clients(azure, ca_bundle) as (compute, _):
            with pytest.raises(ResourceNotFoundError) as no_vm:
                compute.virtual_machine_extensions.begin_create_or_update(
                    RG,
                    "no-such-vm",
                    "bootstrap",
                    {
                        "location": "eastus",
                        "properties": {
                            "publisher": "Microsoft.Compute",
                            "type": "CustomScriptExtension",
                            "typeHandlerVersion": "1.10",
                        },
                    },
                )
            with pytest.raises(ResourceNotFoundError) as no_ext:
                compute.virtual_machine_extensions.get(RG, "no-such-vm", "bootstrap")
            return no_vm.value.error.code, no_ext.value.error.code

    assert await asyncio.to_thread(calls) == ("ParentResourceNotFound", "ParentResourceNotFound")


async def test_an_extension_can_be_deleted_through_the_poller(
    azure: AzureTwin, ca_bundle: str
) -> None:
    await asyncio.to_thread(create_vm, azure, ca_bundle, "winworker-f1", "hostname\n")
    await asyncio.to_thread(put_extension, azure, ca_bundle, "winworker-f1", RUN_CUSTOM_DATA)

    def delete_then_get() -> str:
        with clients(azure, ca_bundle) as (compute, _):
            compute.virtual_machine_extensions.begin_delete(
                RG, "winworker-f1", "bootstrap"
            ).result()
            with pytest.raises(ResourceNotFoundError) as gone:
                compute.virtual_machine_extensions.get(RG, "winworker-f1", "bootstrap")
            return gone.value.error.code

    assert await asyncio.to_thread(delete_then_get) == "ResourceNotFound"


async def test_deleting_the_vm_through_the_poller_takes_its_host_away(
    azure: AzureTwin, ca_bundle: str, client_key: asyncssh.SSHKey
) -> None:
    script = authorized_key_script(client_key.export_public_key().decode().strip())
    nic, _ = await asyncio.to_thread(create_vm, azure, ca_bundle, "winworker-b1", script)
    address = nic.ip_configurations[0].private_ip_address
    await asyncio.to_thread(put_extension, azure, ca_bundle, "winworker-b1", RUN_CUSTOM_DATA)
    assert await ssh(address, client_key, "capi") == "winworker-b1"

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


@pytest.mark.parametrize("stop", ["begin_power_off", "begin_deallocate"])
async def test_a_stopped_vm_is_unreachable_and_starts_again_with_its_disk(
    azure: AzureTwin, ca_bundle: str, client_key: asyncssh.SSHKey, stop: str
) -> None:
    script = authorized_key_script(client_key.export_public_key().decode().strip())
    nic, _ = await asyncio.to_thread(create_vm, azure, ca_bundle, "winworker-p1", script)
    address = nic.ip_configurations[0].private_ip_address
    await asyncio.to_thread(put_extension, azure, ca_bundle, "winworker-p1", RUN_CUSTOM_DATA)
    write = 'powershell.exe -Command "Set-Content -Path C:\\notes.txt -Value kept"'
    assert await ssh(address, client_key, "capi", write) == ""

    def call(method: str) -> None:
        with clients(azure, ca_bundle) as (compute, _):
            getattr(compute.virtual_machines, method)(RG, "winworker-p1").result()

    await asyncio.to_thread(call, stop)

    expected = "stopped" if stop == "begin_power_off" else "deallocated"
    assert await asyncio.to_thread(power_state, azure, ca_bundle, "winworker-p1") == expected
    assert await ssh(address, client_key, "capi") == "refused"
    assert not azure.fleet.get(address).powered_on

    await asyncio.to_thread(call, "begin_start")
    assert await asyncio.to_thread(power_state, azure, ca_bundle, "winworker-p1") == "running"

    async def back() -> bool:
        return await ssh(address, client_key, "capi") == "winworker-p1"

    await wait_until(back, "the started VM to answer again")
    read = 'powershell.exe -Command "Get-Content -Path C:\\notes.txt"'
    assert await ssh(address, client_key, "capi", read) == "kept"


async def test_restarting_a_deallocated_vm_is_refused(azure: AzureTwin, ca_bundle: str) -> None:
    await asyncio.to_thread(create_vm, azure, ca_bundle, "winworker-p2", "")

    def deallocate_then_restart() -> tuple[int, str]:
        with clients(azure, ca_bundle) as (compute, _):
            compute.virtual_machines.begin_deallocate(RG, "winworker-p2").result()
            with pytest.raises(HttpResponseError) as refused:
                compute.virtual_machines.begin_restart(RG, "winworker-p2").result()
        return refused.value.status_code, refused.value.error.code

    assert await asyncio.to_thread(deallocate_then_restart) == (409, "OperationNotAllowed")
