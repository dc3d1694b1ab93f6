"""The Node object of a Windows instance: wait for it, finish it, or remove it.

Activities called by the onboarding workflow: `wait_node_annotation` (hybrid-overlay phase waits
for the OVN subnet and gateway-MAC annotations), `wait_node_ready` (last phase), `finalize_node`
(version, pub-key-hash and desired-state annotations, uncordon, `MachineSetup` event), and, on
compensation, `delete_node` and `record_setup_failure`. Nodes are read from the worker's
watch-fed cache (activities/cache.py): waits wake when the Node changes instead of polling the
API, heartbeat and are bounded by their input's `timeout_s`. Writes carry the resourceVersion
they were based on; a conflict re-reads from the API. Every activity can be repeated without
harm.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from temporalio import activity

from activities import cache, desired_state, events, kube
from activities.config import settings
from activities.contracts import (
    ANNOTATION_PREFIX,
    CORDONED_BY_ANNOTATION,
    HOST_ANNOTATION,
    POOL_LABEL,
    NodeBefore,
)
from activities.drift_contracts import DESIRED_STATE_ANNOTATION
from activities.errors import InvalidRequest, NodeNotReadyYet, boundary

OS_LABEL = "kubernetes.io/os"
VERSION_ANNOTATION = ANNOTATION_PREFIX + "version"
PUB_KEY_HASH_ANNOTATION = ANNOTATION_PREFIX + "pub-key-hash"
PRIVATE_KEY_FIELD = "private-key.pem"
WRITE_ATTEMPTS = 5  # a conditional write that conflicts is re-read (from the API) and retried

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class WaitNodeInput:
    node_name: str
    timeout_s: float


@dataclass(frozen=True)
class NodeFacts:
    name: str
    internal_ip: str
    kubelet_version: str
    ready: bool


@dataclass(frozen=True)
class WaitNodeAnnotationInput:
    node_name: str
    keys: tuple[str, ...]
    timeout_s: float


@dataclass(frozen=True)
class FinalizeNodeInput:
    node_name: str
    version: str = ""  # empty: the worker's configured winfleet version
    # Reference to the secret holding the SSH private key; its public key's hash is annotated.
    private_key_secret: str = "cloud-private-key"
    pub_key_hash: str = ""  # given: used as is, the secret is not read
    pool: str = ""  # labelled winfleet.io/pool=<pool> (a pool's members are found by it)
    host: str = ""  # annotated winfleet.io/host: the address the host is reached at
    # Given both: the node's desired state is annotated too (activities/desired_state.py).
    node_subnet: str = ""
    machine_hash: str = ""


@dataclass(frozen=True)
class DeleteNodeInput:
    node_name: str
    # Precondition: delete only the Node with this UID (the one the run saw).
    uid: str = ""
    # Without a UID: delete only a Windows Node created at or after this time (ISO 8601), i.e.
    # one registered during the calling run, never an older one of the same name.
    created_after: str = ""


@dataclass(frozen=True)
class SetupFailureInput:
    node_name: str
    phase: str
    reason: str
    # Set (e.g. to the workflow run id) to record at most one event per key, even on retries.
    key: str = ""


# --- reading ---------------------------------------------------------------------------------
async def call_json(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JsonObject:
    """`kube.call_json` for calls that answer one object: the object as a dict."""
    data = await kube.call_json(what, fn, *args, **kwargs)
    return data if isinstance(data, dict) else {}


async def get_node(name: str, *, fresh: bool = False) -> JsonObject | None:
    """The Node as JSON (do not change it), or None when it does not exist; from the cache,
    or with `fresh` from the API."""
    return await cache.node(name, fresh=fresh)


def is_ready(node: JsonObject) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_before(node: JsonObject) -> NodeBefore:
    """What a run must remember about a Node it found (to never undo what it did not do)."""
    meta = node.get("metadata") or {}
    notes = meta.get("annotations") or {}
    return NodeBefore(
        exists=True,
        uid=str(meta.get("uid", "")),
        ready=is_ready(node),
        unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
        cordoned_by=str(notes.get(CORDONED_BY_ANNOTATION, "")),
        version=str(notes.get(VERSION_ANNOTATION, "")),
    )


def facts(node: JsonObject) -> NodeFacts:
    status = node.get("status") or {}
    ips = [a["address"] for a in status.get("addresses") or () if a.get("type") == "InternalIP"]
    return NodeFacts(
        name=node["metadata"]["name"],
        internal_ip=ips[0] if ips else "",
        kubelet_version=(status.get("nodeInfo") or {}).get("kubeletVersion", ""),
        ready=is_ready(node),
    )


# --- activities ------------------------------------------------------------------------------
@activity.defn(name="wait_node_ready")
@boundary
async def wait_node_ready(inp: WaitNodeInput) -> NodeFacts:
    """Wait until the Node reports Ready; `NodeNotReadyYet` after `timeout_s`."""
    last: list[JsonObject] = []

    async def probe() -> NodeFacts | None:
        node = await get_node(inp.node_name)
        if node is None:
            return None
        last[:] = [node]
        return facts(node) if is_ready(node) else None

    found = await cache.wait_until(
        f"waiting for node {inp.node_name} to be Ready",
        probe,
        inp.timeout_s,
        nodes=(inp.node_name,),
    )
    if found is not None:
        return found
    if not last:
        raise NodeNotReadyYet(
            f"node {inp.node_name} has not registered after {inp.timeout_s:.0f}s; "
            "check kubelet on the host and its CSRs"
        )
    raise NodeNotReadyYet(
        f"node {inp.node_name} is not Ready after {inp.timeout_s:.0f}s ({_ready_detail(last[0])}); "
        "check kubelet, hybrid-overlay-node and kube-proxy on the host"
    )


@activity.defn(name="wait_node_annotation")
@boundary
async def wait_node_annotation(inp: WaitNodeAnnotationInput) -> dict[str, str]:
    """Wait until every key in `inp.keys` is annotated on the Node; return their values."""

    async def probe() -> dict[str, str] | None:
        node = await get_node(inp.node_name)
        notes = ((node or {}).get("metadata") or {}).get("annotations") or {}
        if all(k in notes for k in inp.keys):
            return {k: str(notes[k]) for k in inp.keys}
        return None

    keys = ", ".join(inp.keys)
    found = await cache.wait_until(
        f"waiting for {keys} on node {inp.node_name}", probe, inp.timeout_s, nodes=(inp.node_name,)
    )
    if found is None:
        raise NodeNotReadyYet(
            f"node {inp.node_name} still lacks annotation(s) {keys} after {inp.timeout_s:.0f}s; "
            "check the cluster network operator (OVN master) and hybrid-overlay-node on the host"
        )
    return found


@activity.defn(name="finalize_node")
@boundary
async def finalize_node(inp: FinalizeNodeInput) -> str:
    """Annotate version and pub-key-hash, uncordon, record `MachineSetup` (once per Node).

    Returns the version annotated (the input's, or the worker's configured version).
    """
    version = inp.version or settings().version
    run_id = activity.info().workflow_run_id or ""
    key_hash = ""
    desired = ""
    if inp.node_subnet and inp.machine_hash:
        state_now = await desired_state.for_node(
            node=inp.node_name,
            version=version,
            machine=inp.machine_hash,
            node_subnet=inp.node_subnet,
        )
        desired = state_now.annotation()
    for attempt in range(WRITE_ATTEMPTS):
        # The cache first; after a conflict, or when the cache has no such Node yet, the API
        # (a Node that just registered may not have reached the cache).
        node = await get_node(inp.node_name, fresh=attempt > 0)
        if node is None and attempt == 0:
            node = await get_node(inp.node_name, fresh=True)
        if node is None:
            raise NodeNotReadyYet(
                f"node {inp.node_name} does not exist; it cannot be finalized yet"
            )
        meta = node["metadata"]
        os_label = (meta.get("labels") or {}).get(OS_LABEL)
        if os_label != "windows":
            raise InvalidRequest(
                f"node {inp.node_name} has label {OS_LABEL}={os_label!r}, not 'windows'; "
                "refusing to mark it as a winfleet Windows node"
            )
        key_hash = key_hash or inp.pub_key_hash or await public_key_hash(inp.private_key_secret)
        patch, cordoned, ours = _finalize_patch(node, inp, version, key_hash, desired)
        if patch is None:
            break
        try:
            written = await call_json(
                f"annotate node {inp.node_name}" + (" and uncordon it" if ours else ""),
                kube.core().patch_node,
                inp.node_name,
                patch,
                _content_type="application/merge-patch+json",
            )
        except kube.Conflict:
            continue  # the Node changed since it was read (a cordon, say): judge it again
        cache.observe_node(written)
        break
    else:
        raise kube.Conflict(
            f"annotate node {inp.node_name}: still conflicting after {WRITE_ATTEMPTS} tries"
        )
    state = (
        "left cordoned (someone other than winfleet cordoned it)"
        if cordoned and not ours
        else "schedulable"
    )
    await events.record_event(
        reason=events.MACHINE_SETUP,
        message=f"Windows node {inp.node_name} configured by winfleet {version}, {state}",
        involved=_node_ref(inp.node_name, meta.get("uid", "")),
        # Once per run and Node: a retry records nothing twice, a re-onboarding records anew.
        name=f"{inp.node_name}.{_slug(meta.get('uid', '') + run_id)}.machinesetup",
    )
    return version


def _finalize_patch(
    node: JsonObject, inp: FinalizeNodeInput, version: str, key_hash: str, desired: str
) -> tuple[JsonObject | None, bool, bool]:
    """The merge patch that finalizes `node` (None: nothing to change), carrying the Node's
    resourceVersion; whether it is cordoned, and whether by winfleet (then it is uncordoned).
    `desired` is the desired-state annotation ("" when the input carries none)."""
    meta = node["metadata"]
    wanted: dict[str, str | None] = {VERSION_ANNOTATION: version, PUB_KEY_HASH_ANNOTATION: key_hash}
    notes = meta.get("annotations") or {}
    cordoned = bool((node.get("spec") or {}).get("unschedulable"))
    # Only a cordon winfleet set is lifted; someone else's stays (and is said so).
    ours = cordoned and bool(notes.get(CORDONED_BY_ANNOTATION))
    if inp.host:
        wanted[HOST_ANNOTATION] = inp.host
    if desired:
        wanted[DESIRED_STATE_ANNOTATION] = desired
    patch: JsonObject = {
        "metadata": {"annotations": wanted, "resourceVersion": meta.get("resourceVersion")}
    }
    labels = meta.get("labels") or {}
    if inp.pool and labels.get(POOL_LABEL) != inp.pool:
        patch["metadata"]["labels"] = {POOL_LABEL: inp.pool}
    if ours or (not cordoned and CORDONED_BY_ANNOTATION in notes):
        wanted[CORDONED_BY_ANNOTATION] = None
        patch["spec"] = {"unschedulable": False}
    changed = "spec" in patch or "labels" in patch["metadata"]
    if changed or any(notes.get(k) != v for k, v in wanted.items()):
        return patch, cordoned, ours
    return None, cordoned, ours


@activity.defn(name="delete_node")
@boundary
async def delete_node(inp: DeleteNodeInput) -> bool:
    """Delete a Windows Node; False when it does not exist or is not the one meant.

    The delete carries the UID of the Node meant as a precondition: `inp.uid`, or, with
    `inp.created_after`, the UID of a Node registered since then (an older Node of the same
    name is never deleted). The Node is read from the API, not the cache: a Node registered a
    moment ago is one compensation must see.
    """
    node = await get_node(inp.node_name, fresh=True)
    if node is None:
        return False
    meta = node["metadata"]
    os_label = (meta.get("labels") or {}).get(OS_LABEL)
    if os_label not in (None, "windows"):
        raise InvalidRequest(
            f"node {inp.node_name} is labelled {OS_LABEL}={os_label}; winfleet deletes only "
            "Windows nodes, check for a name clash"
        )
    uid = str(meta.get("uid", ""))
    if inp.uid and inp.uid != uid:
        activity.logger.info("node %s is not the one meant (uid %s); kept", inp.node_name, uid)
        return False
    if inp.created_after and not _created_since(meta, inp.created_after):
        activity.logger.info(
            "node %s existed before %s; not this run's to delete", inp.node_name, inp.created_after
        )
        return False
    body = {"preconditions": {"uid": uid}} if uid else None
    try:
        await call_json(
            f"delete node {inp.node_name}", kube.core().delete_node, inp.node_name, body=body
        )
    except (kube.NotFound, kube.Conflict):
        return False  # gone, or replaced by another Node of that name meanwhile
    return True


@activity.defn(name="record_setup_failure")
@boundary
async def record_setup_failure(inp: SetupFailureInput) -> None:
    """Warning event `MachineSetupFailure` on the Node (which may not exist)."""
    node = await get_node(inp.node_name)
    uid = ((node or {}).get("metadata") or {}).get("uid", "")
    await events.record_event(
        reason=events.MACHINE_SETUP_FAILURE,
        message=f"onboarding of {inp.node_name} failed in phase {inp.phase}: {inp.reason}",
        involved=_node_ref(inp.node_name, uid),
        type_="Warning",
        name=f"{inp.node_name}.setupfailure.{_slug(inp.key)}" if inp.key else None,
    )


# --- helpers ---------------------------------------------------------------------------------
async def public_key_hash(secret_name: str) -> str:
    """sha256 (hex) of the OpenSSH public key of the private key in `secret_name` (as WMCO)."""
    namespace = settings().namespace
    try:
        secret = await cache.existing_secret(secret_name)
    except kube.NotFound as exc:
        raise InvalidRequest(
            f"secret {namespace}/{secret_name} does not exist; create it with {PRIVATE_KEY_FIELD}"
        ) from exc
    encoded = (secret.get("data") or {}).get(PRIVATE_KEY_FIELD)
    if not encoded:
        raise InvalidRequest(f"secret {namespace}/{secret_name} has no {PRIVATE_KEY_FIELD}")
    try:
        return _public_key_hash(encoded)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(
            f"secret {namespace}/{secret_name}: {PRIVATE_KEY_FIELD} is not an unencrypted "
            "private key"
        ) from exc


@functools.lru_cache(maxsize=16)
def _public_key_hash(encoded: str) -> str:
    """Once per distinct secret content (loading an RSA key validates it: milliseconds of CPU
    per call); the Secret itself is still looked up every time, so a rotated key counts."""
    pem = base64.b64decode(encoded)
    key: Any = (
        serialization.load_ssh_private_key(pem, password=None)
        if b"OPENSSH PRIVATE KEY" in pem
        else serialization.load_pem_private_key(pem, password=None)
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return hashlib.sha256(public).hexdigest()


def _node_ref(name: str, uid: str) -> events.InvolvedObject:
    return {"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}


def _ready_detail(node: JsonObject) -> str:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return f"Ready={c.get('status')}: {c.get('reason', '')} {c.get('message', '')}".strip()
    return "no Ready condition yet"


def _created_since(meta: JsonObject, since_iso: str) -> bool:
    """Whether the object was created at or after `since_iso` (creationTimestamp has whole
    seconds, so the comparison is at second resolution)."""
    created = datetime.fromisoformat(str(meta.get("creationTimestamp", "")).replace("Z", "+00:00"))
    since = datetime.fromisoformat(since_iso).replace(microsecond=0)
    return created >= since


def _slug(key: str) -> str:
    """A DNS-label-safe form of `key` (event names must be DNS subdomains)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]
