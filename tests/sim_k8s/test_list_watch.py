"""Listing (selectors, paging) and watching (events, bookmarks, 410) on the API server twin."""

from __future__ import annotations

import time

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from sim.k8s.auth import INTERNAL
from sim.k8s.server import KubeTwin
from tests.sim_k8s.conftest import RunningTwin, node_body


def _names(items: list) -> list[str]:
    return sorted(o.metadata.name for o in items)


@pytest.fixture
def labelled_nodes(core: client.CoreV1Api) -> None:
    core.create_node(node_body("win-a", {"kubernetes.io/os": "windows", "pool": "a"}))
    core.create_node(node_body("win-b", {"kubernetes.io/os": "windows", "pool": "b"}))
    core.create_node(node_body("lin-a", {"kubernetes.io/os": "linux", "pool": "a"}))
    core.create_node(node_body("bare"))


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("kubernetes.io/os=windows", ["win-a", "win-b"]),
        ("kubernetes.io/os==windows,pool=a", ["win-a"]),
        ("kubernetes.io/os!=windows", ["bare", "lin-a"]),
        ("pool in (a, c)", ["lin-a", "win-a"]),
        ("pool notin (a)", ["bare", "win-b"]),
        ("pool", ["lin-a", "win-a", "win-b"]),
        ("!pool", ["bare"]),
    ],
)
def test_label_selectors_pick_the_matching_nodes(
    core: client.CoreV1Api, labelled_nodes: None, selector: str, expected: list[str]
):
    assert _names(core.list_node(label_selector=selector).items) == expected


def test_field_selectors_filter_by_name_namespace_and_node_name(
    core: client.CoreV1Api, labelled_nodes: None
):
    assert _names(core.list_node(field_selector="metadata.name=win-b").items) == ["win-b"]
    assert "win-b" not in _names(core.list_node(field_selector="metadata.name!=win-b").items)
    for ns, node in (("default", "win-a"), ("winfleet", "win-a"), ("winfleet", "win-b")):
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {"generateName": "p-"},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            },
        )
    on_a = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=win-a").items
    assert sorted(p.metadata.namespace for p in on_a) == ["default", "winfleet"]
    scoped = core.list_pod_for_all_namespaces(
        field_selector="metadata.namespace=winfleet,spec.nodeName=win-a"
    ).items
    assert len(scoped) == 1


def test_an_unknown_field_selector_is_a_bad_request(core: client.CoreV1Api):
    with pytest.raises(ApiException) as exc:
        core.list_node(field_selector="spec.bogus=1")
    assert exc.value.status == 400


def test_paging_with_limit_and_continue_returns_every_object_once(core: client.CoreV1Api):
    for i in range(7):
        core.create_namespaced_config_map("winfleet", {"metadata": {"name": f"cm-{i}"}})
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map("winfleet", limit=3, _continue=token)
        seen += [c.metadata.name for c in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(seen)
    assert (sorted(seen), pages) == ([f"cm-{i}" for i in range(7)], 3)


def test_watch_streams_added_modified_and_deleted_events(core: client.CoreV1Api):
    rv = core.list_namespaced_config_map("winfleet").metadata.resource_version
    core.create_namespaced_config_map("winfleet", {"metadata": {"name": "w"}})
    core.patch_namespaced_config_map(
        "w", "winfleet", {"data": {"a": "1"}}, _content_type="application/merge-patch+json"
    )
    core.delete_namespaced_config_map("w", "winfleet")
    events = []
    for ev in watch.Watch().stream(
        core.list_namespaced_config_map, "winfleet", resource_version=rv, timeout_seconds=2
    ):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 3:
            break
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_without_a_version_starts_with_the_current_objects(
    core: client.CoreV1Api, labelled_nodes: None
):
    w = watch.Watch()
    names = []
    for ev in w.stream(
        core.list_node, label_selector="kubernetes.io/os=windows", timeout_seconds=2
    ):
        names.append((ev["type"], ev["object"].metadata.name))
        if len(names) == 2:
            w.stop()
    assert sorted(names) == [("ADDED", "win-a"), ("ADDED", "win-b")]


def test_watch_delivers_a_sequence_of_changes_made_while_it_is_open(
    running: RunningTwin, core: client.CoreV1Api
):
    rv = core.list_node().metadata.resource_version
    api, rt = running.twin.api, running.twin.registry.get("", "v1", "nodes")
    merge = "application/merge-patch+json"

    def change_nodes() -> None:  # runs on the twin's loop, after the watch has connected
        for name in ("late-1", "late-2"):
            api.create(rt, "", node_body(name), INTERNAL)
        api.patch(rt, "", "late-1", merge, {"metadata": {"labels": {"x": "y"}}})
        api.delete(rt, "", "late-2")

    running.loop.call_soon_threadsafe(running.loop.call_later, 0.2, change_nodes)
    events = []
    for ev in watch.Watch().stream(core.list_node, resource_version=rv, timeout_seconds=5):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 4:
            break
    assert events == [
        ("ADDED", "late-1"),
        ("ADDED", "late-2"),
        ("MODIFIED", "late-1"),
        ("DELETED", "late-2"),
    ]


def test_watch_with_bookmarks_receives_bookmark_events(core: client.CoreV1Api):
    rv = core.list_node().metadata.resource_version
    resp = core.list_node(
        watch=True,
        allow_watch_bookmarks=True,
        resource_version=rv,
        timeout_seconds=1,
        _preload_content=False,
    )
    lines = [ln for ln in resp.data.decode().splitlines() if ln]
    resp.release_conn()
    assert lines and all('"type":"BOOKMARK"' in ln for ln in lines)
    assert f'"resourceVersion":"{rv}"' in lines[0]


def test_watch_times_out_after_timeout_seconds(core: client.CoreV1Api):
    started = time.monotonic()
    events = list(watch.Watch().stream(core.list_node, resource_version="1", timeout_seconds=1))
    assert 0.9 < time.monotonic() - started < 3
    assert all(e["type"] != "ERROR" for e in events)


def test_watch_from_a_version_older_than_the_event_window_gets_410(start_twin, tmp_path):
    twin: KubeTwin = start_twin(event_window=5).twin
    with config.new_client_from_config(config_file=str(twin.kubeconfig_path)) as api_client:
        core = client.CoreV1Api(api_client)
        old = core.list_namespaced_config_map("winfleet").metadata.resource_version
        for i in range(8):
            core.create_namespaced_config_map("winfleet", {"metadata": {"name": f"c{i}"}})
        with pytest.raises(ApiException) as exc:
            list(
                watch.Watch().stream(
                    core.list_namespaced_config_map,
                    "winfleet",
                    resource_version=old,
                    timeout_seconds=2,
                )
            )
        assert exc.value.status == 410
        raw = core.list_namespaced_config_map(
            "winfleet", watch=True, resource_version=old, timeout_seconds=1, _preload_content=False
        )
        assert '"code":410' in raw.data.decode() and '"type":"ERROR"' in raw.data.decode()
        raw.release_conn()


def test_listing_a_thousand_nodes_is_fast(core: client.CoreV1Api, running: RunningTwin):
    from sim.k8s.bench import seed_nodes

    running.run(seed_nodes(running.twin, 1000), timeout=30)
    core.list_node()  # warm the connection
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        nodes = core.list_node(_preload_content=False)
        body = nodes.json()
        timings.append((time.perf_counter() - started) * 1000)
        assert len(body["items"]) == 1000
    median = sorted(timings)[2]
    print(f"list 1000 nodes (kubernetes client, raw JSON): median {median:.1f} ms")
    assert median < 500


def test_a_continue_token_older_than_the_event_window_gets_410(start_twin):
    twin: KubeTwin = start_twin(event_window=5).twin
    with config.new_client_from_config(config_file=str(twin.kubeconfig_path)) as api_client:
        core = client.CoreV1Api(api_client)
        for i in range(3):
            core.create_namespaced_config_map("winfleet", {"metadata": {"name": f"c{i}"}})
        token = core.list_namespaced_config_map("winfleet", limit=1).metadata._continue
        for i in range(3, 10):
            core.create_namespaced_config_map("winfleet", {"metadata": {"name": f"c{i}"}})
        with pytest.raises(ApiException) as exc:
            core.list_namespaced_config_map("winfleet", limit=1, _continue=token)
        assert exc.value.status == 410
