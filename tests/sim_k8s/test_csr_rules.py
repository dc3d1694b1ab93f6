"""CSR approval, status and immutability rules of the API server twin (the real CSR strategy)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sim.k8s.server import KubeTwin
from tests.sim_k8s.conftest import client_for_token, wait_for
from tests.sim_k8s.test_certificates import csr_body

APPROVED = {"type": "Approved", "status": "True", "reason": "ByTest", "message": "ok"}
DENIED = {"type": "Denied", "status": "True", "reason": "ByTest", "message": "no"}


@pytest.fixture
def certs(api_client: client.ApiClient) -> client.CertificatesV1Api:
    return client.CertificatesV1Api(api_client)


def _raw(certs: client.CertificatesV1Api, name: str) -> dict[str, Any]:
    resp = certs.read_certificate_signing_request(name, _preload_content=False)
    return json.loads(resp.data)


def _error(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    return json.loads(exc.value.body)


def _approve(certs: client.CertificatesV1Api, name: str, *conditions: dict[str, Any]) -> Any:
    return certs.patch_certificate_signing_request_approval(
        name, {"status": {"conditions": list(conditions)}}
    )


def test_an_approved_condition_sent_through_status_is_refused(certs: client.CertificatesV1Api):
    certs.create_certificate_signing_request(csr_body("via-status", signer="example.com/x"))
    with pytest.raises(ApiException) as exc:
        certs.patch_certificate_signing_request_status(
            "via-status", {"status": {"conditions": [APPROVED]}}
        )
    assert exc.value.status == 422
    assert 'updates may not add a condition of type "Approved"' in _error(exc)["message"]
    assert _raw(certs, "via-status")["status"] == {}


def test_conditions_and_spec_sent_to_the_main_resource_are_dropped(
    certs: client.CertificatesV1Api,
):
    created = certs.create_certificate_signing_request(csr_body("main", signer="example.com/x"))
    body = _raw(certs, "main")
    body["status"] = {"conditions": [APPROVED]}
    body["spec"]["signerName"] = "example.com/other"
    body["metadata"]["labels"] = {"seen": "yes"}
    updated = certs.replace_certificate_signing_request("main", body)
    assert updated.metadata.labels == {"seen": "yes"}
    assert updated.status.conditions is None
    assert updated.spec.signer_name == "example.com/x" == created.spec.signer_name


def test_approval_sets_the_condition_and_fills_its_timestamps(certs: client.CertificatesV1Api):
    certs.create_certificate_signing_request(csr_body("stamped", signer="example.com/x"))
    approved = _approve(certs, "stamped", APPROVED)
    (condition,) = approved.status.conditions
    assert condition.type == "Approved" and condition.status == "True"
    assert condition.last_update_time is not None
    assert condition.last_transition_time == condition.last_update_time


def test_an_approved_request_cannot_be_denied_or_lose_its_approval(
    certs: client.CertificatesV1Api,
):
    certs.create_certificate_signing_request(csr_body("settled", signer="example.com/x"))
    _approve(certs, "settled", APPROVED)
    with pytest.raises(ApiException) as exc:  # a strategic merge adds Denied beside Approved
        _approve(certs, "settled", DENIED)
    assert exc.value.status == 422
    assert "Approved and Denied conditions are mutually exclusive" in _error(exc)["message"]
    replaced = _raw(certs, "settled")
    replaced["status"]["conditions"] = [DENIED]
    with pytest.raises(ApiException) as exc:  # a PUT replaces Approved with Denied
        certs.replace_certificate_signing_request_approval("settled", replaced)
    assert exc.value.status == 422
    assert 'updates may not remove a condition of type "Approved"' in _error(exc)["message"]
    assert [
        c.type for c in certs.read_certificate_signing_request("settled").status.conditions
    ] == ["Approved"]


def test_the_certificate_can_be_set_once_only_through_status(
    certs: client.CertificatesV1Api, twin: KubeTwin
):
    certs.create_certificate_signing_request(csr_body("cert", signer="example.com/x"))
    cert_pem, _ = twin.ca.issue_client_cert("someone", [])
    cert = base64.b64encode(cert_pem).decode()
    certs.patch_certificate_signing_request_approval(
        "cert", {"status": {"certificate": cert, "conditions": [APPROVED]}}
    )
    # the approval subresource applies the conditions and silently keeps the old certificate
    after_approval = _raw(certs, "cert")["status"]
    assert [c["type"] for c in after_approval["conditions"]] == ["Approved"]
    assert after_approval.get("certificate") is None
    certs.patch_certificate_signing_request_status("cert", {"status": {"certificate": cert}})
    assert _raw(certs, "cert")["status"]["certificate"] == cert
    other_pem, _ = twin.ca.issue_client_cert("other", [])
    with pytest.raises(ApiException) as exc:
        certs.patch_certificate_signing_request_status(
            "cert", {"status": {"certificate": base64.b64encode(other_pem).decode()}}
        )
    assert exc.value.status == 422
    assert "updates may not modify existing certificate content" in _error(exc)["message"]


def test_a_certificate_that_is_not_pem_is_invalid(certs: client.CertificatesV1Api):
    certs.create_certificate_signing_request(csr_body("junk", signer="example.com/x"))
    with pytest.raises(ApiException) as exc:
        certs.patch_certificate_signing_request_status(
            "junk", {"status": {"certificate": base64.b64encode(b"not a cert").decode()}}
        )
    assert exc.value.status == 422
    assert "must contain at least one CERTIFICATE PEM block" in _error(exc)["message"]


def _grant_cluster_role(api_client: client.ApiClient, name: str, rule: dict[str, Any]) -> None:
    """A ClusterRole with one rule, bound to the user "approver"."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": [rule]})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "User", "name": "approver"}],
        }
    )


def test_approving_needs_approve_on_the_signer_as_the_admission_plugin_demands(
    certs: client.CertificatesV1Api, twin: KubeTwin
):
    certs.create_certificate_signing_request(csr_body("gated"))
    csr_group = ["certificates.k8s.io"]
    _grant_cluster_role(
        certs.api_client,
        "csr-updater",
        {
            "apiGroups": csr_group,
            "resources": ["certificatesigningrequests/approval"],
            "verbs": ["update", "patch"],
        },
    )
    token = twin.issue_token("approver")
    with client_for_token(twin, token) as api:
        with pytest.raises(ApiException) as exc:
            _approve(client.CertificatesV1Api(api), "gated", APPROVED)
        assert exc.value.status == 403
        assert _error(exc)["message"] == (
            'certificatesigningrequests.certificates.k8s.io "gated" is forbidden: user not '
            "permitted to approve requests with signerName "
            '"kubernetes.io/kube-apiserver-client-kubelet"'
        )
        _grant_cluster_role(
            certs.api_client,
            "kubelet-signer-approver",
            {
                "apiGroups": csr_group,
                "resources": ["signers"],
                "resourceNames": ["kubernetes.io/*"],
                "verbs": ["approve"],
            },
        )
        _approve(client.CertificatesV1Api(api), "gated", APPROVED)
    wait_for(
        lambda: _raw(certs, "gated")["status"].get("certificate"), what="the approved CSR signed"
    )
