"""The worker's watch-fed view of the cluster, and waits that wake on its changes.

One per worker process (per event loop), started lazily on the first read: informers
(activities/cache_informer.py) for all Nodes, all CertificateSigningRequests (indexed by the
node they claim), and, by name, the ConfigMaps and Secrets in winfleet's namespace that
activities read (the host-key pin ConfigMap, the SSH key Secrets). Activities read through
`node`, `csrs_claiming`, `config_map` and `secret` instead of a GET each time, and wait with
`wait_until`, which re-checks when a watched object changes rather than on a timer. Writes
still go to the API, with resourceVersion preconditions where a stale read could do harm; their
results can be fed back with `observe` so the next read sees them.

Freshness: a read with `fresh=True`, and every read while an informer is not live (not listed
yet within `SYNC_WAIT_S`, refused by RBAC, or its watch down for more than a couple of seconds),
goes to the API as before. Workflows never read this: they learn the cluster's state only from
activity results. Reset when the settings change (a new kubeconfig or namespace).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from temporalio import activity

from activities import csr_rules, kube, polling
from activities.cache_informer import Informer, JsonObject, Lister, Waker
from activities.config import on_settings_change, settings
from activities.errors import KubernetesUnavailable

T = TypeVar("T")

SYNC_WAIT_S = 10.0  # a first read waits this long for the first list, then asks the API
RECHECK_S = polling.HEARTBEAT_EVERY_S  # a wait re-checks (and heartbeats) at least this often


@dataclass
class _Cache:
    loop: asyncio.AbstractEventLoop
    namespace: str
    nodes: Informer | None = None
    csrs: Informer | None = None
    config_maps: dict[str, Informer] = field(default_factory=dict)
    secrets: dict[str, Informer] = field(default_factory=dict)

    def informers(self) -> list[Informer]:
        found = [i for i in (self.nodes, self.csrs) if i is not None]
        return found + list(self.config_maps.values()) + list(self.secrets.values())


_current: list[_Cache] = []


def _cache() -> _Cache:
    loop = asyncio.get_running_loop()
    if _current and _current[0].loop is not loop:
        reset()  # a new event loop (tests): the old informers post to a loop nobody runs
    if not _current:
        _current.append(_Cache(loop, settings().namespace))
    return _current[0]


def reset() -> None:
    """Stop every informer (settings changed, or the worker stops)."""
    while _current:
        for informer in _current.pop().informers():
            informer.stop()


on_settings_change(reset)


def _nodes() -> Informer:
    c = _cache()
    if c.nodes is None:
        c.nodes = Informer("nodes", kube.core().list_node).start()
    return c.nodes


def _csrs() -> Informer:
    c = _cache()
    if c.csrs is None:
        c.csrs = Informer(
            "certificatesigningrequests",
            kube.certificates().list_certificate_signing_request,
            index=csr_rules.claimed_node,
        ).start()
    return c.csrs


def _config_map(name: str) -> Informer:
    c = _cache()
    return _named(c.config_maps, "configmap", kube.core().list_namespaced_config_map, name)


def _secret(name: str) -> Informer:
    c = _cache()
    return _named(c.secrets, "secret", kube.core().list_namespaced_secret, name)


def _named(informers: dict[str, Informer], kind: str, lister: Lister, name: str) -> Informer:
    """The informer of one object `name` in winfleet's namespace (a field selector on it)."""
    if name not in informers:
        ns = _cache().namespace
        informers[name] = Informer(
            f"{kind} {ns}/{name}", lister, ns, field_selector=f"metadata.name={name}"
        ).start()
    return informers[name]


def watching() -> dict[str, bool]:
    """Which informers run, and whether each is live (reads from memory): for diagnostics."""
    return {i.what: i.live() for i in _current[0].informers()} if _current else {}


# --- reads -------------------------------------------------------------------------------------
async def _get_json(what: str, fn: Callable[..., object], *args: object) -> JsonObject | None:
    """One GET through the API, None on 404."""
    try:
        found = await kube.call_json(what, fn, *args)
    except kube.NotFound:
        return None
    return found if isinstance(found, dict) else None


async def node(name: str, *, fresh: bool = False) -> JsonObject | None:
    """The Node (do not change the dict), or None when it does not exist."""
    informer = _nodes()
    if not fresh and await informer.ready(SYNC_WAIT_S):
        return informer.get(name)
    found = await _get_json(f"read node {name}", kube.core().read_node, name)
    if found is not None:
        informer.observe(found)
    return found


async def csrs_claiming(node_name: str) -> list[JsonObject]:
    """The CSRs whose request names `node_name` (do not change the dicts)."""
    informer = _csrs()
    if await informer.ready(SYNC_WAIT_S):
        return informer.indexed(node_name)
    listing = await kube.call_json(
        "list CSRs", kube.certificates().list_certificate_signing_request
    )
    items = listing.get("items") if isinstance(listing, dict) else None
    return [
        c for c in items or () if isinstance(c, dict) and csr_rules.claimed_node(c) == node_name
    ]


async def config_map(name: str, *, fresh: bool = False) -> JsonObject | None:
    """ConfigMap `name` in winfleet's namespace (do not change the dict), or None."""
    informer = _config_map(name)
    if not fresh and await informer.ready(SYNC_WAIT_S):
        return informer.get(name)
    ns = _cache().namespace
    return await _get_json(
        f"read configmap {ns}/{name}", kube.core().read_namespaced_config_map, name, ns
    )


async def secret(name: str, *, fresh: bool = False) -> JsonObject | None:
    """Secret `name` in winfleet's namespace (do not change the dict), or None."""
    informer = _secret(name)
    if not fresh and await informer.ready(SYNC_WAIT_S):
        return informer.get(name)
    ns = _cache().namespace
    return await _get_json(f"read secret {ns}/{name}", kube.core().read_namespaced_secret, name, ns)


async def existing_secret(name: str, *, fresh: bool = False) -> JsonObject:
    """Secret `name`, for reads that fail for good without it: a miss in the cache is asked
    of the API (a Secret created a moment ago is not refused); kube.NotFound if it truly
    does not exist."""
    found = None if fresh else await secret(name)
    if found is not None:
        return found
    ns = _cache().namespace
    data = await kube.call_json(
        f"read secret {ns}/{name}", kube.core().read_namespaced_secret, name, ns
    )
    return data if isinstance(data, dict) else {}


def observe_node(obj: object) -> None:
    """Take in a Node the worker just wrote (the API's reply), so reads see the write."""
    if isinstance(obj, dict):
        _nodes().observe(obj)


def observe_csr(obj: object) -> None:
    if isinstance(obj, dict):
        _csrs().observe(obj)


def observe_config_map(obj: object) -> None:
    if isinstance(obj, dict):
        name = str((obj.get("metadata") or {}).get("name") or "")
        if name:
            _config_map(name).observe(obj)


# --- waits -------------------------------------------------------------------------------------
async def wait_until(
    what: str,
    probe: Callable[[], Awaitable[T | None]],
    timeout_s: float,
    *,
    nodes: Sequence[str] = (),
    csrs_of: Sequence[str] = (),
) -> T | None:
    """Call `probe` until it returns a value or `timeout_s` has passed, heartbeating.

    `probe` runs again when one of the Nodes `nodes` or a CSR claiming one of `csrs_of`
    changes, and at least every RECHECK_S; while the cache is not live (reads then go to the
    API) it runs as often as the polling waits did. A briefly unavailable API server does not
    end the wait; if it still is at the deadline, that (retryable) error is raised instead of
    returning None.
    """
    watched: list[tuple[Informer, str]] = [(_nodes(), n) for n in nodes]
    watched += [(_csrs(), n) for n in csrs_of]
    waker = Waker()
    for informer, key in watched:
        informer.subscribe(key, waker)
    deadline = time.monotonic() + timeout_s
    pauses = polling.delays()
    try:
        while True:
            activity.heartbeat(what)
            waker.event.clear()
            try:
                found = await probe()
                failure: KubernetesUnavailable | None = None
            except KubernetesUnavailable as exc:
                activity.logger.warning("%s: %s; still waiting", what, exc.message)
                found, failure = None, exc
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                if failure is not None:
                    raise failure
                return None
            live = all(informer.live() for informer, _ in watched)
            pause = RECHECK_S if live and failure is None else next(pauses)
            await polling.wait_event(waker.event, min(pause, left))
    finally:
        for informer, key in watched:
            informer.unsubscribe(key, waker)
