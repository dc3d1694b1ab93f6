"""RBAC, ServiceAccount tokens and the Node authorizer on the API server twin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sim.k8s.server import KubeTwin
from tests.sim_k8s.conftest import (
    client_for_cert,
    client_for_token,
    kubectl_ok,
    node_body,
    run_kubectl,
    wait_for,
)

NS = "winfleet"
WORKER = f"system:serviceaccount:{NS}:worker"


def _grant(api_client: client.ApiClient, rules: list[dict[str, Any]]) -> None:
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(NS, {"metadata": {"name": "worker"}})
    rbac.create_namespaced_role(NS, {"metadata": {"name": "worker"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        NS,
        {
            "metadata": {"name": "worker"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "worker"},
            "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": NS}],
        },
    )


WORKER_RULES = [
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create"]},
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["cloud-private-key"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
]


@pytest.fixture
def worker_token(api_client: client.ApiClient, twin: KubeTwin) -> str:
    _grant(api_client, WORKER_RULES)
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(NS, {"metadata": {"name": "cloud-private-key"}, "data": {}})
    core.create_namespaced_secret(NS, {"metadata": {"name": "other"}, "data": {}})
    return twin.service_account_token(NS, "worker")


def _forbidden(exc: pytest.ExceptionInfo[ApiException]) -> str:
    assert exc.value.status == 403
    body = json.loads(exc.value.body)
    assert body["reason"] == "Forbidden"
    return str(body["message"])


def test_a_service_account_may_do_what_its_role_grants_and_nothing_else(
    twin: KubeTwin, worker_token: str
):
    with client_for_token(twin, worker_token) as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_config_map(NS, {"metadata": {"name": "mine"}})
        assert [c.metadata.name for c in core.list_namespaced_config_map(NS).items] == ["mine"]
        assert core.read_namespaced_secret("cloud-private-key", NS).metadata.name
        with pytest.raises(ApiException) as exc:
            core.read_namespaced_secret("other", NS)
        assert _forbidden(exc) == (
            f'secrets "other" is forbidden: User "{WORKER}" cannot get resource "secrets" '
            f'in API group "" in the namespace "{NS}"'
        )
        with pytest.raises(ApiException) as exc:
            core.list_namespaced_secret(NS)
        assert "cannot list resource" in _forbidden(exc)
        # resourceNames allow a list or watch that pins metadata.name (kube-apiserver's
        # RequestInfo takes the name from the field selector), as informers of one object do.
        one = core.list_namespaced_secret(NS, field_selector="metadata.name=cloud-private-key")
        assert [x.metadata.name for x in one.items] == ["cloud-private-key"]
        stream = core.list_namespaced_secret(
            NS,
            field_selector="metadata.name=cloud-private-key",
            watch=True,
            timeout_seconds=1,
            _preload_content=False,
        )
        assert stream.status == 200
        stream.release_conn()
        with pytest.raises(ApiException) as exc:
            core.list_namespaced_secret(NS, field_selector="metadata.name=other")
        assert _forbidden(exc).startswith('secrets "other" is forbidden')
        with pytest.raises(ApiException) as exc:
            core.list_namespaced_secret(NS, field_selector="metadata.name!=other")
        assert "cannot list resource" in _forbidden(exc)
        with pytest.raises(ApiException) as exc:
            core.delete_namespaced_config_map("mine", NS)
        assert "cannot delete resource" in _forbidden(exc)
        with pytest.raises(ApiException) as exc:
            core.list_node()
        assert _forbidden(exc) == (
            f'nodes is forbidden: User "{WORKER}" cannot list resource "nodes" in API group "" '
            "at the cluster scope"
        )
        with pytest.raises(ApiException) as exc:
            core.list_namespaced_config_map("default")
        assert 'in the namespace "default"' in _forbidden(exc)


def test_a_subresource_grant_covers_only_that_subresource(
    twin: KubeTwin, worker_token: str, core: client.CoreV1Api
):
    core.create_namespaced_pod(
        NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    )
    with client_for_token(twin, worker_token) as api:
        worker = client.CoreV1Api(api)
        with pytest.raises(ApiException) as exc:
            worker.delete_namespaced_pod("p", NS)
        assert 'cannot delete resource "pods"' in _forbidden(exc)
        worker.create_namespaced_pod_eviction(
            "p", NS, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}
        )
    assert twin.store.get("pods", "p", NS) is None


def test_kubectl_auth_can_i_and_whoami_answer_for_the_service_account_token(
    twin: KubeTwin, worker_token: str
):
    def can_i(*args: str) -> str:
        return run_kubectl(
            twin, "auth", "can-i", *args, "-n", NS, token=worker_token
        ).stdout.strip()

    assert can_i("create", "configmaps") == "yes"
    assert can_i("delete", "configmaps") == "no"
    assert can_i("get", "secrets/cloud-private-key") == "yes"
    assert can_i("get", "secrets/other") == "no"
    assert can_i("create", "pods", "--subresource=eviction") == "yes"
    assert can_i("delete", "pods") == "no"
    assert can_i("list", "nodes") == "no"
    whoami = kubectl_ok(twin, "auth", "whoami", "-o", "json", token=worker_token)
    user = json.loads(whoami)["status"]["userInfo"]
    assert user["username"] == WORKER
    assert user["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{NS}",
        "system:authenticated",
    ]


def test_kubectl_create_token_gives_a_token_that_a_kubeconfig_can_use(
    twin: KubeTwin, api_client: client.ApiClient, tmp_path: Path
):
    _grant(api_client, WORKER_RULES)
    token = kubectl_ok(twin, "create", "token", "worker", "-n", NS).strip()
    assert token.count(".") == 2  # a signed JWT
    path = twin.kubeconfig_for_token(token, tmp_path / "worker.kubeconfig", user="worker")
    with config.new_client_from_config(config_file=str(path)) as api:
        review = client.AuthorizationV1Api(api).create_self_subject_access_review(
            {
                "spec": {
                    "resourceAttributes": {
                        "verb": "list",
                        "resource": "configmaps",
                        "namespace": NS,
                    }
                }
            }
        )
    assert review.status.allowed is True
    assert review.status.reason == (
        f'RBAC: allowed by RoleBinding "worker/{NS}" of Role "worker" to '
        f'ServiceAccount "worker/{NS}"'
    )


def test_tokens_of_a_deleted_service_account_stop_working(
    twin: KubeTwin, api_client: client.ApiClient
):
    _grant(api_client, WORKER_RULES)
    token = twin.service_account_token(NS, "worker")
    client.CoreV1Api(api_client).delete_namespaced_service_account("worker", NS)
    with client_for_token(twin, token) as api, pytest.raises(ApiException) as exc:
        client.CoreV1Api(api).list_namespaced_config_map(NS)
    assert exc.value.status == 401


def test_a_token_request_for_a_missing_account_or_a_short_duration_is_refused(
    core: client.CoreV1Api,
):
    request = {"spec": {"expirationSeconds": 300}}
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service_account_token("nobody", NS, request)
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service_account_token("default", NS, request)
    assert exc.value.status == 422
    assert (
        "may not specify a duration less than 10 minutes" in json.loads(exc.value.body)["message"]
    )


def test_every_namespace_gets_a_default_service_account(core: client.CoreV1Api):
    core.create_namespace({"metadata": {"name": "fresh"}})
    wait_for(
        lambda: [s.metadata.name for s in core.list_namespaced_service_account("fresh").items],
        what="the default ServiceAccount",
    )


def test_cluster_role_bindings_grant_cluster_wide_and_a_missing_role_is_the_reason(
    twin: KubeTwin, api_client: client.ApiClient
):
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_cluster_role(
        {
            "metadata": {"name": "node-reader"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}],
        }
    )
    for name, role in (("readers", "node-reader"), ("broken", "no-such-role")):
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [
                    {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "ops"}
                ],
            }
        )
    token = twin.issue_token("carol", ("ops",))
    with client_for_token(twin, token) as api:
        client.CoreV1Api(api).list_node()
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(api).list_namespace()
    assert _forbidden(exc).endswith(
        ': RBAC: clusterrole.rbac.authorization.k8s.io "no-such-role" not found'
    )


def test_the_default_roles_exist_under_their_real_names(api_client: client.ApiClient):
    rbac = client.RbacAuthorizationV1Api(api_client)
    roles = {r.metadata.name for r in rbac.list_cluster_role().items}
    assert {
        "cluster-admin",
        "system:node",
        "system:node-bootstrapper",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
    } <= roles
    binding = rbac.read_cluster_role_binding("system-bootstrap-node-bootstrapper")
    assert binding.role_ref.name == "system:node-bootstrapper"
    assert [(s.kind, s.namespace, s.name) for s in binding.subjects] == [
        ("ServiceAccount", "openshift-machine-config-operator", "node-bootstrapper")
    ]


def test_a_node_may_not_touch_another_node_or_its_own_taints(twin: KubeTwin, tmp_path: Path):
    with client_for_cert(twin, tmp_path, "system:node:win-1", ["system:nodes"]) as api:
        core = client.CoreV1Api(api)
        core.create_node(node_body("win-1"))
        with pytest.raises(ApiException) as exc:
            core.create_node(node_body("win-2"))
        assert _forbidden(exc) == (
            'nodes "win-2" is forbidden: node "win-1" is not allowed to modify node "win-2"'
        )
        with pytest.raises(ApiException) as exc:
            core.patch_node("win-1", {"spec": {"taints": []}})
        assert 'node "win-1" is not allowed to modify taints' in _forbidden(exc)
        with pytest.raises(ApiException) as exc:
            core.patch_node(
                "win-1", {"metadata": {"labels": {"node-role.kubernetes.io/master": ""}}}
            )
        assert "is not allowed to modify labels: node-role.kubernetes.io/master" in _forbidden(exc)
        core.patch_node("win-1", {"metadata": {"annotations": {"k8s.ovn.org/mac": "00:11"}}})
        with pytest.raises(ApiException) as exc:
            client.CoordinationV1Api(api).create_namespaced_lease(
                "kube-node-lease", {"metadata": {"name": "win-2"}}
            )
        assert "can only access node lease with the same name" in _forbidden(exc)


def test_a_node_reads_only_secrets_its_pods_use(
    twin: KubeTwin, core: client.CoreV1Api, tmp_path: Path
):
    for name in ("used", "unused"):
        core.create_namespaced_secret(NS, {"metadata": {"name": name}, "data": {}})
    core.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "p"},
            "spec": {
                "nodeName": "win-1",
                "containers": [{"name": "c", "image": "x"}],
                "volumes": [{"name": "v", "secret": {"secretName": "used"}}],
            },
        },
    )
    with client_for_cert(twin, tmp_path, "system:node:win-1", ["system:nodes"]) as api:
        node_core = client.CoreV1Api(api)
        assert node_core.read_namespaced_secret("used", NS).metadata.name == "used"
        with pytest.raises(ApiException) as exc:
            node_core.read_namespaced_secret("unused", NS)
        assert _forbidden(exc).endswith(
            "no relationship found between node 'win-1' and this object"
        )
