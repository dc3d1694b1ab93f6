"""Pools in the cluster: read a WindowsMachinePool, observe its nodes, write its status.

Activities of the fleet workflows (`WindowsPool`, `UpgradeWindowsPool`):
- `read_pool`: the custom resource as a `PoolSpec` (activities/pools.py checks it), or why it
  cannot be used; a pool being deleted or gone says so.
- `observe_pool`: the pool's Nodes (label `winfleet.io/pool=<pool>`) as `NodeView`s and, for
  a BYOH pool, the hosts it should have (ConfigMap `windows-instances`, narrowed by
  `spec.byoh.hosts`).
- `pool_availability`: the small answer a grant decision needs (how many serve, which of the
  nodes asked about serve).
- `write_pool_status`: the `/status` subresource, read-modify-write with the resourceVersion,
  skipped when nothing changed (so a quiet pool writes nothing).
- `set_pool_spec`: `spec.version` / `spec.maxUnhealthy`, as `winfleet upgrade --version` and the
  rollout's `set_max_unhealthy` change them; `pool_finalizer`: add or remove winfleet's finalizer.
Read-only ones change nothing; writes are idempotent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities import events, kube
from activities.cloud.byoh import INSTANCES_CONFIGMAP, parse_instance_entry
from activities.config import settings
from activities.contracts import ByohHostSpec, NodeName, Platform
from activities.errors import InvalidRequest, boundary
from activities.node import OS_LABEL, JsonObject
from activities.pool_contracts import (
    CORDONED_BY_ANNOTATION,
    HOST_ANNOTATION,
    POOL_FINALIZER,
    POOL_GROUP,
    POOL_KIND,
    POOL_LABEL,
    POOL_PLURAL,
    POOL_VERSION,
    VERSION_ANNOTATION,
    Availability,
    NodeView,
    PoolObservation,
    PoolSpec,
)
from activities.pools import parse_pool

MAX_UNAVAILABLE_LISTED = 10


@dataclass(frozen=True)
class PoolRef:
    pool: str


@dataclass(frozen=True)
class PoolRead:
    spec: PoolSpec | None  # None: gone, being deleted, or invalid (see `problem`)
    exists: bool = False
    deleting: bool = False
    problem: str = ""  # why the spec cannot be used (every field named)
    generation: int = 0
    finalized: bool = False  # carries winfleet's finalizer
    default_version: str = ""  # the worker's version for a pool whose spec.version is empty


@dataclass(frozen=True)
class ObserveInput:
    pool: str
    platform: Platform
    byoh_hosts: tuple[ByohHostSpec, ...] = ()  # the spec's list; empty: every listed host


@dataclass(frozen=True)
class AvailabilityInput:
    pool: str
    nodes: tuple[str, ...] = ()  # whose availability the caller needs to know


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""


@dataclass(frozen=True)
class PoolStatus:
    """The pool's status as the pool workflow computed it (written to `/status`)."""

    pool: str
    observed_generation: int
    replicas: int
    ready_replicas: int
    updated_replicas: int
    unavailable_replicas: int
    phase: str
    conditions: tuple[Condition, ...] = ()
    rollout: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    last_reconcile: dict[str, Any] = field(default_factory=dict)  # drift reconciliation's


@dataclass(frozen=True)
class SetPoolSpec:
    pool: str
    version: str = ""  # set spec.version (empty: leave it)
    max_unhealthy: str = ""  # set spec.maxUnhealthy ("2" or "25%"; empty: leave it)


@dataclass(frozen=True)
class FinalizerInput:
    pool: str
    present: bool  # True: add winfleet's finalizer; False: remove it


def _api() -> Any:
    return kube.custom_objects()


async def pool_object(pool: str) -> JsonObject | None:
    """The WindowsMachinePool `pool` in winfleet's namespace, or None when there is none."""
    ns = settings().namespace
    try:
        obj: JsonObject = await kube.call_json(
            f"read pool {ns}/{pool}",
            _api().get_namespaced_custom_object,
            POOL_GROUP,
            POOL_VERSION,
            ns,
            POOL_PLURAL,
            pool,
        )
    except kube.NotFound:
        return None
    return obj


@activity.defn(name="read_pool")
@boundary
async def read_pool(inp: PoolRef) -> PoolRead:
    """The pool's spec, or why there is none to act on."""
    obj = await pool_object(inp.pool)
    if obj is None:
        return PoolRead(spec=None)
    default = settings().version
    meta = obj.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    finalized = POOL_FINALIZER in (meta.get("finalizers") or ())
    if meta.get("deletionTimestamp"):
        return PoolRead(
            None, exists=True, deleting=True, generation=generation, finalized=finalized
        )
    try:
        spec = parse_pool(obj)
    except InvalidRequest as exc:
        return PoolRead(
            None, exists=True, problem=exc.message, generation=generation, finalized=finalized
        )
    return PoolRead(
        spec, exists=True, generation=generation, finalized=finalized, default_version=default
    )


def node_view(node: JsonObject) -> NodeView:
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    labels = meta.get("labels") or {}
    notes = meta.get("annotations") or {}
    ready = next(
        (
            c.get("status", "Unknown")
            for c in status.get("conditions") or ()
            if c.get("type") == "Ready"
        ),
        "Unknown",
    )
    ips = [a["address"] for a in status.get("addresses") or () if a.get("type") == "InternalIP"]
    return NodeView(
        name=NodeName(str(meta.get("name", ""))),
        ready=str(ready),
        unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
        version=str(notes.get(VERSION_ANNOTATION, "")),
        created=str(meta.get("creationTimestamp", "")),
        pool=str(labels.get(POOL_LABEL, "")),
        provider_id=str((node.get("spec") or {}).get("providerID", "")),
        address=str(notes.get(HOST_ANNOTATION) or (ips[0] if ips else "")),
        deleting=bool(meta.get("deletionTimestamp")),
        cordoned_by=str(notes.get(CORDONED_BY_ANNOTATION, "")),
    )


async def pool_nodes(pool: str) -> list[JsonObject]:
    listing = await kube.call_json(
        f"list nodes of pool {pool}",
        kube.core().list_node,
        label_selector=f"{POOL_LABEL}={pool},{OS_LABEL}=windows",
    )
    return [n for n in (listing or {}).get("items") or () if isinstance(n, dict)]


async def byoh_hosts(wanted: tuple[ByohHostSpec, ...]) -> tuple[ByohHostSpec, ...]:
    """The hosts of ConfigMap windows-instances a BYOH pool uses (all, or those it lists)."""
    ns = settings().namespace
    try:
        cm = await kube.call_json(
            f"read configmap {ns}/{INSTANCES_CONFIGMAP}",
            kube.core().read_namespaced_config_map,
            INSTANCES_CONFIGMAP,
            ns,
        )
    except kube.NotFound:
        return ()
    listed: dict[str, str] = {}
    for address, value in ((cm or {}).get("data") or {}).items():
        user = parse_instance_entry(str(value))
        if user:
            listed[str(address)] = user
    if wanted:
        chosen = [w.address for w in wanted if w.address in listed]
    else:
        chosen = sorted(listed)
    return tuple(ByohHostSpec(address=a, username=listed[a]) for a in chosen)


@activity.defn(name="observe_pool")
@boundary
async def observe_pool(inp: ObserveInput) -> PoolObservation:
    """The pool's Nodes and (BYOH) the hosts it should have. Read-only."""
    obj = await pool_object(inp.pool)
    meta = (obj or {}).get("metadata") or {}
    nodes = tuple(sorted((node_view(n) for n in await pool_nodes(inp.pool)), key=lambda n: n.name))
    hosts = await byoh_hosts(inp.byoh_hosts) if inp.platform == Platform.BYOH else ()
    return PoolObservation(
        found=obj is not None and not meta.get("deletionTimestamp"),
        nodes=nodes,
        byoh_hosts=hosts,
        generation=int(meta.get("generation") or 0),
    )


@dataclass(frozen=True)
class PoolNodeInput:
    pool: str
    node: str


@activity.defn(name="read_pool_node")
@boundary
async def read_pool_node(inp: PoolNodeInput) -> NodeView | None:
    """One node of the pool as it is now; None when it is gone or no longer the pool's."""
    try:
        node = await kube.call_json(f"read node {inp.node}", kube.core().read_node, inp.node)
    except kube.NotFound:
        return None
    view = node_view(node)
    return view if view.pool == inp.pool else None


@activity.defn(name="pool_availability")
@boundary
async def pool_availability(inp: AvailabilityInput) -> Availability:
    """How many of the pool's nodes serve now, and which of `inp.nodes` do. Read-only."""
    views = [node_view(n) for n in await pool_nodes(inp.pool)]
    asked = set(inp.nodes)
    down = [f"{v.name}: {why}" for v in views if (why := _why_not(v))]
    return Availability(
        available=sum(1 for v in views if v.available),
        available_nodes=tuple(sorted(v.name for v in views if v.available and v.name in asked)),
        unavailable=tuple(down[:MAX_UNAVAILABLE_LISTED]),
    )


def _why_not(v: NodeView) -> str:
    if v.deleting:
        return "deleting"
    if v.ready != "True":
        return "Unknown" if v.ready == "Unknown" else "NotReady"
    return "cordoned" if v.unschedulable else ""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(
    old: list[JsonObject], new: tuple[Condition, ...], generation: int
) -> list[JsonObject]:
    """`new` as status conditions, keeping lastTransitionTime where the status did not change."""
    before = {c.get("type"): c for c in old}
    out = []
    for c in new:
        prev = before.get(c.type) or {}
        changed = prev.get("status") != c.status
        out.append(
            {
                "type": c.type,
                "status": c.status,
                "reason": c.reason,
                "message": c.message[:1024],
                "observedGeneration": generation,
                "lastTransitionTime": _now() if changed else prev.get("lastTransitionTime", _now()),
            }
        )
    return out


@activity.defn(name="write_pool_status")
@boundary
async def write_pool_status(inp: PoolStatus) -> bool:
    """Write the pool's status; False when it was already so (nothing written) or the pool is
    gone."""
    ns = settings().namespace
    for _ in range(5):
        obj = await pool_object(inp.pool)
        if obj is None:
            return False
        old = obj.get("status") or {}
        status = {
            **old,
            "replicas": inp.replicas,
            "readyReplicas": inp.ready_replicas,
            "updatedReplicas": inp.updated_replicas,
            "unavailableReplicas": inp.unavailable_replicas,
            "observedGeneration": inp.observed_generation,
            "selector": f"{POOL_LABEL}={inp.pool}",
            "phase": inp.phase,
            "conditions": _conditions(
                old.get("conditions") or [], inp.conditions, inp.observed_generation
            ),
            "rollout": inp.rollout,
            "budget": inp.budget,
        }
        if inp.last_reconcile:
            status["lastReconcile"] = inp.last_reconcile
        if _same(old, status):
            return False
        body = {**obj, "status": status}
        try:
            await kube.call_json(
                f"write status of pool {ns}/{inp.pool}",
                _api().replace_namespaced_custom_object_status,
                POOL_GROUP,
                POOL_VERSION,
                ns,
                POOL_PLURAL,
                inp.pool,
                body,
            )
            return True
        except kube.Conflict:
            continue
        except kube.NotFound:
            return False
    raise kube.Conflict(f"writing status of pool {inp.pool}: it kept changing; retrying")


def _same(old: JsonObject, new: JsonObject) -> bool:
    """Equal apart from condition timestamps (which only move when a status changes)."""

    def strip(s: JsonObject) -> JsonObject:
        conds = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in s.get("conditions") or []
        ]
        return {**s, "conditions": conds}

    return strip(old) == strip(new)


@dataclass(frozen=True)
class PoolEventInput:
    pool: str
    reason: str  # RolloutHalted, OnboardingFailed, ...
    message: str
    key: str  # one Event per key: a retry records nothing twice
    warning: bool = True


@activity.defn(name="record_pool_event")
@boundary
async def record_pool_event(inp: PoolEventInput) -> None:
    """An Event on the WindowsMachinePool (`kubectl describe wmp` shows it)."""
    obj = await pool_object(inp.pool)
    meta = (obj or {}).get("metadata") or {}
    await events.record_event(
        reason=inp.reason,
        message=inp.message,
        involved={
            "apiVersion": f"{POOL_GROUP}/{POOL_VERSION}",
            "kind": POOL_KIND,
            "name": inp.pool,
            "namespace": settings().namespace,
            "uid": str(meta.get("uid", "")),
        },
        type_="Warning" if inp.warning else "Normal",
        name=f"{inp.pool}.{inp.reason.lower()}.{hashlib.sha256(inp.key.encode()).hexdigest()[:12]}",
    )


@activity.defn(name="set_pool_spec")
@boundary
async def set_pool_spec(inp: SetPoolSpec) -> int:
    """Set `spec.version` and/or `spec.maxUnhealthy`; returns the pool's generation after."""
    ns = settings().namespace
    spec: JsonObject = {}
    if inp.version:
        spec["version"] = inp.version
    if inp.max_unhealthy:
        text = inp.max_unhealthy.strip()
        spec["maxUnhealthy"] = text if text.endswith("%") else int(text)
    if not spec:
        obj = await pool_object(inp.pool)
        return int(((obj or {}).get("metadata") or {}).get("generation") or 0)
    try:
        obj = await kube.call_json(
            f"set spec of pool {ns}/{inp.pool}",
            _api().patch_namespaced_custom_object,
            POOL_GROUP,
            POOL_VERSION,
            ns,
            POOL_PLURAL,
            inp.pool,
            {"spec": spec},
            _content_type="application/merge-patch+json",
        )
    except kube.NotFound as exc:
        raise InvalidRequest(f"pool {ns}/{inp.pool} does not exist") from exc
    return int(((obj or {}).get("metadata") or {}).get("generation") or 0)


@activity.defn(name="pool_finalizer")
@boundary
async def pool_finalizer(inp: FinalizerInput) -> bool:
    """Add or remove winfleet's finalizer (with the resourceVersion); True if it changed."""
    ns = settings().namespace
    for _ in range(5):
        obj = await pool_object(inp.pool)
        if obj is None:
            return False
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or ())
        has = POOL_FINALIZER in finalizers
        if has == inp.present:
            return False
        finalizers = (
            [*finalizers, POOL_FINALIZER]
            if inp.present
            else [f for f in finalizers if f != POOL_FINALIZER]
        )
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        try:
            await kube.call_json(
                f"{'add' if inp.present else 'remove'} the finalizer of pool {ns}/{inp.pool}",
                _api().patch_namespaced_custom_object,
                POOL_GROUP,
                POOL_VERSION,
                ns,
                POOL_PLURAL,
                inp.pool,
                patch,
                _content_type="application/merge-patch+json",
            )
            return True
        except kube.Conflict:
            continue
        except kube.NotFound:
            return False
    raise kube.Conflict(f"finalizer of pool {inp.pool}: the pool kept changing; retrying")
