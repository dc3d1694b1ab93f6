"""ValidatingAdmissionPolicies and server-side dry run on the API server twin, through kubectl
and the `kubernetes` client as an admin and a ServiceAccount write them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sim.k8s.server import KubeTwin
from tests.sim_k8s.conftest import client_for_token, kubectl_ok, node_body, run_kubectl

NS = "winfleet"
WORKER = f"system:serviceaccount:{NS}:worker"

POLICY: dict[str, Any] = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": "windows-nodes-only"},
    "spec": {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["UPDATE", "DELETE"],
                    "resources": ["nodes"],
                }
            ]
        },
        "matchConditions": [
            {"name": "the-worker", "expression": f"request.userInfo.username == '{WORKER}'"}
        ],
        "variables": [
            {
                "name": "was",
                "expression": "has(oldObject.metadata.labels) && "
                "'kubernetes.io/os' in oldObject.metadata.labels ? "
                "oldObject.metadata.labels['kubernetes.io/os'] : ''",
            }
        ],
        "validations": [
            {
                "expression": "variables.was == 'windows'",
                "messageExpression": "'node ' + oldObject.metadata.name + ' is not a Windows node'",
            },
            {
                "expression": "object == null || object.metadata.labels['kubernetes.io/os'] == "
                "'windows'",
                "message": "the os label stays windows",
                "reason": "Forbidden",
            },
        ],
    },
}
BINDING: dict[str, Any] = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingAdmissionPolicyBinding",
    "metadata": {"name": "windows-nodes-only-worker"},
    "spec": {"policyName": "windows-nodes-only", "validationActions": ["Deny"]},
}


def _worker_token(api_client: client.ApiClient, twin: KubeTwin) -> str:
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(NS, {"metadata": {"name": "worker"}})
    rbac.create_cluster_role(
        {
            "metadata": {"name": "worker-nodes"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["*"]}],
        }
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": "worker-nodes"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "worker-nodes",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": NS}],
        }
    )
    return twin.service_account_token(NS, "worker")


@pytest.fixture
def worker(api_client: client.ApiClient, twin: KubeTwin) -> Iterator[client.CoreV1Api]:
    core = client.CoreV1Api(api_client)
    core.create_node(node_body("linux-1", {"kubernetes.io/os": "linux"}))
    core.create_node(node_body("win-1", {"kubernetes.io/os": "windows"}))
    reg = client.AdmissionregistrationV1Api(api_client)
    reg.create_validating_admission_policy(POLICY)
    reg.create_validating_admission_policy_binding(BINDING)
    with client_for_token(twin, _worker_token(api_client, twin)) as sa:
        yield client.CoreV1Api(sa)


def _refusal(exc: pytest.ExceptionInfo[ApiException]) -> tuple[int, str, str]:
    body = json.loads(exc.value.body)
    return exc.value.status, body["reason"], body["message"]


def test_a_policy_refuses_the_worker_patching_a_linux_node_with_the_real_message(
    worker: client.CoreV1Api,
) -> None:
    with pytest.raises(ApiException) as exc:
        worker.patch_node("linux-1", {"metadata": {"annotations": {"a": "b"}}})
    assert _refusal(exc) == (
        422,
        "Invalid",
        "nodes \"linux-1\" is forbidden: ValidatingAdmissionPolicy 'windows-nodes-only' with "
        "binding 'windows-nodes-only-worker' denied request: node linux-1 is not a Windows node",
    )
    with pytest.raises(ApiException) as exc:
        worker.delete_node("linux-1")
    assert exc.value.status == 422
    with pytest.raises(ApiException) as exc:  # a validation's reason sets the code
        worker.patch_node("win-1", {"metadata": {"labels": {"kubernetes.io/os": "linux"}}})
    status, reason, message = _refusal(exc)
    assert (status, reason) == (403, "Forbidden")
    assert message.endswith("denied request: the os label stays windows")


def test_a_policy_lets_the_worker_change_windows_nodes_and_others_change_anything(
    worker: client.CoreV1Api, core: client.CoreV1Api
) -> None:
    worker.patch_node("win-1", {"metadata": {"annotations": {"a": "b"}}})
    worker.delete_node("win-1")
    core.patch_node("linux-1", {"metadata": {"annotations": {"a": "b"}}})  # no match condition
    assert core.read_node("linux-1").metadata.annotations == {"a": "b"}


def test_an_erroring_expression_denies_under_fail_and_is_ignored_under_ignore(
    api_client: client.ApiClient, core: client.CoreV1Api
) -> None:
    core.create_node(node_body("bare"))
    reg = client.AdmissionregistrationV1Api(api_client)
    policy = {
        "metadata": {"name": "needs-team"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": ["nodes"],
                    }
                ]
            },
            "validations": [{"expression": "object.metadata.labels['team'] != ''"}],
        },
    }
    reg.create_validating_admission_policy(policy)
    reg.create_validating_admission_policy_binding(
        {
            "metadata": {"name": "needs-team"},
            "spec": {"policyName": "needs-team", "validationActions": ["Deny"]},
        }
    )
    with pytest.raises(ApiException) as exc:
        core.patch_node("bare", {"metadata": {"labels": {"x": "y"}}})
    status, _, message = _refusal(exc)
    assert status == 422
    assert "expression 'object.metadata.labels['team'] != ''' resulted in error" in message
    reg.patch_validating_admission_policy("needs-team", {"spec": {"failurePolicy": "Ignore"}})
    core.patch_node("bare", {"metadata": {"labels": {"x": "y"}}})


def test_policies_whose_expressions_do_not_compile_or_bindings_without_actions_are_refused(
    api_client: client.ApiClient, twin: KubeTwin
) -> None:
    reg = client.AdmissionregistrationV1Api(api_client)
    bad = json.loads(json.dumps(POLICY))
    bad["spec"]["validations"][0]["expression"] = "object.metadata.labels["
    with pytest.raises(ApiException) as exc:
        reg.create_validating_admission_policy(bad)
    assert exc.value.status == 422
    assert "spec.validations[0].expression" in json.loads(exc.value.body)["message"]
    binding = twin.state_dir / "binding.yaml"
    binding.write_text(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n"
        "metadata: {name: x}\nspec: {policyName: windows-nodes-only}\n"
    )
    refused = run_kubectl(twin, "apply", "-f", str(binding))
    assert refused.returncode != 0
    assert "spec.validationActions: Required value" in refused.stderr


def test_kubectl_server_dry_run_validates_and_admits_but_changes_nothing(twin: KubeTwin) -> None:
    manifest = twin.state_dir / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry, namespace: default}\ndata: {a: b}\n"
    )
    out = kubectl_ok(twin, "apply", "--dry-run=server", "-f", str(manifest))
    assert "configmap/dry created (server dry run)" in out
    assert twin.store.get("configmaps", "dry", "default") is None
    kubectl_ok(twin, "apply", "-f", str(manifest))
    before = twin.store.get("configmaps", "dry", "default")
    manifest.write_text(manifest.read_text().replace("a: b", "a: c"))
    out = kubectl_ok(twin, "apply", "--dry-run=server", "-f", str(manifest))
    assert "configmap/dry configured (server dry run)" in out
    assert twin.store.get("configmaps", "dry", "default") == before
    kubectl_ok(twin, "delete", "configmap", "dry", "-n", "default", "--dry-run=server")
    assert twin.store.get("configmaps", "dry", "default") == before
    bad = twin.state_dir / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry, namespace: nowhere}\n")
    refused = run_kubectl(twin, "apply", "--dry-run=server", "-f", str(bad))
    assert refused.returncode != 0 and 'namespaces "nowhere" not found' in refused.stderr
    assert [r.dry_run for r in twin.audit if r.resource == "configmaps" and r.verb != "get"] == [
        True,
        False,
        True,
        True,
        True,
    ]


def test_the_audit_log_records_who_did_what_and_the_answer(
    twin: KubeTwin, worker: client.CoreV1Api
) -> None:
    with pytest.raises(ApiException):
        worker.list_namespaced_secret("default")
    worker.read_node("win-1")
    mine = [(r.verb, r.resource, r.name, r.code) for r in twin.audit if r.user == WORKER]
    assert mine == [("list", "secrets", "", 403), ("get", "nodes", "win-1", 200)]
