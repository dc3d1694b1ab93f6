"""Where each Windows host's SSH host key is pinned (trust on first use, then never changed).

Before the Node exists the pin lives in ConfigMap `windows-ssh-host-keys` (data key: the host
address); once the Node exists it moves to the Node's annotations
`windowsmachineconfig.openshift.io/ssh-host-key` and `ssh-host-key-type`, as WMCO does.
`activities/ssh.py` reads the pin before connecting and records it after the first successful
login; terminating a VM (activities/cloud/vm.py) and deprovisioning call `forget`, so a new
machine at the same address is trusted on first use again. A different key is refused
(`HostKeyMismatch`). Reads come from the worker's watch-fed cache (activities/cache.py), so a
pin moves onto a Node at the first session after the worker has seen the Node. Writes carry the
resourceVersion they read (an entry's removal instead tests the entry's value): no lost update.
Pins written to the ConfigMap at the same moment (a fleet's first contacts) go in one write
(activities/coalesce.py). A write that conflicts is retried on a fresh read from the API, and so
is a mismatch found on cached data (`lookup(fresh=True)`).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity

from activities import cache, kube
from activities.coalesce import Coalescer
from activities.config import settings
from activities.contracts import ANNOTATION_PREFIX
from activities.errors import HostKeyMismatch, InvalidRequest, KubernetesUnavailable, boundary

CONFIGMAP = "windows-ssh-host-keys"
HOST_KEY_ANNOTATION = ANNOTATION_PREFIX + "ssh-host-key"
HOST_KEY_TYPE_ANNOTATION = ANNOTATION_PREFIX + "ssh-host-key-type"
CONFLICT_ATTEMPTS = 12
CONFLICT_BACKOFF_S = 0.02  # doubling per attempt up to CONFLICT_BACKOFF_MAX_S, randomized
CONFLICT_BACKOFF_MAX_S = 1.0  # (full jitter): a fleet's first pins, all at once, spread out
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Pin:
    key: str | None  # OpenSSH `<type> <base64>`; None: nothing pinned yet
    on_node: bool  # True: read from the Node's annotations
    node_exists: bool = False  # the Node exists (a pin still in the ConfigMap should move)


def _data_key(address: str) -> str:
    """ConfigMap data keys allow `[-._a-zA-Z0-9]`; IPv4 and DNS names already fit."""
    return re.sub(r"[^-._a-zA-Z0-9]", "_", address)


def _mismatch(address: str, pinned: str, presented: str, where: str) -> HostKeyMismatch:
    return HostKeyMismatch(
        f"host {address} presents SSH host key {presented.split()[0]} other than the one pinned "
        f"in {where} ({pinned.split()[0]}): possible impersonation. If the machine was "
        "legitimately re-installed, deprovision it (which forgets the pin) and onboard it again."
    )


async def _node(node_name: str | None, fresh: bool = False) -> dict[str, Any] | None:
    """The Node as JSON (do not change it), or None."""
    if not node_name:
        return None
    return await cache.node(node_name, fresh=fresh)


def _annotations(node: dict[str, Any] | None) -> dict[str, str]:
    return (node or {}).get("metadata", {}).get("annotations") or {}


async def _configmap(fresh: bool = False) -> dict[str, Any] | None:
    """The pin ConfigMap as JSON (do not change it), or None."""
    return await cache.config_map(CONFIGMAP, fresh=fresh)


def _data(cm: dict[str, Any] | None) -> dict[str, str]:
    return dict((cm or {}).get("data") or {})


async def lookup(address: str, node_name: str | None, *, fresh: bool = False) -> Pin:
    """The pinned key for this host: the Node's annotation first, else the ConfigMap's entry
    (from the cache; with `fresh` from the API)."""
    node = await _node(node_name, fresh)
    if node is not None:
        key = _annotations(node).get(HOST_KEY_ANNOTATION)
        if key:
            return Pin(key=key, on_node=True, node_exists=True)
    key = _data(await _configmap(fresh)).get(_data_key(address))
    return Pin(key=key, on_node=False, node_exists=node is not None)


async def pinned(address: str, node_name: str | None) -> str | None:
    """The pinned OpenSSH host key string for this host, or None before first contact."""
    return (await lookup(address, node_name)).key


async def pin(address: str, node_name: str | None, key: str) -> None:
    """Record `key` for this host (on the Node if it exists); the same key again is a no-op.

    Raises HostKeyMismatch if a different key is already pinned. Every write is conditional on
    the resourceVersion read just before it, so two onboardings pinning at once cannot
    overwrite each other: the later one re-reads and sees the earlier one's pin.
    """
    key = " ".join(key.split()[:2])

    async def write(fresh: bool) -> None:
        node = await _node(node_name, fresh)
        if node is not None:
            await _pin_on_node(address, node, key)
            await _drop_from_configmap(address, fresh)
        else:
            await _pin_in_configmap(address, key)

    await _retrying_conflicts(f"pinning the SSH host key of {address}", write)


async def forget(address: str, node_name: str | None = None, *, node_ip: str = "") -> None:
    """Drop the pin for this host: a machine winfleet deprovisioned or terminated; nothing
    pinned is fine. The Node's annotations are dropped too — when `node_ip` is given, only if
    that Node is the machine at `node_ip` (a same-named Node of another machine keeps its pin).
    """

    async def drop(fresh: bool) -> None:
        await _drop_from_configmap(address, fresh)
        node = await _node(node_name, fresh)
        if node is None or (node_ip and node_ip not in _internal_ips(node)):
            return
        annotations = _annotations(node)
        if HOST_KEY_ANNOTATION in annotations or HOST_KEY_TYPE_ANNOTATION in annotations:
            try:
                await _annotate(node, {HOST_KEY_ANNOTATION: None, HOST_KEY_TYPE_ANNOTATION: None})
            except kube.NotFound:
                pass

    await _retrying_conflicts(f"forgetting the SSH host key of {address}", drop)


async def _retrying_conflicts(doing: str, write: Callable[[bool], Awaitable[None]]) -> None:
    """Run a read-then-conditional-write until it lands; a 409 means someone wrote between (or
    the cache was behind): the next attempt reads from the API (`write(fresh=True)`)."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            await write(attempt > 0)
            return
        except kube.Conflict:
            await _back_off(attempt)
    raise KubernetesUnavailable(
        f"{doing}: the API server kept reporting conflicts; the activity will retry"
    )


async def _back_off(attempt: int) -> None:
    cap = min(CONFLICT_BACKOFF_MAX_S, CONFLICT_BACKOFF_S * 2**attempt)
    await asyncio.sleep(random.uniform(0, cap))


def _internal_ips(node: dict[str, Any]) -> set[str]:
    addresses = (node.get("status") or {}).get("addresses") or ()
    return {str(a.get("address")) for a in addresses if a.get("type") == "InternalIP"}


async def _pin_on_node(address: str, node: dict[str, Any], key: str) -> None:
    name = node["metadata"]["name"]
    existing = _annotations(node).get(HOST_KEY_ANNOTATION)
    if existing == key:
        return
    if existing:
        raise _mismatch(address, existing, key, f"node {name}'s annotations")
    await _annotate(node, {HOST_KEY_ANNOTATION: key, HOST_KEY_TYPE_ANNOTATION: key.split()[0]})


async def _annotate(node: dict[str, Any], annotations: dict[str, str | None]) -> None:
    """Set (None: remove) these annotations only, and only if the Node is still as read: a 409
    otherwise, so a pin written meanwhile is re-read and compared, not overwritten."""
    name = node["metadata"]["name"]
    patch = {
        "metadata": {
            "resourceVersion": node["metadata"]["resourceVersion"],
            "annotations": annotations,
        }
    }
    written = await kube.call_json(
        f"update host-key annotations of node {name}",
        kube.core().patch_node,
        name,
        patch,
        _content_type=MERGE_PATCH,
    )
    cache.observe_node(written)


async def _pin_in_configmap(address: str, key: str) -> None:
    """Pin `key` in the ConfigMap, in a batch with the other hosts pinned at the same moment."""
    existing = await _pins.submit((_data_key(address), key))
    if existing is not None:
        ns = settings().namespace
        raise _mismatch(address, existing, key, f"configmap {ns}/{CONFIGMAP}")


async def _write_pins(entries: list[tuple[str, str]]) -> list[str | None]:
    """Add these (data key, key) entries to the ConfigMap in one write conditional on the
    resourceVersion read (created if missing); per entry None, or the different key already
    pinned there. A 409 re-reads from the API and tries again."""
    ns = settings().namespace
    for attempt in range(CONFLICT_ATTEMPTS):
        cm = await _configmap(fresh=attempt > 0)
        data = _data(cm)
        wanted = dict(data)
        found: list[str | None] = []
        for data_key, key in entries:
            existing = wanted.setdefault(data_key, key)
            found.append(None if existing == key else existing)
        try:
            if cm is None:
                body = {"metadata": {"name": CONFIGMAP, "namespace": ns}, "data": wanted}
                written = await kube.call_json(
                    f"create configmap {ns}/{CONFIGMAP}",
                    kube.core().create_namespaced_config_map,
                    ns,
                    body,
                )
                cache.observe_config_map(written)
            elif wanted != data:
                await _replace_configmap(f"pin {len(entries)} host(s) in", cm, wanted)
            return found
        except kube.Conflict:
            await _back_off(attempt)
    raise KubernetesUnavailable(
        f"pinning {len(entries)} SSH host key(s) in configmap {ns}/{CONFIGMAP}: the API server "
        "kept reporting conflicts; the activity will retry"
    )


_pins: Coalescer[tuple[str, str], str | None] = Coalescer(_write_pins)


async def _drop_from_configmap(address: str, fresh: bool) -> None:
    """Remove this host's entry, as a JSON patch that first tests the entry still holds what
    was read: no resourceVersion, so pins of other hosts written meanwhile (a fleet onboarding
    at once writes this one ConfigMap for every host) do not make it conflict."""
    ns = settings().namespace
    data_key = _data_key(address)
    pinned = _data(await _configmap(fresh)).get(data_key)
    if pinned is None:
        return
    path = f"/data/{data_key}"  # data keys hold no '/' or '~': nothing to escape
    ops = [{"op": "test", "path": path, "value": pinned}, {"op": "remove", "path": path}]
    try:
        written = await kube.call_json(
            f"unpin {address} in configmap {ns}/{CONFIGMAP}",
            kube.core().patch_namespaced_config_map,
            CONFIGMAP,
            ns,
            ops,
            _content_type=JSON_PATCH,
        )
    except kube.NotFound:
        return
    except InvalidRequest as exc:  # 422: the test failed, the entry changed since it was read
        raise kube.Conflict(f"unpin {address}: the entry changed meanwhile") from exc
    cache.observe_config_map(written)


async def _replace_configmap(doing: str, cm: dict[str, Any], data: dict[str, str]) -> None:
    """Replace the ConfigMap's data, conditional on the resourceVersion `cm` was read at."""
    ns = settings().namespace
    body = {**cm, "data": data}
    written = await kube.call_json(
        f"{doing} configmap {ns}/{CONFIGMAP}",
        kube.core().replace_namespaced_config_map,
        CONFIGMAP,
        ns,
        body,
    )
    cache.observe_config_map(written)


@dataclass(frozen=True)
class ForgetPinInput:
    address: str
    node_name: str = ""


@activity.defn(name="forget_host_key")
@boundary
async def forget_host_key(inp: ForgetPinInput) -> None:
    """Drop the host key pinned for `inp.address` (ConfigMap entry and Node annotations), so a
    new machine at that address can be onboarded; called when winfleet retires a host."""
    await forget(inp.address, inp.node_name or None)
