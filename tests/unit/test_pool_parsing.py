"""A WindowsMachinePool custom resource read into a PoolSpec, or refused naming every problem."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from activities.contracts import AwsMachineSpec, AzureMachineSpec, ByohHostSpec, Platform
from activities.errors import InvalidRequest
from activities.pool_contracts import (
    DrainTimeoutAction,
    IntOrPercent,
    MaintenanceWindow,
    PoolSpec,
    ReconcileSettings,
    UpgradeSettings,
    UpgradeStrategy,
)
from activities.pools import parse_duration, parse_pool


def pool(spec: dict[str, Any], name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "winfleet.io/v1alpha1",
        "kind": "WindowsMachinePool",
        "metadata": {"name": name, "namespace": "winfleet", "generation": 3, "uid": "u-1"},
        "spec": spec,
    }


def test_a_minimal_aws_pool_gets_the_crds_defaults() -> None:
    parsed = parse_pool(pool({"platform": "aws"}))
    assert parsed == PoolSpec(
        name="web",  # type: ignore[arg-type]
        namespace="winfleet",
        platform=Platform.AWS,
        aws=AwsMachineSpec(),
        replicas=0,
        max_unhealthy=IntOrPercent(1),
        upgrade=UpgradeSettings(),
        reconcile=ReconcileSettings(),
        generation=3,
        uid="u-1",
    )


def test_a_full_azure_pool_maps_every_camel_case_field() -> None:
    spec = {
        "platform": "azure",
        "azure": {
            "resourceGroup": "rg",
            "location": "westeurope",
            "vmSize": "Standard_D4s_v3",
            "subnetId": "/subscriptions/s/.../subnets/w",
            "imageSku": "2022-datacenter",
        },
        "replicas": 8,
        "version": "1.1.0",
        "privateKeySecret": "pool-key",
        "maxUnhealthy": "25%",
        "upgrade": {
            "strategy": "InPlace",
            "maxSurge": 1,
            "canary": True,
            "nodeStartupTimeout": "20m",
            "drainTimeout": "1h30m",
            "onDrainTimeout": "Force",
            "maintenanceWindow": {
                "days": ["Sun", "Sat"],
                "start": "22:00",
                "duration": "6h",
                "timeZone": "Europe/Berlin",
            },
        },
        "reconcile": {"interval": "90s", "unhealthyTimeout": "15m"},
    }
    parsed = parse_pool(pool(spec))
    assert parsed.azure == AzureMachineSpec(
        resource_group="rg",
        location="westeurope",
        vm_size="Standard_D4s_v3",
        subnet_id="/subscriptions/s/.../subnets/w",
        image_sku="2022-datacenter",
    )
    assert (parsed.replicas, parsed.version, parsed.private_key_secret) == (8, "1.1.0", "pool-key")
    assert parsed.max_unhealthy == IntOrPercent(25, percent=True)
    assert parsed.upgrade == UpgradeSettings(
        strategy=UpgradeStrategy.IN_PLACE,
        max_surge=1,
        canary=True,
        node_startup_timeout_s=1200,
        drain_timeout_s=5400,
        on_drain_timeout=DrainTimeoutAction.FORCE,
        maintenance_window=MaintenanceWindow(
            days=("Sat", "Sun"), start="22:00", duration_s=21600, time_zone="Europe/Berlin"
        ),
    )
    assert parsed.reconcile == ReconcileSettings(interval_s=90, unhealthy_timeout_s=900)


def test_a_byoh_pool_lists_its_hosts_and_is_always_upgraded_in_place() -> None:
    spec = {
        "platform": "byoh",
        "byoh": {"hosts": [{"address": "10.0.0.5"}, {"address": "10.0.0.6", "username": "ops"}]},
        "upgrade": {"strategy": "Replace"},
    }
    parsed = parse_pool(pool(spec))
    assert parsed.byoh_hosts == (ByohHostSpec("10.0.0.5"), ByohHostSpec("10.0.0.6", "ops"))
    assert parsed.upgrade.strategy is UpgradeStrategy.IN_PLACE
    assert parse_pool(pool({"platform": "byoh"})).byoh_hosts == ()  # every listed host


@pytest.mark.parametrize(
    ("spec", "name", "problem"),
    [
        (
            {"platform": "aws", "maxUnhealthy": "150%"},
            "web",
            'spec.maxUnhealthy: "150%" is more than 100%',
        ),
        ({"platform": "aws", "maxUnhealthy": -1}, "web", "spec.maxUnhealthy: -1 is negative"),
        (
            {"platform": "aws", "maxUnhealthy": 0},
            "web",
            "spec.maxUnhealthy: 0 lets no node be taken down while spec.upgrade.maxSurge is 0",
        ),
        ({"platform": "gcp"}, "web", "spec.platform: 'gcp' is not one of aws, azure, byoh"),
        ({"platform": "aws", "replicas": -2}, "web", "spec.replicas: -2 is not a whole number ≥ 0"),
        (
            {"platform": "aws", "upgrade": {"drainTimeout": "15 minutes"}},
            "web",
            'spec.upgrade.drainTimeout: "15 minutes" is not a duration like "90s", "10m"',
        ),
        (
            {"platform": "aws", "upgrade": {"strategy": "Recreate"}},
            "web",
            'spec.upgrade.strategy: "Recreate" is not one of Replace, InPlace',
        ),
        (
            {"platform": "aws", "azure": {"vmSize": "x"}},
            "web",
            "spec.azure: is set, but spec.platform is aws",
        ),
        (
            {"platform": "aws"},
            "webfarm-01",
            'metadata.name: "webfarm-01" cannot name a pool: node names are <pool>-<5 characters>',
        ),
        ({"platform": "aws"}, "9lives", 'metadata.name: "9lives" cannot name a pool'),
        (
            {"platform": "aws", "version": "1.1.0 beta"},
            "web",
            'spec.version: "1.1.0 beta" is not a payload version',
        ),
        (
            {
                "platform": "aws",
                "upgrade": {
                    "maintenanceWindow": {
                        "days": ["Fri"],
                        "start": "22:00",
                        "duration": "2h",
                        "timeZone": "Mars/Olympus",
                    }
                },
            },
            "web",
            'spec.upgrade.maintenanceWindow.timeZone: "Mars/Olympus" is not an IANA time zone',
        ),
        (
            {
                "platform": "aws",
                "upgrade": {"maintenanceWindow": {"days": ["Friday"], "start": "10pm"}},
            },
            "web",
            "spec.upgrade.maintenanceWindow.days: 'Friday' is not one of Mon, Tue, Wed, Thu,",
        ),
        (
            {"platform": "byoh", "byoh": {"hosts": [{"address": "h1"}, {"address": "h1"}]}},
            "web",
            "spec.byoh.hosts: lists h1 more than once",
        ),
        (
            {"platform": "aws", "reconcile": {"interval": "0s"}},
            "web",
            'spec.reconcile.interval: "0s" must be longer than 0',
        ),
    ],
)
def test_a_nonsense_pool_is_refused_naming_the_field_and_the_problem(
    spec: dict[str, Any], name: str, problem: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_pool(pool(spec, name))
    assert caught.value.message.startswith(f"WindowsMachinePool winfleet/{name} is invalid: ")
    assert problem in caught.value.message


def test_every_problem_of_a_pool_is_listed_in_one_refusal() -> None:
    spec = {
        "platform": "aws",
        "replicas": "3",
        "maxUnhealthy": "150%",
        "upgrade": {"maintenanceWindow": {"days": ["Mon"], "start": "25:00"}},
    }
    with pytest.raises(InvalidRequest) as caught:
        parse_pool(pool(spec, "Web"))
    fields = [
        part.split(":")[0] for part in caught.value.message.split(" is invalid: ")[1].split("; ")
    ]
    assert sorted(fields) == [
        "metadata.name",
        "spec.maxUnhealthy",
        "spec.replicas",
        "spec.upgrade.maintenanceWindow.duration",
        "spec.upgrade.maintenanceWindow.start",
    ]


def test_parsing_does_not_change_the_object_it_reads() -> None:
    obj = pool({"platform": "aws", "aws": {}})
    before = copy.deepcopy(obj)
    parse_pool(obj)
    assert obj == before


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("2h45m30s", 9930),
        ("500ms", 0.5),
        ("0", 0),
    ],
)
def test_go_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "10 m", "1d", "-5m", "m", "1h30"])
def test_other_duration_spellings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
