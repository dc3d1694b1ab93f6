"""Azure VMs for Windows nodes, against the ARM + AAD twin: one VM and NIC per node, however
often asked; the first-boot script travels as custom data (which Azure never runs) and the
CustomScriptExtension `winfleet-bootstrap` runs it once, authorising winfleet's key."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncssh
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from cloud_twins import CLUSTER, Azure, eventually, kube_env, opened_ports, put_key_secret
from temporalio.testing import ActivityEnvironment

from activities.cloud import azure as az
from activities.cloud.ownership import Owner
from activities.cloud.userdata import azure_bootstrap_command
from activities.cloud.vm import CreateVmInput, create_vm, terminate_vm
from activities.config import Settings, use_settings
from activities.contracts import AzureMachineSpec, HostRef, Platform
from activities.errors import CloudRequestRejected, CloudUnavailable, InvalidRequest
from sim.k8s.server import KubeTwin
from sim.windows.host import SimulatedWindowsHost

BOOTSTRAP = azure_bootstrap_command().line


def spec(a: Azure, **kw: Any) -> AzureMachineSpec:
    t = a.twin
    base = {"resource_group": t.resource_group, "location": t.location, "subnet_id": t.subnet_id}
    return AzureMachineSpec(**{**base, **kw})


async def create(
    a: Azure, node: str, public_key: str, *, pool: str = "pool-a", run: str = "run-1", **kw: Any
) -> HostRef:
    """`create_azure_vm` inside an activity context, as workflow run `run`."""
    return await ActivityEnvironment().run(
        az.create_azure_vm, Owner(CLUSTER, pool, node), spec(a, **kw), public_key, run=run
    )


def vm_names(a: Azure) -> list[str]:
    return sorted(vm["name"] for vm in a.twin.compute.list(None))


def nic_names(a: Azure) -> list[str]:
    return sorted(nic["name"] for nic in a.twin.network.list_nics(a.twin.resource_group))


async def test_creating_makes_a_vm_and_its_nic_and_returns_the_nics_address(
    azure: Azure, public_key: str
) -> None:
    host = await create(azure, "win-az1", public_key)

    assert vm_names(azure) == ["win-az1"]
    assert nic_names(azure) == ["win-az1-nic"]
    vm = azure.twin.compute.get(azure.twin.resource_group, "win-az1")
    assert host.platform is Platform.AZURE
    assert host.username == "capi"
    assert host.created_by_us
    assert host.instance_id == vm["id"]
    assert host.address.startswith("127.7.200.")
    assert vm["tags"] == {
        "winfleet-cluster": CLUSTER,
        "winfleet-pool": "pool-a",
        "winfleet-node": "win-az1",
        "winfleet-run": "run-1",
    }
    nic = azure.twin.network.get_nic(azure.twin.resource_group, "win-az1-nic")
    assert nic["tags"] == vm["tags"]
    assert vm["properties"]["osProfile"]["computerName"] == "win-az1"
    assert vm["properties"]["osProfile"]["adminUsername"] == "capi"


async def test_creating_twice_returns_the_same_host_and_makes_nothing_new(
    azure: Azure, public_key: str
) -> None:
    first = await create(azure, "win-az2", public_key)
    second = await create(azure, "win-az2", public_key)

    assert first == second
    assert vm_names(azure) == ["win-az2"]
    assert nic_names(azure) == ["win-az2-nic"]


async def test_the_booted_host_trusts_winfleets_key_once_the_bootstrap_extension_ran(
    azure: Azure, ssh_key: asyncssh.SSHKey, public_key: str
) -> None:
    host = await create(azure, "win-az3", public_key)

    assert azure.twin.hosted.get("win-az3") == host.address
    sim_host = azure.fleet.get(host.address)
    assert ssh_key.public_data in sim_host.authorized_key_blobs()
    assert opened_ports(sim_host) == [22, 9182, 10250]
    assert sim_host.command_log.count(BOOTSTRAP) == 1
    custom_data = (sim_host.root / "C" / "AzureData" / "CustomData.bin").read_text()
    assert public_key in custom_data
    assert "<powershell>" not in custom_data
    assert "PRIVATE KEY" not in custom_data
    vm = azure.twin.compute.get(azure.twin.resource_group, "win-az3", "userData")
    assert "userData" not in vm["properties"]  # Azure would keep it, and never run it
    ext = azure.twin.extensions.get(
        azure.twin.resource_group, "win-az3", "winfleet-bootstrap", None
    )
    props = ext["properties"]
    assert (props["publisher"], props["type"], props["typeHandlerVersion"]) == (
        "Microsoft.Compute",
        "CustomScriptExtension",
        "1.10",
    )
    assert props["autoUpgradeMinorVersion"] is True
    assert props["provisioningState"] == "Succeeded"
    assert "commandToExecute" not in str(props.get("settings"))  # protected, not public


async def test_creating_again_does_not_run_the_first_boot_script_twice(
    azure: Azure, public_key: str
) -> None:
    first = await create(azure, "win-az12", public_key)
    second = await create(azure, "win-az12", public_key)

    assert first == second
    assert azure.fleet.get(first.address).command_log.count(BOOTSTRAP) == 1


async def test_an_earlier_attempts_running_bootstrap_is_waited_for_not_run_again(
    azure: Azure, public_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(az, "LRO_POLL_INTERVAL", 0.05)
    azure.fleet.on_add.append(lambda host: host.faults.slow(1.0))  # a script that takes a while
    rg = azure.twin.resource_group

    def running() -> bool:
        try:
            ext = azure.twin.extensions.get(rg, "win-az13", "winfleet-bootstrap", None)
        except Exception:
            return False
        return bool(ext["properties"]["provisioningState"] == "Creating")

    first = asyncio.create_task(create(azure, "win-az13", public_key))
    await eventually("the first attempt's extension to be running", running)
    second = await create(azure, "win-az13", public_key)

    assert await first == second
    assert azure.fleet.get(second.address).command_log.count(BOOTSTRAP) == 1


async def test_a_failing_first_boot_script_is_a_permanent_error_naming_the_vm(
    azure: Azure, public_key: str
) -> None:
    def break_bootstrap(host: SimulatedWindowsHost) -> None:
        host.faults.fail_command("winfleet-bootstrap.ps1", stderr="Set-Content : Access denied.")

    azure.fleet.on_add.append(break_bootstrap)

    with pytest.raises(CloudRequestRejected) as err:
        await create(azure, "win-az11", public_key)
    assert "win-az11" in err.value.message
    assert "VMExtensionProvisioningError" in err.value.message
    assert "Access denied" in err.value.message
    assert not err.value.retryable

    with pytest.raises(CloudRequestRejected, match=r"win-az11.*provisioning state Failed"):
        await create(azure, "win-az11", public_key)  # a retry runs nothing again
    address = azure.twin.hosted["win-az11"]
    assert azure.fleet.get(address).command_log.count(BOOTSTRAP) == 1


async def test_the_throwaway_admin_password_is_in_no_log_or_result(
    azure: Azure, public_key: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    password = "Thr0waway!pa55-" + "x" * 12
    monkeypatch.setattr(az, "_throwaway_password", lambda: password)
    caplog.set_level(logging.DEBUG)

    host = await create(azure, "win-az4", public_key)

    assert password not in repr(host)
    assert password not in caplog.text
    vm = azure.twin.compute.get(azure.twin.resource_group, "win-az4")
    assert "adminPassword" not in vm["properties"]["osProfile"]


async def test_deleting_twice_removes_vm_then_nic_and_is_fine(
    azure: Azure, public_key: str
) -> None:
    host = await create(azure, "win-az5", public_key)

    assert await ActivityEnvironment().run(terminate_vm, host) is True
    assert await ActivityEnvironment().run(terminate_vm, host) is True

    assert vm_names(azure) == []
    assert nic_names(azure) == []


async def test_a_vm_azure_rejects_leaves_no_nic_behind(
    azure: Azure, public_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(az, "_throwaway_password", lambda: "weak")

    with pytest.raises(CloudRequestRejected, match="password"):
        await create(azure, "win-az6", public_key)

    assert vm_names(azure) == []
    assert nic_names(azure) == []


async def test_a_location_azure_does_not_offer_is_rejected_before_any_resource_exists(
    azure: Azure, public_key: str
) -> None:
    with pytest.raises(CloudRequestRejected, match="LocationNotAvailable"):
        await create(azure, "win-az7", public_key, location="westus")
    assert vm_names(azure) == []
    assert nic_names(azure) == []


async def test_a_wrong_client_secret_is_a_clear_permanent_error(
    azure: Azure, public_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-the-secret")
    use_settings(Settings.from_env(azure.env))  # new clients, new credential

    with pytest.raises(CloudRequestRejected) as err:
        await create(azure, "win-az8", public_key)

    assert "credentials" in err.value.message
    assert "AZURE_CLIENT_SECRET" in err.value.message
    assert not err.value.retryable
    assert "not-the-secret" not in err.value.message
    assert vm_names(azure) == []


async def test_a_vm_of_the_same_name_that_winfleet_did_not_create_is_left_alone(
    azure: Azure, public_key: str
) -> None:
    await create(azure, "win-az9", public_key)
    vm = azure.twin.compute.vms[
        azure.twin.compute.vm_id(azure.twin.resource_group, "win-az9").lower()
    ]
    vm["tags"] = {"owner": "someone-else"}

    with pytest.raises(CloudRequestRejected, match="not tagged by winfleet"):
        await create(azure, "win-az9", public_key)
    with pytest.raises(CloudRequestRejected, match="neither use nor delete"):
        await az.delete_azure_vm(azure.twin.resource_group, Owner(CLUSTER, "pool-a", "win-az9"))
    assert vm_names(azure) == ["win-az9"]
    assert nic_names(azure) == ["win-az9-nic"]


async def test_missing_subscription_is_an_invalid_request(public_key: str) -> None:
    use_settings(Settings.from_env({}))
    with pytest.raises(InvalidRequest, match="AZURE_SUBSCRIPTION_ID"):
        await az.create_azure_vm(
            Owner(CLUSTER, "pool-a", "win-nosub"),
            AzureMachineSpec(resource_group="rg", location="eastus", subnet_id="/s"),
            public_key,
        )


def _http_error(status: int, cls: type[HttpResponseError] = HttpResponseError) -> Exception:
    err = cls(message="boom")
    err.status_code = status
    return err


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ServiceRequestError("connection refused"), CloudUnavailable),
        (_http_error(429), CloudUnavailable),
        (_http_error(503), CloudUnavailable),
        (_http_error(400), CloudRequestRejected),
        (_http_error(403), CloudRequestRejected),
        (_http_error(409), CloudRequestRejected),
        (_http_error(401, ClientAuthenticationError), CloudRequestRejected),
        (_http_error(404, ResourceNotFoundError), az.ResourceMissing),
    ],
)
def test_azure_errors_map_to_what_the_caller_should_do(
    exc: Exception, expected: type[Exception]
) -> None:
    assert type(az.translate(exc, "create VM")) is expected


def test_vm_ids_parse_into_resource_group_and_name() -> None:
    vm_id = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/nodes/providers/"
        "Microsoft.Compute/virtualMachines/win-1"
    )
    assert az.parse_vm_id(vm_id) == ("nodes", "win-1")
    with pytest.raises(InvalidRequest):
        az.parse_vm_id("i-0123456789abcdef0")


async def test_create_vm_activity_fills_the_spec_from_settings_and_reads_the_key_secret(
    azure: Azure, kube_twin: KubeTwin, ssh_key: asyncssh.SSHKey
) -> None:
    use_settings(Settings.from_env({**azure.env, **kube_env(kube_twin)}))
    await put_key_secret("windows-key", ssh_key)
    inp = CreateVmInput(
        "pool-a",
        "win-az10",
        Platform.AZURE,
        azure=AzureMachineSpec(),
        private_key_secret="windows-key",
    )

    host = await ActivityEnvironment().run(create_vm, inp)

    assert host.instance_id == azure.twin.compute.vm_id(azure.twin.resource_group, "win-az10")
    assert nic_names(azure) == ["win-az10-nic"]
