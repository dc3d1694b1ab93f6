"""CRUD semantics of the Kubernetes API server twin, through the official client."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sim.k8s.server import KubeTwin
from tests.sim_k8s.conftest import RunningTwin, client_for_token, node_body


def _cm(name: str, data: dict[str, str] | None = None, **meta: object) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, **meta), data=data or {})


@pytest.fixture
def running(start_twin: Callable[..., RunningTwin]) -> RunningTwin:
    """The API server alone, as envtest runs it: no node lifecycle controller or scheduler
    rewrites the Nodes and Pods whose API semantics these tests pin down."""
    return start_twin(bookmark_interval=0.2, kube_controllers=False)


def test_created_configmap_reads_back_with_server_assigned_metadata(core: client.CoreV1Api):
    created = core.create_namespaced_config_map("winfleet", _cm("a", {"k": "v"}))
    got = core.read_namespaced_config_map("a", "winfleet")
    assert got.data == {"k": "v"}
    assert got.metadata.uid == created.metadata.uid and got.metadata.uid
    assert got.metadata.creation_timestamp is not None
    assert int(got.metadata.resource_version) > 0


def test_creating_an_existing_name_is_rejected_as_already_exists(core: client.CoreV1Api):
    core.create_namespaced_config_map("winfleet", _cm("dup"))
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("winfleet", _cm("dup"))
    assert exc.value.status == 409
    assert json.loads(exc.value.body)["reason"] == "AlreadyExists"


def test_reading_a_missing_object_is_404_with_a_status_body(core: client.CoreV1Api):
    with pytest.raises(ApiException) as exc:
        core.read_node("no-such-node")
    body = json.loads(exc.value.body)
    assert exc.value.status == 404
    assert (body["kind"], body["reason"]) == ("Status", "NotFound")


def test_stale_resource_version_update_is_rejected_with_409(core: client.CoreV1Api):
    first = core.create_namespaced_config_map("winfleet", _cm("rv", {"n": "1"}))
    core.patch_namespaced_config_map(
        "rv", "winfleet", {"data": {"n": "2"}}, _content_type="application/merge-patch+json"
    )
    first.data = {"n": "3"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("rv", "winfleet", first)
    assert exc.value.status == 409
    assert json.loads(exc.value.body)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("rv", "winfleet").data == {"n": "2"}


def test_stale_resource_version_in_a_patch_body_is_rejected_with_409(core: client.CoreV1Api):
    first = core.create_namespaced_config_map("winfleet", _cm("rvp", {"n": "1"}))
    core.patch_namespaced_config_map(
        "rvp", "winfleet", {"data": {"n": "2"}}, _content_type="application/merge-patch+json"
    )
    stale = {"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"n": "3"}}
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map(
            "rvp", "winfleet", stale, _content_type="application/merge-patch+json"
        )
    assert exc.value.status == 409


def test_resource_versions_grow_across_all_kinds(core: client.CoreV1Api):
    a = core.create_namespaced_config_map("winfleet", _cm("one"))
    b = core.create_node(node_body("n-1"))
    c = core.create_namespaced_secret(
        "winfleet",
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="s"), string_data=None, data={"x": "eQ=="}
        ),
    )
    versions = [int(o.metadata.resource_version) for o in (a, b, c)]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_generation_is_bumped_by_spec_changes_but_not_by_status_or_labels(core: client.CoreV1Api):
    node = core.create_node(node_body("gen-1"))
    assert node.metadata.generation == 1
    core.patch_node(
        "gen-1", {"metadata": {"labels": {"a": "b"}}}, _content_type="application/merge-patch+json"
    )
    core.patch_node_status(
        "gen-1", {"status": {"phase": "Running"}}, _content_type="application/merge-patch+json"
    )
    assert core.read_node("gen-1").metadata.generation == 1
    core.patch_node(
        "gen-1", {"spec": {"unschedulable": True}}, _content_type="application/merge-patch+json"
    )
    assert core.read_node("gen-1").metadata.generation == 2


def test_generate_name_produces_a_unique_name_with_that_prefix(core: client.CoreV1Api):
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="job-"))
    names = {core.create_namespaced_config_map("winfleet", body).metadata.name for _ in range(3)}
    assert len(names) == 3 and all(n.startswith("job-") and len(n) == 9 for n in names)


@pytest.mark.parametrize(
    "meta",
    [
        {"name": "bad", "labels": {"os": "not valid!"}},
        {"name": "Upper_Case"},
        {},
    ],
)
def test_invalid_objects_are_rejected_with_422_invalid(core: client.CoreV1Api, meta: dict):
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("winfleet", {"metadata": meta})
    body = json.loads(exc.value.body)
    assert exc.value.status == 422
    assert body["reason"] == "Invalid" and body["details"]["causes"]


def test_a_body_of_another_kind_is_rejected_as_bad_request(core: client.CoreV1Api):
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(
            "winfleet", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}
        )
    assert exc.value.status == 400


def test_creating_in_a_missing_namespace_is_404(core: client.CoreV1Api):
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", _cm("x"))
    assert exc.value.status == 404


def test_default_namespaces_exist_at_start(core: client.CoreV1Api):
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {
        "default",
        "kube-system",
        "openshift-machine-api",
        "openshift-machine-config-operator",
        "winfleet",
    } <= names


def test_delete_returns_the_object_and_removes_it(core: client.CoreV1Api, twin: KubeTwin):
    core.create_namespaced_config_map("winfleet", _cm("gone"))
    core.delete_namespaced_config_map("gone", "winfleet")
    assert twin.store.get("configmaps", "gone", "winfleet") is None


def test_delete_with_finalizers_marks_deletion_until_the_last_finalizer_goes(
    core: client.CoreV1Api, twin: KubeTwin
):
    core.create_namespaced_config_map("winfleet", _cm("fin", finalizers=["a/x", "b/y"]))
    core.delete_namespaced_config_map("fin", "winfleet")
    marked = core.read_namespaced_config_map("fin", "winfleet")
    assert marked.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map(
        "fin",
        "winfleet",
        [{"op": "remove", "path": "/metadata/finalizers/0"}],
        _content_type="application/json-patch+json",
    )
    assert twin.store.get("configmaps", "fin", "winfleet") is not None
    core.patch_namespaced_config_map(
        "fin",
        "winfleet",
        {"metadata": {"finalizers": None}},
        _content_type="application/merge-patch+json",
    )
    assert twin.store.get("configmaps", "fin", "winfleet") is None


def test_requests_without_credentials_get_401(twin: KubeTwin):
    with client_for_token(twin, None) as anonymous:
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(anonymous).list_node()
    assert exc.value.status == 401
    assert json.loads(exc.value.body)["reason"] == "Unauthorized"


def test_a_wrong_token_gets_401(twin: KubeTwin):
    with client_for_token(twin, "not-a-token") as stranger:
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(stranger).list_node()
    assert exc.value.status == 401
