"""PATCH flavours and status subresources on the API server twin."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.sim_k8s.conftest import RunningTwin, node_body

SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@pytest.fixture
def running(start_twin: Callable[..., RunningTwin]) -> RunningTwin:
    """The API server alone, as envtest runs it: no node lifecycle controller or scheduler
    rewrites the Nodes and Pods whose API semantics these tests pin down."""
    return start_twin(bookmark_interval=0.2, kube_controllers=False)


def test_strategic_merge_of_node_conditions_merges_by_type(core: client.CoreV1Api):
    core.create_node(node_body("smp-1"))
    core.patch_node_status(
        "smp-1",
        {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady"},
                    {"type": "DiskPressure", "status": "False", "reason": "Fine"},
                ]
            }
        },
        _content_type=SMP,
    )
    conditions = {c.type: c.status for c in core.read_node_status("smp-1").status.conditions}
    assert conditions == {"Ready": "True", "DiskPressure": "False"}


def test_strategic_merge_of_addresses_merges_by_type(core: client.CoreV1Api):
    core.create_node(node_body("smp-2"))
    core.patch_node_status(
        "smp-2",
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"}]}},
        _content_type=SMP,
    )
    addresses = {a.type: a.address for a in core.read_node("smp-2").status.addresses}
    assert addresses == {"InternalIP": "10.0.0.9", "Hostname": "smp-2"}


def test_strategic_merge_replaces_taints_whole_as_kubernetes_declares_them_atomic(
    core: client.CoreV1Api,
):
    core.create_node(node_body("smp-3"))
    core.patch_node(
        "smp-3",
        {"spec": {"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}},
        _content_type=SMP,
    )
    taints = [(t.key, t.effect) for t in core.read_node("smp-3").spec.taints]
    assert taints == [("node.kubernetes.io/unschedulable", "NoSchedule")]


def test_strategic_merge_delete_directive_removes_one_condition(core: client.CoreV1Api):
    core.create_node(node_body("smp-4"))
    core.patch_node_status(
        "smp-4",
        {"status": {"conditions": [{"type": "Ready", "$patch": "delete"}]}},
        _content_type=SMP,
    )
    assert not core.read_node("smp-4").status.conditions


def test_strategic_merge_adds_finalizers_as_a_set(core: client.CoreV1Api):
    core.create_namespaced_config_map(
        "winfleet", {"metadata": {"name": "f", "finalizers": ["a/b"]}}
    )
    core.patch_namespaced_config_map(
        "f", "winfleet", {"metadata": {"finalizers": ["c/d", "a/b"]}}, _content_type=SMP
    )
    assert core.read_namespaced_config_map("f", "winfleet").metadata.finalizers == ["a/b", "c/d"]


def test_merge_patch_replaces_lists_and_null_removes_keys(core: client.CoreV1Api):
    core.create_node(node_body("mp-1", {"keep": "yes", "drop": "yes"}))
    core.patch_node(
        "mp-1",
        {"metadata": {"labels": {"drop": None}}, "spec": {"taints": []}},
        _content_type=MERGE,
    )
    node = core.read_node("mp-1")
    assert node.metadata.labels == {"keep": "yes"} and not node.spec.taints


def test_json_patch_operations_apply_in_order(core: client.CoreV1Api):
    core.create_namespaced_config_map("winfleet", {"metadata": {"name": "jp"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map(
        "jp",
        "winfleet",
        [
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "add", "path": "/data/b", "value": "2"},
            {"op": "move", "from": "/data/a", "path": "/data/c"},
            {"op": "replace", "path": "/data/b", "value": "3"},
        ],
        _content_type=JSON_PATCH,
    )
    assert core.read_namespaced_config_map("jp", "winfleet").data == {"b": "3", "c": "1"}


def test_failed_json_patch_test_leaves_the_object_unchanged(core: client.CoreV1Api):
    core.create_namespaced_config_map("winfleet", {"metadata": {"name": "jp2"}, "data": {"a": "1"}})
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map(
            "jp2",
            "winfleet",
            [
                {"op": "replace", "path": "/data/a", "value": "2"},
                {"op": "test", "path": "/data/a", "value": "1"},
            ],
            _content_type=JSON_PATCH,
        )
    assert exc.value.status == 422
    assert core.read_namespaced_config_map("jp2", "winfleet").data == {"a": "1"}


def test_a_plain_dict_patch_from_the_client_is_applied_as_strategic_merge(core: client.CoreV1Api):
    core.create_node(node_body("jp-3"))
    core.patch_node_status(
        "jp-3", {"status": {"conditions": [{"type": "MemoryPressure", "status": "False"}]}}
    )
    types = sorted(c.type for c in core.read_node("jp-3").status.conditions)
    assert types == ["MemoryPressure", "Ready"]


def test_status_subresource_changes_only_status(core: client.CoreV1Api):
    core.create_node(node_body("st-1"))
    core.patch_node_status(
        "st-1",
        {
            "metadata": {"labels": {"sneaky": "x"}},
            "spec": {"unschedulable": True},
            "status": {"phase": "Running"},
        },
        _content_type=MERGE,
    )
    node = core.read_node("st-1")
    assert node.status.phase == "Running"
    assert "sneaky" not in (node.metadata.labels or {}) and not node.spec.unschedulable


def test_main_resource_update_ignores_status_changes(core: client.CoreV1Api):
    core.create_node(node_body("st-2"))
    core.patch_node(
        "st-2",
        {"status": {"phase": "Terminated"}, "metadata": {"labels": {"seen": "yes"}}},
        _content_type=MERGE,
    )
    node = core.read_node("st-2")
    assert node.status.phase is None and node.metadata.labels == {"seen": "yes"}


def test_patching_a_missing_object_is_404(core: client.CoreV1Api):
    with pytest.raises(ApiException) as exc:
        core.patch_node("ghost", {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE)
    assert exc.value.status == 404 and json.loads(exc.value.body)["reason"] == "NotFound"


def test_a_no_op_patch_keeps_the_resource_version(core: client.CoreV1Api):
    node = core.create_node(node_body("noop", {"a": "b"}))
    after = core.patch_node("noop", {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE)
    assert after.metadata.resource_version == node.metadata.resource_version
