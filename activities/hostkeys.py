"""Where each Windows host's SSH host key is pinned (trust on first use, then never changed).

Before the Node exists the pin lives in ConfigMap `windows-ssh-host-keys` (data key: the host
address); once the Node exists it moves to the Node's annotations
`windowsmachineconfig.openshift.io/ssh-host-key` and `ssh-host-key-type`, as WMCO does.
`activities/ssh.py` reads the pin before connecting and records it after the first successful
login; deprovisioning calls `forget`. A different key is refused (`HostKeyMismatch`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from temporalio import activity

from activities import kube
from activities.config import settings
from activities.contracts import ANNOTATION_PREFIX
from activities.errors import HostKeyMismatch, KubernetesUnavailable, boundary

CONFIGMAP = "windows-ssh-host-keys"
HOST_KEY_ANNOTATION = ANNOTATION_PREFIX + "ssh-host-key"
HOST_KEY_TYPE_ANNOTATION = ANNOTATION_PREFIX + "ssh-host-key-type"
CONFLICT_ATTEMPTS = 5
MERGE_PATCH = "application/merge-patch+json"


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


async def _node(node_name: str | None) -> dict[str, Any] | None:
    """The Node as JSON (the typed model rejects Nodes with partial status), or None."""
    if not node_name:
        return None
    try:
        node: dict[str, Any] = await kube.call_json(
            f"read node {node_name}", kube.core().read_node, node_name
        )
    except kube.NotFound:
        return None
    return node


def _annotations(node: dict[str, Any] | None) -> dict[str, str]:
    return (node or {}).get("metadata", {}).get("annotations") or {}


async def _configmap() -> Any | None:
    ns = settings().namespace
    try:
        return await kube.call(
            f"read configmap {ns}/{CONFIGMAP}",
            kube.core().read_namespaced_config_map,
            CONFIGMAP,
            ns,
        )
    except kube.NotFound:
        return None


async def lookup(address: str, node_name: str | None) -> Pin:
    """The pinned key for this host: the Node's annotation first, else the ConfigMap's entry."""
    node = await _node(node_name)
    if node is not None:
        key = _annotations(node).get(HOST_KEY_ANNOTATION)
        if key:
            return Pin(key=key, on_node=True, node_exists=True)
    cm = await _configmap()
    key = (cm.data or {}).get(_data_key(address)) if cm else None
    return Pin(key=key, on_node=False, node_exists=node is not None)


async def pinned(address: str, node_name: str | None) -> str | None:
    """The pinned OpenSSH host key string for this host, or None before first contact."""
    return (await lookup(address, node_name)).key


async def pin(address: str, node_name: str | None, key: str) -> None:
    """Record `key` for this host (on the Node if it exists); the same key again is a no-op.

    Raises HostKeyMismatch if a different key is already pinned. Retries when another writer
    creates the ConfigMap at the same moment.
    """
    key = " ".join(key.split()[:2])
    for _ in range(CONFLICT_ATTEMPTS):
        try:
            node = await _node(node_name)
            if node is not None:
                await _pin_on_node(address, node, key)
                await _drop_from_configmap(address)
            else:
                await _pin_in_configmap(address, key)
            return
        except kube.Conflict:
            continue
    raise KubernetesUnavailable(
        f"pinning the SSH host key of {address}: the API server kept reporting conflicts; "
        "the activity will retry"
    )


async def forget(address: str, node_name: str | None = None) -> None:
    """Drop the pin for this host (deprovisioning); nothing pinned is fine."""
    await _drop_from_configmap(address)
    node = await _node(node_name)
    annotations = _annotations(node)
    if HOST_KEY_ANNOTATION in annotations or HOST_KEY_TYPE_ANNOTATION in annotations:
        patch = {
            "metadata": {"annotations": {HOST_KEY_ANNOTATION: None, HOST_KEY_TYPE_ANNOTATION: None}}
        }
        try:
            await kube.call_json(
                f"unpin host key on node {node_name}",
                kube.core().patch_node,
                node_name,
                patch,
                _content_type=MERGE_PATCH,
            )
        except kube.NotFound:
            pass


async def _pin_on_node(address: str, node: dict[str, Any], key: str) -> None:
    name = node["metadata"]["name"]
    existing = _annotations(node).get(HOST_KEY_ANNOTATION)
    if existing == key:
        return
    if existing:
        raise _mismatch(address, existing, key, f"node {name}'s annotations")
    # A merge patch touches only these two annotations, so kubelet's status updates never
    # conflict with it; the check above already refused a different key.
    patch = {
        "metadata": {
            "annotations": {HOST_KEY_ANNOTATION: key, HOST_KEY_TYPE_ANNOTATION: key.split()[0]},
        }
    }
    await kube.call_json(
        f"pin host key on node {name}",
        kube.core().patch_node,
        name,
        patch,
        _content_type=MERGE_PATCH,
    )


async def _pin_in_configmap(address: str, key: str) -> None:
    ns = settings().namespace
    data_key = _data_key(address)
    cm = await _configmap()
    if cm is None:
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=CONFIGMAP, namespace=ns), data={data_key: key}
        )
        await kube.call(
            f"create configmap {ns}/{CONFIGMAP}",
            kube.core().create_namespaced_config_map,
            ns,
            body,
        )
        return
    existing = (cm.data or {}).get(data_key)
    if existing == key:
        return
    if existing:
        raise _mismatch(address, existing, key, f"configmap {ns}/{CONFIGMAP}")
    # A merge patch adds only this host's entry: pins of other hosts, written at the same
    # time by other onboardings, neither conflict with it nor get overwritten.
    await kube.call(
        f"pin {address} in configmap {ns}/{CONFIGMAP}",
        kube.core().patch_namespaced_config_map,
        CONFIGMAP,
        ns,
        {"data": {data_key: key}},
        _content_type=MERGE_PATCH,
    )


async def _drop_from_configmap(address: str) -> None:
    ns = settings().namespace
    cm = await _configmap()
    if cm is None or _data_key(address) not in (cm.data or {}):
        return
    patch = {"data": {_data_key(address): None}}
    try:
        await kube.call(
            f"unpin {address} in configmap {ns}/{CONFIGMAP}",
            kube.core().patch_namespaced_config_map,
            CONFIGMAP,
            ns,
            patch,
            _content_type=MERGE_PATCH,
        )
    except kube.NotFound:
        pass


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
