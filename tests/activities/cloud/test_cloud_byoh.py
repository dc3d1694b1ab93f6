"""BYOH hosts: accepted only when listed in ConfigMap `windows-instances`, never created or
deleted by winfleet."""

from __future__ import annotations

import pytest
from cloud_twins import NAMESPACE, put_configmap
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cloud import byoh
from activities.cloud.vm import CreateVmInput, create_vm, terminate_vm
from activities.contracts import ByohHostSpec, HostAddress, HostRef, Platform
from activities.errors import InvalidRequest
from sim.k8s.server import KubeTwin

INSTANCES = {
    "10.1.2.3": "username=Administrator",
    "win-7.lab.example.com": "username=capi",
    "10.1.2.9": "user=capi",
}


def byoh_input(address: str, username: str = "Administrator") -> CreateVmInput:
    return CreateVmInput("pool-b", "win-byoh", Platform.BYOH, byoh=ByohHostSpec(address, username))


async def test_a_listed_ip_becomes_a_host_winfleet_did_not_create(kube_twin: KubeTwin) -> None:
    await put_configmap("windows-instances", INSTANCES)

    host = await ActivityEnvironment().run(create_vm, byoh_input("10.1.2.3"))

    assert host == HostRef(
        Platform.BYOH,
        HostAddress("10.1.2.3"),
        "Administrator",
        None,
        created_by_us=False,
        ip="10.1.2.3",
        pool="pool-b",
        node_name="win-byoh",
    )


async def test_the_username_comes_from_the_configmap(kube_twin: KubeTwin) -> None:
    await put_configmap("windows-instances", INSTANCES)

    host = await byoh.check_byoh_host(ByohHostSpec("win-7.lab.example.com", username=""))

    assert (host.address, host.username) == ("win-7.lab.example.com", "capi")


async def test_the_default_username_defers_to_the_configmap(kube_twin: KubeTwin) -> None:
    await put_configmap("windows-instances", INSTANCES)

    host = await byoh.check_byoh_host(ByohHostSpec("win-7.lab.example.com"))

    assert host.username == "capi"


async def test_a_username_that_contradicts_the_configmap_is_refused(
    kube_twin: KubeTwin,
) -> None:
    await put_configmap("windows-instances", INSTANCES)

    with pytest.raises(InvalidRequest, match="differs from 'capi'"):
        await byoh.check_byoh_host(ByohHostSpec("win-7.lab.example.com", username="wmco"))


async def test_an_unlisted_host_is_refused_saying_how_to_list_it(kube_twin: KubeTwin) -> None:
    await put_configmap("windows-instances", INSTANCES)

    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(create_vm, byoh_input("10.1.2.4"))

    assert err.value.type == "InvalidRequest"
    assert err.value.non_retryable
    assert 'add 10.1.2.4: "username=<user>"' in err.value.message
    assert f"{NAMESPACE}/windows-instances" in err.value.message


async def test_a_malformed_entry_is_refused(kube_twin: KubeTwin) -> None:
    await put_configmap("windows-instances", INSTANCES)

    with pytest.raises(InvalidRequest, match='must read "username=<user>"'):
        await byoh.check_byoh_host(ByohHostSpec("10.1.2.9"))


async def test_without_the_configmap_the_host_is_refused(kube_twin: KubeTwin) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        await byoh.check_byoh_host(ByohHostSpec("10.1.2.3"))


async def test_an_invalid_address_is_refused_before_asking_the_cluster() -> None:
    with pytest.raises(InvalidRequest, match="neither an IPv4 address nor a valid DNS name"):
        await byoh.check_byoh_host(ByohHostSpec("10.1.2.3; rm -rf /"))


async def test_terminate_never_touches_a_byoh_host(kube_twin: KubeTwin) -> None:
    await put_configmap("windows-instances", INSTANCES)
    host = await ActivityEnvironment().run(create_vm, byoh_input("10.1.2.3"))

    assert await ActivityEnvironment().run(terminate_vm, host) is False


@pytest.mark.parametrize(
    ("value", "user"),
    [
        ("username=Administrator", "Administrator"),
        (" username = capi ", "capi"),
        ("username=", None),
        ("user=capi", None),
        ("capi", None),
    ],
)
def test_instance_entries_parse_as_wmco_writes_them(value: str, user: str | None) -> None:
    assert byoh.parse_instance_entry(value) == user
