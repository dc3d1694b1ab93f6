"""Azure SDK helpers for the Azure-twin tests: clients built as the product builds them, a NIC +
VM through the pollers, a CustomScriptExtension run, and the first-boot script they run."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import Any

from azure.identity import ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient

from sim.cloud.azure import AzureTwin
from tests.sim_cloud.conftest import first_boot_script

RG = "winfleet-rg"
RUN_CUSTOM_DATA = (
    'powershell.exe -NoLogo -NoProfile -NonInteractive -Command "'
    "Copy-Item -Path 'C:\\AzureData\\CustomData.bin' "
    "-Destination 'C:\\AzureData\\boot.ps1' -Force; "
    "powershell.exe -ExecutionPolicy Unrestricted -File 'C:\\AzureData\\boot.ps1'; "
    'exit $LASTEXITCODE"'
)


def authorized_key_script(public_key: str) -> str:
    """A first-boot script that authorizes `public_key` for the administrators (as WMCO's)."""
    return "$ErrorActionPreference = 'Stop'\n" + first_boot_script(public_key)


def _credential(twin: AzureTwin, ca_bundle: str) -> ClientSecretCredential:
    return ClientSecretCredential(
        twin.tenant_id,
        twin.client_id,
        twin.client_secret,
        authority=twin.authority_host,
        disable_instance_discovery=True,
        connection_verify=ca_bundle,
    )


def _client_kwargs(twin: AzureTwin, ca_bundle: str) -> dict[str, Any]:
    return dict(
        base_url=twin.arm_endpoint,
        credential_scopes=[twin.credential_scope],
        connection_verify=ca_bundle,
    )


@contextlib.contextmanager
def clients(
    twin: AzureTwin, ca_bundle: str
) -> Iterator[tuple[ComputeManagementClient, NetworkManagementClient]]:
    """The client construction the product uses (documented in sim/cloud/azure.py)."""
    cred = _credential(twin, ca_bundle)
    kwargs = _client_kwargs(twin, ca_bundle)
    with (
        cred,
        ComputeManagementClient(cred, twin.subscription_id, **kwargs) as compute,
        NetworkManagementClient(cred, twin.subscription_id, **kwargs) as network,
    ):
        yield compute, network


def create_vm(
    twin: AzureTwin,
    ca_bundle: str,
    name: str,
    custom_data: str,
    user_data: str = "",
    *,
    group: str = RG,
    subnet_id: str | None = None,
    sku: str = "2019-Datacenter-with-Containers",
) -> tuple[Any, Any]:
    """NIC + VM through the SDK pollers, as the product's Azure activity does (in the twin's
    default subnet unless `subnet_id` says otherwise)."""
    os_profile = {
        "computerName": name,
        "adminUsername": "capi",
        "adminPassword": "Sim-Passw0rd-123",
    }
    if custom_data:
        os_profile["customData"] = base64.b64encode(custom_data.encode()).decode()
    extra = {"userData": base64.b64encode(user_data.encode()).decode()} if user_data else {}
    with clients(twin, ca_bundle) as (compute, network):
        subnet = subnet_id or network.subnets.get(RG, "winfleet-vnet", "windows").id
        nic = network.network_interfaces.begin_create_or_update(
            group,
            f"{name}-nic",
            {
                "location": "eastus",
                "properties": {
                    "ipConfigurations": [
                        {"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}
                    ]
                },
            },
        ).result()
        vm = compute.virtual_machines.begin_create_or_update(
            group,
            name,
            {
                "location": "eastus",
                "properties": {
                    "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
                    "storageProfile": {
                        "imageReference": {
                            "publisher": "MicrosoftWindowsServer",
                            "offer": "WindowsServer",
                            "sku": sku,
                            "version": "latest",
                        }
                    },
                    "osProfile": os_profile,
                    "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
                    **extra,
                },
            },
        ).result()
        return nic, vm


def put_extension(
    twin: AzureTwin,
    ca_bundle: str,
    vm: str,
    command: str,
    force_update_tag: str | None = None,
    *,
    group: str = RG,
) -> Any:
    """Run `command` on the VM through a CustomScriptExtension and the SDK poller."""
    body: dict[str, Any] = {
        "location": "eastus",
        "properties": {
            "publisher": "Microsoft.Compute",
            "type": "CustomScriptExtension",
            "typeHandlerVersion": "1.10",
            "autoUpgradeMinorVersion": True,
            "protectedSettings": {"commandToExecute": command},
        },
    }
    if force_update_tag:
        body["properties"]["forceUpdateTag"] = force_update_tag
    with clients(twin, ca_bundle) as (compute, _):
        return compute.virtual_machine_extensions.begin_create_or_update(
            group, vm, "bootstrap", body
        ).result()


def get_extension(twin: AzureTwin, ca_bundle: str, vm: str) -> Any:
    with clients(twin, ca_bundle) as (compute, _):
        return compute.virtual_machine_extensions.get(RG, vm, "bootstrap", expand="instanceView")


@contextlib.contextmanager
def resources(twin: AzureTwin, ca_bundle: str) -> Iterator[Any]:
    """A ResourceManagementClient (azure-mgmt-resource) built like the others."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    cred = _credential(twin, ca_bundle)
    kwargs = _client_kwargs(twin, ca_bundle)
    with cred, ResourceManagementClient(cred, twin.subscription_id, **kwargs) as client:
        yield client


def power_state(twin: AzureTwin, ca_bundle: str, vm: str) -> str:
    """`running`, `stopped`, `deallocated`, ... from the VM's instance view."""
    with clients(twin, ca_bundle) as (compute, _):
        view = compute.virtual_machines.get(RG, vm, expand="instanceView").instance_view
    codes = [s.code for s in view.statuses if s.code.startswith("PowerState/")]
    return str(codes[0].split("/", 1)[1])
