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
from activities.contracts import (
    CORDONED_BY_ANNOTATION as CORDONED_BY_ANNOTATION,  # re-exported for the fleet modules
)
from activities.contracts import (
    HOST_ANNOTATION as HOST_ANNOTATION,
)
from activities.contracts import (
    POOL_LABEL as POOL_LABEL,
)

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


# --- the pool workflow and its disruption ledger ---------------------------------------------
POOL_GROUP = "winfleet.io"
POOL_VERSION = "v1alpha1"
POOL_PLURAL = "windowsmachinepools"
POOL_KIND = "WindowsMachinePool"
POOL_FINALIZER = "winfleet.io/pool-cleanup"  # nodes are taken out before the pool goes away


@dataclass(frozen=True)
class PoolSignal:
    """`spec_changed`: the watcher saw a new generation of the pool (or its deletion)."""

    generation: int = 0
    deleted: bool = False


class GrantKind(StrEnum):
    DISRUPT = "disrupt"  # the node is (about to be) taken down: counts against the budget
    SURGE = "surge"  # a replacement is being added first; the node itself still serves


@dataclass(frozen=True)
class Grant:
    """One entry of a pool's disruption ledger."""

    node: str
    holder: str  # the workflow ID of the disruptor (upgrade-<pool>, pool-<pool>, ...)
    reason: str
    since: str  # ISO 8601
    kind: GrantKind = GrantKind.DISRUPT
    replacement: str = ""  # the node that takes its place, when there is one


@dataclass(frozen=True)
class DisruptionRequest:
    pool: str
    holder: str
    node: str
    reason: str
    kind: GrantKind = GrantKind.DISRUPT
    replacement: str = ""
    pool_workflow_id: str = ""  # set by the calling workflow (workflows/ids.py)


@dataclass(frozen=True)
class DisruptionDecision:
    granted: bool
    why: str = ""  # when not granted: what it waits for
    max_unavailable: int = 0
    unavailable: int = 0  # now, counting this grant when given


@dataclass(frozen=True)
class DisruptionRelease:
    pool: str
    holder: str
    node: str
    pool_workflow_id: str = ""


@dataclass(frozen=True)
class PoolObservation:
    """A pool's members as the cluster shows them, and (BYOH) the hosts it should have."""

    found: bool  # the WindowsMachinePool exists (and is not being deleted)
    nodes: tuple[NodeView, ...] = ()
    byoh_hosts: tuple[ByohHostSpec, ...] = ()
    generation: int = 0


@dataclass(frozen=True)
class Availability:
    """How many of a pool's desired replicas serve now (for a grant decision; small)."""

    available: int
    available_nodes: tuple[str, ...] = ()  # of the nodes asked about: those that serve now
    unavailable: tuple[str, ...] = ()  # "<node>: <reason>", at most a few


@dataclass(frozen=True)
class RolloutReport:
    """What `UpgradeWindowsPool` tells its pool, which writes it into the pool's status."""

    target_version: str
    state: str  # Planning | Progressing | Paused | Waiting | Halted | Completed
    done: int = 0
    in_flight: tuple[str, ...] = ()
    remaining: int = 0
    waiting_for: str = ""
    started_at: str = ""
    message: str = ""  # why it halted, or what it finished


@dataclass(frozen=True)
class PoolCarry:
    """What a pool workflow hands to its next run (continue-as-new)."""

    ledger: tuple[Grant, ...] = ()
    generation: int = 0
    rollout: RolloutReport | None = None
    failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolRun:
    """Start input of `WindowsPool` (workflow ID `pool-<name>`), started by the pool watcher."""

    pool: str
    carry: PoolCarry | None = None


# --- the rolling upgrade -----------------------------------------------------------------------
@dataclass(frozen=True)
class RolloutCarry:
    """What a rollout hands to its next run (continue-as-new): the plan and where it stands."""

    target: str
    order: tuple[str, ...]
    done: tuple[str, ...] = ()
    replaced_by: tuple[tuple[str, str], ...] = ()  # (old node, its replacement)
    paused: bool = False
    canary_done: bool = False
    started_at: str = ""


@dataclass(frozen=True)
class UpgradeInput:
    """Start input of `UpgradeWindowsPool` (workflow ID `upgrade-<pool>`): plain JSON
    `{"pool": "<name>", "version": "<v>"}` from the CLI, `temporal` or the Web UI."""

    pool: str
    version: str = ""  # empty: the pool's spec.version; given: the pool's spec is set to it first
    carry: RolloutCarry | None = None


@dataclass(frozen=True)
class RolloutProgress:
    """What the rollout's `progress` query returns (display only)."""

    pool: str
    target_version: str
    state: str
    plan: tuple[str, ...]
    done: tuple[str, ...]
    in_flight: tuple[str, ...]
    remaining: tuple[str, ...]
    paused: bool
    budget: str  # maxUnhealthy as set (count or percentage)
    waiting_for: str = ""
    message: str = ""
    started_at: str = ""
