"""Data contracts of the fleet workflows (pools, rollouts, the disruption budget).

Leaf module: imports only `activities.contracts` (the machine specs pools reuse). Every type here
travels through Temporal history, so it holds identifiers, settings and observed state, never
secrets. Frozen dataclasses with tuples; fields added later get defaults. A `PoolSpec` comes
from a WindowsMachinePool custom resource (`activities.pools.parse_pool`); a `NodeView` is what
an activity reports about one node of a pool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from activities.contracts import (
    ANNOTATION_PREFIX,
    AwsMachineSpec,
    AzureMachineSpec,
    ByohHostSpec,
    NodeName,
    Platform,
    PoolName,
)

POOL_LABEL = "winfleet.io/pool"  # on every Node of a pool: the pool's name
CORDONED_BY_ANNOTATION = "winfleet.io/cordoned-by"  # who cordoned the node (a workflow ID)
VERSION_ANNOTATION = ANNOTATION_PREFIX + "version"  # the payload version a node runs
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # as in the CRD; Monday = 0

_PERCENT = re.compile(r"^(\d{1,3})%$")


@dataclass(frozen=True)
class IntOrPercent:
    """A count or a percentage of a pool's replicas (`maxUnhealthy`), as IntOrString."""

    value: int
    percent: bool = False

    @staticmethod
    def parse(raw: int | str) -> IntOrPercent:
        """`3` or `"25%"`; ValueError (with a message for the admin) for anything else."""
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is neither a count nor a percentage")
        if isinstance(raw, int):
            if raw < 0:
                raise ValueError(f"{raw} is negative")
            return IntOrPercent(raw)
        if isinstance(raw, str):
            match = _PERCENT.match(raw.strip())
            if match is None:
                raise ValueError(f'"{raw}" is neither a count nor a percentage like "25%"')
            value = int(match[1])
            if value > 100:
                raise ValueError(f'"{raw}" is more than 100%')
            return IntOrPercent(value, percent=True)
        raise ValueError(f"{raw!r} is neither a count nor a percentage")

    def resolve(self, total: int) -> int:
        """The count for a pool of `total` replicas; a percentage rounds down (Cluster API's
        maxUnavailable), never below 0."""
        if not self.percent:
            return max(self.value, 0)
        return max(total * self.value // 100, 0)

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


class UpgradeStrategy(StrEnum):
    REPLACE = "Replace"  # a new machine, then the old one goes (cloud pools)
    IN_PLACE = "InPlace"  # drain, deconfigure, configure again on the same host (BYOH: always)


class DrainTimeoutAction(StrEnum):
    FAIL = "Fail"  # stop the rollout, naming what blocks the drain
    FORCE = "Force"  # delete the remaining pods


@dataclass(frozen=True)
class MaintenanceWindow:
    """When nodes may be taken down: on `days` (Mon..Sun, local to `time_zone`) from `start`
    ("HH:MM") for `duration_s` seconds of real time."""

    days: tuple[str, ...]
    start: str
    duration_s: int
    time_zone: str = "UTC"


@dataclass(frozen=True)
class UpgradeSettings:
    strategy: UpgradeStrategy = UpgradeStrategy.REPLACE
    max_surge: int = 0
    canary: bool = False
    node_startup_timeout_s: int = 600
    drain_timeout_s: int = 900
    on_drain_timeout: DrainTimeoutAction = DrainTimeoutAction.FAIL
    maintenance_window: MaintenanceWindow | None = None


@dataclass(frozen=True)
class ReconcileSettings:
    interval_s: int = 300
    unhealthy_timeout_s: int = 600


@dataclass(frozen=True)
class PoolSpec:
    """A WindowsMachinePool as the workflows see it (camelCase fields mapped, defaults filled)."""

    name: PoolName
    namespace: str
    platform: Platform
    aws: AwsMachineSpec | None = None
    azure: AzureMachineSpec | None = None
    byoh_hosts: tuple[ByohHostSpec, ...] = ()  # empty: every host in ConfigMap windows-instances
    replicas: int = 0
    version: str = ""  # empty: the worker's default payload version
    private_key_secret: str = "cloud-private-key"  # a Secret's name, never the key
    max_unhealthy: IntOrPercent = IntOrPercent(1)
    upgrade: UpgradeSettings = UpgradeSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    generation: int = 0
    uid: str = ""


@dataclass(frozen=True)
class NodeView:
    """One Node of a pool as an activity observed it."""

    name: NodeName
    ready: str = "Unknown"  # the Ready condition's status: "True", "False" or "Unknown"
    unschedulable: bool = False  # spec.unschedulable (cordoned)
    version: str = ""  # the windowsmachineconfig.openshift.io/version annotation
    created: str = ""  # metadata.creationTimestamp (RFC 3339, UTC)
    pool: str = ""  # the winfleet.io/pool label
    provider_id: str = ""  # spec.providerID (aws:///zone/i-..., azure:///...), empty for BYOH
    address: str = ""  # InternalIP
    deleting: bool = False  # metadata.deletionTimestamp is set
    cordoned_by: str = ""  # the winfleet.io/cordoned-by annotation

    @property
    def available(self) -> bool:
        """Ready, schedulable and not being deleted."""
        return self.ready == "True" and not self.unschedulable and not self.deleting
