"""Data contracts of drift reconciliation (`ReconcileWindowsPool`, its checks and its report).

Leaf module: imports only other contract modules. What the read-only checks find is a
`Finding` (what drifted, on which node, in which subject: a service, a file, a VM); the plan
(workflows/fleet/drift.py) turns findings into actions; the run returns a `ReconcileReport`.
Everything here travels through Temporal history: identifiers and short descriptions only,
never secrets or command output. Frozen dataclasses with tuples; later fields get defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from activities.contracts import Platform

DESIRED_STATE_ANNOTATION = "winfleet.io/desired-hash"
"""Per node: the hash of its desired state and of each part (see activities/desired_state.py)."""


class Check(StrEnum):
    """What drifted. Cluster-level checks first, then the node-level ones (over SSH)."""

    MISSING_REPLICA = "missing-replica"  # fewer nodes than desired: the pool onboards
    EXTRA_REPLICA = "extra-replica"  # more nodes than desired: the pool takes some out
    BYOH_ADDED = "byoh-host-added"  # listed in windows-instances, no node yet
    BYOH_REMOVED = "byoh-host-removed"  # a node whose host is no longer listed
    VM_GONE = "vm-gone"  # a Node whose VM no longer exists
    ORPHAN_VM = "orphan-vm"  # a VM tagged for the pool with no Node and no onboarding
    STALE_VERSION = "stale-version"  # not on the pool's version: the rollout's job
    NOT_READY = "not-ready"  # NotReady/Unknown (for how long: in the detail)
    UNREACHABLE = "unreachable"  # SSH refused or timed out
    DESIRED_STATE = "desired-state"  # the desired-state hash differs (subject: the part)
    SERVICE_MISSING = "service-missing"
    SERVICE_STOPPED = "service-stopped"
    SERVICE_DISABLED = "service-disabled"  # start type not Automatic
    SERVICE_ARGUMENTS = "service-arguments"  # command line not what winfleet defines
    PAYLOAD_FILE = "payload-file"  # missing, or its hash is not the version manifest's
    CNI_CONFIG = "cni-config"  # cni.conf differs from what the node should have
    HNS = "hns"  # the overlay HNS network or kube-proxy's VIP endpoint is missing
    SERVING_CERTIFICATE = "serving-certificate"  # kubelet's serving certificate expiring


NODE_CHECKS = frozenset(
    {
        Check.UNREACHABLE,
        Check.SERVICE_MISSING,
        Check.SERVICE_STOPPED,
        Check.SERVICE_DISABLED,
        Check.SERVICE_ARGUMENTS,
        Check.PAYLOAD_FILE,
        Check.CNI_CONFIG,
        Check.HNS,
        Check.SERVING_CERTIFICATE,
        Check.DESIRED_STATE,
    }
)
"""Found over SSH (or by comparing a node's desired state): put right on the node itself."""


@dataclass(frozen=True)
class Finding:
    check: Check
    node: str = ""  # "" for the pool as a whole (missing replicas, an orphan VM)
    subject: str = ""  # the service, file, HNS object, VM id, host address or part
    detail: str = ""  # what was seen, briefly (never command output or secrets)


@dataclass(frozen=True)
class NodeState:
    """One Node of the pool as the cluster shows it (what the plan needs, nothing more)."""

    name: str
    address: str = ""
    ready: str = "Unknown"  # the Ready condition's status
    ready_since: str = ""  # its lastTransitionTime (RFC 3339)
    unschedulable: bool = False
    deleting: bool = False
    version: str = ""
    busy: str = ""  # who is changing it now (a claim or a grant of another workflow), if anyone


@dataclass(frozen=True)
class OrphanVm:
    vm_id: str  # EC2 instance id or Azure VM name
    node: str  # the node it is tagged for
    launched: str  # RFC 3339


@dataclass(frozen=True)
class ClusterObservation:
    """What `observe_drift` saw of a pool at one moment. Read-only."""

    found: bool  # the pool exists and is not being deleted
    nodes: tuple[NodeState, ...] = ()
    vm_gone: tuple[str, ...] = ()  # nodes whose VM no longer exists (cloud pools)
    orphan_vms: tuple[OrphanVm, ...] = ()  # VMs tagged for the pool without a Node
    byoh_added: tuple[str, ...] = ()  # listed hosts no node runs on
    byoh_removed: tuple[str, ...] = ()  # nodes whose host is no longer listed
    listed_hosts: int = 0  # BYOH: the hosts the pool should have
    vms_checked: bool = False  # the cloud was asked (False: BYOH, or no cloud configured)
    vm_problem: str = ""  # why the cloud could not be asked (the rest was observed)


@dataclass(frozen=True)
class CheckNodesInput:
    """One batch of node-level checks: the nodes of `pool` whose index in the name-sorted list
    is `shard` modulo `shards`, except those in `skip` (being changed, gone, unreachable)."""

    pool: str
    platform: Platform
    shard: int = 0
    shards: int = 1
    skip: tuple[str, ...] = ()
    private_key_secret: str = "cloud-private-key"
    pool_version: str = ""  # the version nodes without an annotation are checked against
    machine_hash: str = ""  # the pool's machine spec now (activities/desired_state.py)
    only: tuple[str, ...] = ()  # check just these nodes (a re-check after a repair)


@dataclass(frozen=True)
class NodeDrift:
    """A node on which checks found something, with what a repair of it needs to know."""

    node: str
    address: str
    username: str
    findings: tuple[Finding, ...]
    node_subnet: str = ""  # k8s.ovn.org/hybrid-overlay-node-subnet
    version: str = ""
    node_ip: str = ""  # the Node's InternalIP (kubelet's --node-ip, the serving CSR's IP)


@dataclass(frozen=True)
class CheckNodesResult:
    checked: int = 0
    clean: int = 0
    drifted: tuple[NodeDrift, ...] = ()


@dataclass(frozen=True)
class ServiceControlInput:
    """Small steps a repair needs around the onboarding activities (activities/drift_repair.py),
    done in this order: forget what winfleet last applied, stop, make Automatic, ensure
    windows_exporter, start."""

    node_name: str
    address: str
    username: str
    private_key_secret: str
    forget: tuple[str, ...] = ()  # services whose applied-definition marker is a lie
    stop: tuple[str, ...] = ()  # services to stop (their binaries are about to be replaced)
    automatic: tuple[str, ...] = ()  # services to set to start automatically
    exporter: bool = False  # ensure windows_exporter as winfleet defines it
    start: tuple[str, ...] = ()  # services to start, in this order


@dataclass(frozen=True)
class RepairRecord:
    """`record_repair`: an Event on the Node saying what was put right (or is still broken),
    and, given its subnet and machine hash, the node's desired-state annotation."""

    node_name: str
    repaired: tuple[str, ...]
    run: str  # the workflow run (names the Event: one per run and node)
    still_broken: tuple[str, ...] = ()
    version: str = ""
    node_subnet: str = ""
    machine_hash: str = ""


@dataclass(frozen=True)
class OrphanVmInput:
    pool: str
    platform: Platform
    node_name: str  # the node the VM is tagged for
    region: str = ""
    resource_group: str = ""


# --- the run and its report ------------------------------------------------------------------
@dataclass(frozen=True)
class ReconcileInput:
    """Start input of `ReconcileWindowsPool`: plain JSON `{"pool": "<name>"}` from the pool's
    Schedule, the CLI, `temporal` or the Web UI. `dry_run`: observe and plan, change nothing."""

    pool: str
    dry_run: bool = False


@dataclass(frozen=True)
class Outcome:
    """What became of one finding."""

    check: str
    subject: str = ""
    found: str = ""  # what was seen
    action: str = ""  # what the plan chose
    result: str = ""  # done | deferred | planned (dry run) | reported | failed
    why: str = ""


@dataclass(frozen=True)
class NodeReport:
    node: str
    outcomes: tuple[Outcome, ...]


@dataclass(frozen=True)
class ReconcileSummary:
    """What the run tells the pool workflow (`reconcile_update`), which writes it to status."""

    time: str  # RFC 3339, when the run observed
    found: int = 0
    repaired: int = 0
    deferred: int = 0
    degraded: str = ""  # why nothing was repaired (the short-circuit), or ""
    dry_run: bool = False


@dataclass(frozen=True)
class ReconcileReport:
    """The run's result (JSON): per node and for the pool, what was found, done or deferred."""

    pool: str
    state: str  # Clean | Repaired | Deferred | Degraded | Planned (dry run) | Skipped
    summary: ReconcileSummary
    nodes_checked: int = 0
    unhealthy: tuple[str, ...] = ()
    max_unhealthy: int = 0
    pool_outcomes: tuple[Outcome, ...] = ()
    nodes: tuple[NodeReport, ...] = ()
    message: str = ""
