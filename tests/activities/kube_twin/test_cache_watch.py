"""The worker's watch-fed cache: waits wake on watch events, and the cache stays right through
a dropped watch, a 410 Gone, a restart and an API that refuses to let it watch.

The worker gets an identity of its own here, so the twin's request counts (`KubeTwin.requests`,
per user, verb and resource) tell exactly what the worker asked the API server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from temporalio.testing import ActivityEnvironment
from twin_callers import NAMESPACE, OPEN_CLIENTS, Caller, eventually

from activities import cache, kube
from activities.config import Settings, use_settings
from activities.node import FinalizeNodeInput, WaitNodeInput, finalize_node, wait_node_ready
from sim.k8s.server import KubeTwin

WORKER = "winfleet-worker-under-test"
EVENT_WINDOW = 40  # events the twin keeps for resuming watches (etcd compacts, too)
IP = "10.0.9.1"
VERSION_ANNOTATION = "windowsmachineconfig.openshift.io/version"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[KubeTwin]:
    twin = KubeTwin(tmp_path / "kube", event_window=EVENT_WINDOW, kube_controllers=False)
    await twin.start()
    token = twin.issue_token(WORKER, ("system:masters",))
    kubeconfig = twin.kubeconfig_for_token(token, tmp_path / "worker.kubeconfig", user=WORKER)
    use_settings(
        Settings.from_env({"KUBECONFIG": str(kubeconfig), "WINFLEET_NAMESPACE": NAMESPACE})
    )
    try:
        yield twin
    finally:
        kube.api_client().close()
        while OPEN_CLIENTS:
            OPEN_CLIENTS.pop().close()
        use_settings(Settings.from_env({}))
        await twin.stop()


@pytest.fixture
def admin(cluster: KubeTwin, tmp_path: Path) -> Caller:
    return Caller(cluster, tmp_path, token=cluster.admin_token)


def made(twin: KubeTwin, verb: str, resource: str = "nodes", user: str = WORKER) -> int:
    """How many `verb` requests on `resource` the worker made so far."""
    return sum(
        n
        for k, n in twin.requests.snapshot(user).items()
        if (k.verb, k.resource) == (verb, resource)
    )


def nodes_live() -> bool:
    return cache.watching().get("nodes", False)


async def watched_node(admin: Caller, name: str) -> None:
    """Create a Node and wait until the worker's cache has it from its watch."""
    await admin.create_node(name, ip=IP)
    await eventually(f"the cache to see node {name}", nodes_live)
    await eventually(f"node {name} in the cache", lambda: _cached(name) is not None)


def _cached(name: str) -> dict[str, Any] | None:
    """The Node as the worker's cache holds it (not through `cache.node`, which may ask the
    API when the cache is not live)."""
    informer = cache._cache().nodes
    return informer.get(name) if informer is not None else None


async def test_a_ready_wait_ends_on_the_watch_event_without_asking_the_api(
    cluster: KubeTwin, admin: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No timer may end the wait: only the watch event of the Node turning Ready can.
    monkeypatch.setattr(cache, "RECHECK_S", 3600.0)
    await cache.node("win-w1")  # the worker's cache starts (lists, then watches)
    await watched_node(admin, "win-w1")
    before = {verb: made(cluster, verb) for verb in ("get", "list", "watch")}
    env, looked = ActivityEnvironment(), asyncio.Event()
    env.on_heartbeat = lambda *_: looked.set()

    async def kubelet_reports_ready() -> None:
        await looked.wait()
        await admin.set_ready("win-w1", ready=True, ip=IP)

    facts, _ = await asyncio.wait_for(
        asyncio.gather(
            env.run(wait_node_ready, WaitNodeInput("win-w1", timeout_s=600)),
            kubelet_reports_ready(),
        ),
        timeout=60,
    )
    assert facts.ready and facts.internal_ip == IP
    assert {verb: made(cluster, verb) for verb in ("get", "list", "watch")} == before


async def test_after_410_gone_the_cache_lists_again_and_sees_what_changed_meanwhile(
    cluster: KubeTwin, admin: Caller
) -> None:
    await cache.node("win-stays")
    await watched_node(admin, "win-stays")
    await watched_node(admin, "win-goes")
    lists = made(cluster, "list")
    # The API server ends every watch and, for a while, refuses new ones ...
    cluster.faults.add("watch", "nodes", 503, count=1_000_000)
    cluster.handlers.close_watches()
    # ... while a Node comes, one goes, and so much else changes that the version the cache
    # would resume from is compacted away.
    await admin.create_node("win-comes", ip=IP)
    await admin.run(admin.core.delete_node, "win-goes")
    for i in range(EVENT_WINDOW + 5):
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"churn-{i}"))
        await admin.run(admin.core.create_namespaced_config_map, NAMESPACE, body)
    cluster.faults.clear()

    await eventually("a new list of the Nodes", lambda: made(cluster, "list") > lists, within=30)
    # That list may have come before the changes (the watch failing at once); the one after the
    # faults end (the resume point compacted away: 410) brings them.
    await eventually(
        "the cache to watch again and hold what changed",
        lambda: nodes_live() and _cached("win-comes") is not None and _cached("win-goes") is None,
        within=30,
    )
    gets = made(cluster, "get")
    assert await cache.node("win-comes") is not None
    assert await cache.node("win-goes") is None
    assert await cache.node("win-stays") is not None
    assert made(cluster, "get") == gets  # all three answered from memory


async def test_a_dropped_watch_resumes_where_it_was_without_listing_again(
    cluster: KubeTwin, admin: Caller
) -> None:
    await cache.node("win-d1")
    await watched_node(admin, "win-d1")
    lists, watches = made(cluster, "list"), made(cluster, "watch")
    cluster.handlers.close_watches()  # every watch connection ends
    await admin.annotate_node("win-d1", {"example.com/changed": "while-disconnected"})

    def annotated() -> bool:
        node = _cached("win-d1")
        notes = ((node or {}).get("metadata") or {}).get("annotations") or {}
        return notes.get("example.com/changed") == "while-disconnected"

    await eventually("the change made while the watch was down", annotated, within=30)
    assert made(cluster, "watch") > watches  # it watched again ...
    assert made(cluster, "list") == lists  # ... from its resourceVersion, without a new list


async def test_a_watch_down_longer_than_the_staleness_bound_sends_reads_to_the_api(
    cluster: KubeTwin, admin: Caller
) -> None:
    await cache.node("win-s1")
    await watched_node(admin, "win-s1")
    # The API server ends every watch and refuses new ones: the cache hears nothing more ...
    cluster.faults.add("watch", "nodes", 503, count=1_000_000)
    cluster.handlers.close_watches()
    await admin.annotate_node("win-s1", {"example.com/changed": "unheard"})
    # ... and after STALE_AFTER_S it no longer answers from memory.
    await eventually("the cache to count itself stale", lambda: not nodes_live())
    gets = made(cluster, "get")
    node = await cache.node("win-s1")
    assert node is not None and node["metadata"]["annotations"]["example.com/changed"] == "unheard"
    assert made(cluster, "get") == gets + 1  # read through the API

    cluster.faults.clear()
    await eventually("the cache to watch again", nodes_live, within=30)
    gets = made(cluster, "get")
    assert await cache.node("win-s1") is not None
    assert made(cluster, "get") == gets  # from memory again


async def test_finalize_asks_the_api_for_a_node_its_cache_has_not_seen_yet(
    cluster: KubeTwin, admin: Caller
) -> None:
    await cache.node("win-seen")
    await watched_node(admin, "win-seen")
    # The watch stops delivering (the cache, within its staleness bound, still answers) ...
    cluster.faults.add("watch", "nodes", 503, count=1_000_000)
    cluster.handlers.close_watches()
    await admin.create_node("win-unseen", ip=IP)  # ... so this Node never reaches it.
    assert nodes_live() and _cached("win-unseen") is None
    inp = FinalizeNodeInput("win-unseen", version="1.2.3", pub_key_hash="ab" * 32)

    assert await ActivityEnvironment().run(finalize_node, inp) == "1.2.3"

    done = await admin.run(admin.core.read_node, "win-unseen")
    assert done["metadata"]["annotations"][VERSION_ANNOTATION] == "1.2.3"
    cluster.faults.clear()


async def test_a_restarted_worker_lists_afresh_and_sees_what_changed_while_it_was_away(
    cluster: KubeTwin, admin: Caller
) -> None:
    await cache.node("win-r1")
    await watched_node(admin, "win-r1")
    cache.reset()  # the worker process ends: its cache with it
    await admin.create_node("win-r2", ip=IP)
    lists = made(cluster, "list")
    assert await cache.node("win-r2") is not None  # the new process's first read
    assert made(cluster, "list") == lists + 1
    assert nodes_live()


async def test_a_read_that_needs_freshness_asks_the_api(cluster: KubeTwin, admin: Caller) -> None:
    await cache.node("win-f1")
    await watched_node(admin, "win-f1")
    gets = made(cluster, "get")
    assert await cache.node("win-f1", fresh=True) is not None
    assert made(cluster, "get") == gets + 1


async def test_a_worker_not_allowed_to_watch_reads_through_the_api(
    cluster: KubeTwin, admin: Caller, tmp_path: Path
) -> None:
    rbac = client.RbacAuthorizationV1Api(admin.api)
    role = {
        "metadata": {"name": "node-getter"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
    }
    binding = {
        "metadata": {"name": "node-getter"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "node-getter",
        },
        "subjects": [{"kind": "User", "name": "getter", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    await admin.run(rbac.create_cluster_role, role)
    await admin.run(rbac.create_cluster_role_binding, binding)
    token = cluster.issue_token("getter")
    kubeconfig = cluster.kubeconfig_for_token(token, tmp_path / "getter.kubeconfig", user="getter")
    kube.api_client().close()
    use_settings(
        Settings.from_env({"KUBECONFIG": str(kubeconfig), "WINFLEET_NAMESPACE": NAMESPACE})
    )
    await admin.create_node("win-g1", ip=IP)

    found = await asyncio.wait_for(cache.node("win-g1"), timeout=cache.SYNC_WAIT_S)
    assert found is not None and found["metadata"]["name"] == "win-g1"
    assert await cache.node("win-none") is None
    assert made(cluster, "list", user="getter") >= 1  # it tried, was refused ...
    assert made(cluster, "get", user="getter") == 2  # ... and read through the API
    assert not nodes_live()
