"""Data contracts shared by the onboarding workflow and its activities.

Leaf module: imports nothing from the product. Every type here travels through Temporal history,
so it holds identifiers and references only, never secrets (keys, tokens, kubeconfigs).
Fields added later get defaults; frozen types use tuples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

NodeName = NewType("NodeName", str)
InstanceId = NewType("InstanceId", str)
HostAddress = NewType("HostAddress", str)
PoolName = NewType("PoolName", str)

TASK_QUEUE = "winfleet"
ANNOTATION_PREFIX = "windowsmachineconfig.openshift.io/"
POOL_LABEL = "winfleet.io/pool"  # on every Node of a pool: the pool's name
# Set by winfleet when it cordons a node (value: the run that did); winfleet only ever
# uncordons a node that carries it, so a node an admin cordoned stays cordoned.
CORDONED_BY_ANNOTATION = "winfleet.io/cordoned-by"
HOST_ANNOTATION = "winfleet.io/host"  # the address a node's host is reached at (BYOH matching)


class Platform(StrEnum):
    AWS = "aws"
    AZURE = "azure"
    BYOH = "byoh"


class Phase(StrEnum):
    """The nine onboarding phases, in order."""

    VM_CREATE = "vm-create"
    WAIT_SSH = "wait-ssh"
    COPY_PAYLOAD = "copy-payload"
    CONFIGURE_KUBELET = "configure-kubelet"
    APPROVE_CSRS = "approve-csrs"
    HYBRID_OVERLAY = "hybrid-overlay"
    CNI = "cni"
    KUBE_PROXY = "kube-proxy"
    NODE_READY = "node-ready"


PHASES: tuple[Phase, ...] = tuple(Phase)


@dataclass(frozen=True)
class AwsMachineSpec:
    image_id: str = ""  # empty: newest Windows Server AMI the account can see
    instance_type: str = "m5a.large"
    subnet_id: str = ""
    security_group_ids: tuple[str, ...] = ()
    region: str = ""  # empty: from the worker's environment


@dataclass(frozen=True)
class AzureMachineSpec:
    resource_group: str = ""
    location: str = ""
    vm_size: str = "Standard_D2s_v3"
    subnet_id: str = ""  # full ARM id of the subnet the NIC joins
    image_publisher: str = "MicrosoftWindowsServer"
    image_offer: str = "WindowsServer"
    image_sku: str = "2019-Datacenter-with-Containers"
    image_version: str = "latest"


@dataclass(frozen=True)
class ByohHostSpec:
    address: str = ""  # IPv4 or DNS name of the existing host
    username: str = "Administrator"


@dataclass(frozen=True)
class OnboardNodeInput:
    """Start input of `OnboardWindowsNode`; plain JSON from the CLI or Web UI maps onto it."""

    pool: str
    node_name: str  # expected Kubernetes node name == Windows hostname (lowercase)
    platform: Platform
    aws: AwsMachineSpec | None = None
    azure: AzureMachineSpec | None = None
    byoh: ByohHostSpec | None = None
    # Reference only: the secret (in the winfleet namespace) whose `private-key.pem` holds the
    # SSH private key. The key itself never enters the workflow.
    private_key_secret: str = "cloud-private-key"
    version: str = ""  # empty: the worker's configured winfleet version


@dataclass(frozen=True)
class HostRef:
    """Where the VM/host is once it exists. No secrets."""

    platform: Platform
    address: HostAddress
    username: str
    instance_id: InstanceId | None = None  # None for BYOH
    # True only when this very workflow run launched the VM (AWS: its ClientToken; Azure: its
    # `winfleet-run` tag): compensation deletes nothing else. False for a VM found by its tags
    # that an earlier run launched, and for BYOH hosts.
    created_by_us: bool = False
    region: str = ""  # AWS: the region the instance lives in (terminate needs it); else empty
    # The IPv4 address `address` resolved to (once, at vm-create): kubelet's --node-ip and the
    # serving CSR's IP SAN. `address` stays as given (SSH target, host-key pin key).
    ip: str = ""
    pool: str = ""  # the pool and node the VM is tagged for (terminate checks the tags)
    node_name: str = ""


@dataclass(frozen=True)
class NodeBefore:
    """The Node of this name as a run found it before changing anything (or its absence)."""

    exists: bool = False
    uid: str = ""
    ready: bool = False
    unschedulable: bool = False
    cordoned_by: str = ""  # winfleet.io/cordoned-by: which winfleet run cordoned it, if one did
    version: str = ""  # its windowsmachineconfig.openshift.io/version annotation


@dataclass(frozen=True)
class PreflightResult:
    """What a run checked before touching anything."""

    node: NodeBefore
    version: str  # the payload version this run installs and annotates


@dataclass(frozen=True)
class OnboardNodeResult:
    node_name: NodeName
    host: HostRef
    version: str
    phases_completed: tuple[Phase, ...] = ()
    bytes_copied: int = 0


@dataclass(frozen=True)
class Progress:
    """What the `progress` query returns: display only."""

    node_name: str
    phase: str
    completed: tuple[str, ...] = ()
    status: str = "running"  # running | completed | failed | compensating
    detail: str = ""
    host: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolVm:
    """A pool's VM, named by what it is tagged for (cluster from the worker, pool, node): what a
    decommission deletes when the VM was launched by an earlier run (the pool's own)."""

    pool: str
    node_name: str
    platform: Platform
    region: str = ""  # AWS; empty: the worker's
    resource_group: str = ""  # Azure; empty: the worker's


class DecommissionStep(StrEnum):
    """What `DecommissionWindowsNode` does, in this order (each only when asked for)."""

    CORDON = "cordon"
    DRAIN = "drain"
    DECONFIGURE = "deconfigure"
    DELETE_NODE = "delete-node"
    TERMINATE_VM = "terminate-vm"
    FORGET_PIN = "forget-pin"


@dataclass(frozen=True)
class DecommissionInput:
    """Take a Windows node out: the child workflow onboarding, upgrade, scale-down and repair
    share. Every step is opt-in, so a caller undoes exactly what it owns."""

    node_name: str
    pool: str
    reason: str  # why, for events, logs and the workflow's progress
    host: HostRef | None = None  # where the node runs (deconfigure, VM, pin)
    private_key_secret: str = "cloud-private-key"
    drain: bool = False  # cordon, then evict the pods (PodDisruptionBudgets honoured)
    drain_timeout_s: float = 900.0
    force_drain: bool = False  # after the timeout, delete the pods the budgets still protect
    deconfigure: bool = False  # remove winfleet's services, HNS state and C:\k from the host
    delete_node: bool = False
    node_uid: str = ""  # delete only the Node with this UID...
    node_created_after: str = ""  # ...or, without one, only a Node created since (ISO 8601)
    terminate_vm: bool = False  # the VM in `host` (refused for a BYOH host)
    retire_vm: PoolVm | None = None  # or: the pool's VM for this node, found by its tags
    forget_pin: bool = False  # the host key pinned for `host.address`
    best_effort: bool = False  # compensation: try every step, report what was left
    claimed_by: str = ""  # the caller holds the node's claim; empty: claim it here


@dataclass(frozen=True)
class DecommissionResult:
    done: tuple[DecommissionStep, ...] = ()
    left: tuple[str, ...] = ()  # "<step>: <why>" for steps that failed (best effort only)
