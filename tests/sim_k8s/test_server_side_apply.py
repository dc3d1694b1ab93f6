"""Server-side apply and managedFields on the API server twin (kubectl and the Python client)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from sim.k8s.server import KubeTwin
from tests.sim_k8s.conftest import kubectl_ok, node_body, run_kubectl

APPLY = "application/apply-patch+yaml"
NS = "winfleet"


def _config_map(data: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "settings", "namespace": NS}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def _write(tmp_path: Path, body: dict[str, Any]) -> str:
    path = tmp_path / f"{body['kind'].lower()}-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def _apply(core: client.CoreV1Api, body: dict[str, Any], manager: str, force: bool = False) -> Any:
    return core.patch_namespaced_config_map(
        "settings", NS, body, field_manager=manager, force=force, _content_type=APPLY
    )


def _managers(obj: Any) -> dict[tuple[str, str], dict[str, Any]]:
    meta = obj["metadata"] if isinstance(obj, dict) else obj.metadata.to_dict()
    entries = meta.get("managedFields") or meta.get("managed_fields") or []
    out = {}
    for e in entries:
        fields = e.get("fieldsV1") or e.get("fields_v1")
        out[(e["manager"], e["operation"])] = fields
    return out


def test_kubectl_server_side_apply_creates_then_updates_and_shows_managed_fields(
    core: client.CoreV1Api, twin: KubeTwin, tmp_path: Path
):
    assert "serverside-applied" in kubectl_ok(
        twin, "apply", "--server-side", "-f", _write(tmp_path, _config_map({"a": "1", "b": "2"}))
    )
    kubectl_ok(twin, "apply", "--server-side", "-f", _write(tmp_path, _config_map({"a": "10"})))
    shown = yaml.safe_load(
        kubectl_ok(twin, "get", "cm", "settings", "-n", NS, "-o", "yaml", "--show-managed-fields")
    )
    assert shown["data"] == {"a": "10"}  # b was applied before and is owned by no one else
    assert _managers(shown) == {("kubectl", "Apply"): {"f:data": {"f:a": {}}}}
    hidden = yaml.safe_load(kubectl_ok(twin, "get", "cm", "settings", "-n", NS, "-o", "yaml"))
    assert "managedFields" not in hidden["metadata"]


def test_a_conflicting_apply_by_another_manager_is_refused_until_forced(
    core: client.CoreV1Api, twin: KubeTwin, tmp_path: Path
):
    kubectl_ok(
        twin, "apply", "--server-side", "-f", _write(tmp_path, _config_map({"a": "1", "b": "2"}))
    )
    with pytest.raises(ApiException) as exc:
        _apply(core, _config_map({"a": "mine", "c": "3"}), "winfleet-controller")
    status = json.loads(exc.value.body)
    assert exc.value.status == 409 and status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "kubectl": .data.a'
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "kubectl"', "field": ".data.a"}
    ]
    # the same value is not a conflict: the field becomes shared
    shared = _apply(core, _config_map({"b": "2"}), "winfleet-controller")
    assert _managers(shared)[("winfleet-controller", "Apply")] == {"f:data": {"f:b": {}}}
    forced = _apply(core, _config_map({"a": "mine"}), "winfleet-controller", force=True)
    assert forced.data == {"a": "mine", "b": "2"}
    owners = _managers(forced)
    assert owners[("winfleet-controller", "Apply")] == {"f:data": {"f:a": {}}}
    assert owners[("kubectl", "Apply")] == {"f:data": {"f:b": {}}}
    rejected = run_kubectl(
        twin, "apply", "--server-side", "-f", _write(tmp_path, _config_map({"a": "1", "b": "2"}))
    )
    assert rejected.returncode != 0
    assert 'conflict with "winfleet-controller": .data.a' in rejected.stderr
    kubectl_ok(
        twin,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        _write(tmp_path, _config_map({"a": "1", "b": "2"})),
    )
    assert core.read_namespaced_config_map("settings", NS).data == {"a": "1", "b": "2"}


def test_fields_dropped_from_an_apply_stay_when_another_manager_owns_them(
    core: client.CoreV1Api,
):
    _apply(core, _config_map({"a": "1"}, {"team": "x"}), "one")
    _apply(core, _config_map({}, {"team": "x"}), "two")
    after = _apply(core, _config_map({"a": "1"}), "one")
    assert after.metadata.annotations == {"team": "x"}  # still applied by "two"
    after = _apply(core, _config_map({"a": "1"}), "two")
    assert after.metadata.annotations is None


def test_other_writes_record_update_entries_for_their_manager(core: client.CoreV1Api):
    core.create_namespaced_config_map(NS, {"metadata": {"name": "settings"}, "data": {"x": "1"}})
    patched = core.patch_namespaced_config_map(
        "settings", NS, {"data": {"y": "2"}}, field_manager="my-operator"
    )
    owners = _managers(patched)
    # without fieldManager the manager is the User-Agent's product name
    assert owners[("OpenAPI-Generator", "Update")] == {"f:data": {".": {}, "f:x": {}}}
    assert owners[("my-operator", "Update")] == {"f:data": {"f:y": {}}}
    entry = next(e for e in patched.metadata.managed_fields if e.manager == "my-operator")
    assert entry.api_version == "v1" and entry.time is not None
    # an Update takes fields from an applier without a conflict
    _apply(core, _config_map({"z": "3"}), "applier")
    taken = core.patch_namespaced_config_map(
        "settings", NS, {"data": {"z": "4"}}, field_manager="my-operator"
    )
    assert ("applier", "Apply") not in _managers(taken)


def test_apply_requires_a_field_manager(core: client.CoreV1Api):
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map(
            "settings", NS, _config_map({"a": "1"}), _content_type=APPLY
        )
    status = json.loads(exc.value.body)
    assert exc.value.status == 422
    assert status["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
        "is required for apply patch"
    )


def test_kubectl_server_side_apply_sets_a_node_annotation_next_to_the_kubelet_fields(
    core: client.CoreV1Api, twin: KubeTwin, tmp_path: Path
):
    core.create_node(node_body("win-ssa"), field_manager="kubelet")
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "win-ssa", "annotations": {"winfleet.io/version": "1"}},
        "spec": {"unschedulable": True},
    }
    kubectl_ok(
        twin, "apply", "--server-side", "--field-manager=winfleet", "-f", _write(tmp_path, node)
    )
    read = core.read_node("win-ssa")
    assert read.metadata.annotations["winfleet.io/version"] == "1" and read.spec.unschedulable
    assert [t.key for t in read.spec.taints] == ["os"]
    owners = _managers(read)
    assert owners[("winfleet", "Apply")] == {
        "f:metadata": {"f:annotations": {"f:winfleet.io/version": {}}},
        "f:spec": {"f:unschedulable": {}},
    }
    assert "f:taints" in owners[("kubelet", "Update")]["f:spec"]


def test_custom_resources_are_created_and_updated_by_apply(api_client: client.ApiClient):
    custom = client.CustomObjectsApi(api_client)
    where = ("machine.openshift.io", "v1beta1", "openshift-machine-api", "machines", "m1")
    machine = {
        "apiVersion": "machine.openshift.io/v1beta1",
        "kind": "Machine",
        "metadata": {"name": "m1", "namespace": "openshift-machine-api", "labels": {"a": "b"}},
        "spec": {"providerID": "aws:///i-1"},
    }

    def apply() -> Any:
        return custom.patch_namespaced_custom_object(
            *where, machine, field_manager="winfleet", _content_type=APPLY
        )

    apply()  # create-on-apply answers 201 Created, which this client method does not deserialise
    created = custom.get_namespaced_custom_object(*where)
    assert created["spec"]["providerID"] == "aws:///i-1" and created["metadata"]["uid"]
    machine["spec"] = {"providerID": "aws:///i-2"}
    updated = apply()
    assert updated["spec"]["providerID"] == "aws:///i-2"
    assert _managers(updated)[("winfleet", "Apply")]["f:spec"] == {"f:providerID": {}}
