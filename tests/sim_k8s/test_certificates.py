"""CSRs, identities and authorization on the API server twin (the kubelet TLS bootstrap path)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography import x509
from cryptography.x509.oid import NameOID
from kubernetes import client
from kubernetes.client.rest import ApiException

from sim.k8s.auth import BOOTSTRAP_USER
from sim.k8s.server import KubeTwin
from sim.pki import make_csr, new_private_key_pem
from tests.sim_k8s.conftest import client_for_cert, client_for_token, node_body, wait_for

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"


def csr_body(
    name: str,
    cn: str = "system:node:win-1",
    signer: str = CLIENT_SIGNER,
    ips: tuple[str, ...] = (),
    orgs: tuple[str, ...] = ("system:nodes",),
    **spec: Any,
) -> dict[str, Any]:
    pem = make_csr(new_private_key_pem(), cn, list(orgs), ip_addresses=ips)
    usages = [
        "digital signature",
        "key encipherment",
        "server auth" if signer == SERVING_SIGNER else "client auth",
    ]
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(pem).decode(),
            "signerName": signer,
            "usages": usages,
            **spec,
        },
    }


@pytest.fixture
def certs(api_client: client.ApiClient) -> client.CertificatesV1Api:
    return client.CertificatesV1Api(api_client)


def _approve(certs: client.CertificatesV1Api, name: str, kind: str = "Approved") -> None:
    csr = certs.read_certificate_signing_request(name)
    csr.status.conditions = [
        client.V1CertificateSigningRequestCondition(
            type=kind, status="True", reason="WMCOApprove", message="by test"
        )
    ]
    certs.replace_certificate_signing_request_approval(name, csr)


def _certificate(certs: client.CertificatesV1Api, name: str) -> str | None:
    return certs.read_certificate_signing_request(name).status.certificate


def test_csr_requester_is_filled_by_the_server_not_the_client(certs: client.CertificatesV1Api):
    created = certs.create_certificate_signing_request(
        csr_body("spoof", username="system:node:evil", groups=["system:masters"])
    )
    assert created.spec.username == "system:admin"
    assert "system:masters" in created.spec.groups and "system:node:evil" not in created.spec.groups


def test_bootstrap_token_creates_csrs_as_the_node_bootstrapper(twin: KubeTwin):
    with client_for_token(twin, twin.bootstrap_token) as api:
        certs = client.CertificatesV1Api(api)
        created = certs.create_certificate_signing_request(csr_body("boot"))
        assert created.spec.username == BOOTSTRAP_USER
        assert {"system:serviceaccounts", "system:authenticated"} <= set(created.spec.groups)
        assert [c.metadata.name for c in certs.list_certificate_signing_request().items] == ["boot"]


def test_bootstrap_token_may_not_touch_nodes_or_approve(twin: KubeTwin):
    with client_for_token(twin, twin.bootstrap_token) as api:
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(api).list_node()
        assert exc.value.status == 403
        client.CertificatesV1Api(api).create_certificate_signing_request(csr_body("b2"))
        with pytest.raises(ApiException) as exc:
            client.CertificatesV1Api(api).patch_certificate_signing_request_approval(
                "b2", {"status": {"conditions": [{"type": "Approved", "status": "True"}]}}
            )
        assert exc.value.status == 403


def test_client_certificate_identity_is_cn_and_organizations(twin: KubeTwin, tmp_path: Path):
    with client_for_cert(twin, tmp_path, "system:node:win-1", ["system:nodes"]) as api:
        created = client.CertificatesV1Api(api).create_certificate_signing_request(
            csr_body("serving", signer=SERVING_SIGNER, ips=("10.0.0.5",))
        )
    assert created.spec.username == "system:node:win-1"
    assert sorted(created.spec.groups) == ["system:authenticated", "system:nodes"]


def test_a_node_may_register_and_update_only_itself(twin: KubeTwin, tmp_path: Path):
    with client_for_cert(twin, tmp_path, "system:node:win-1", ["system:nodes"]) as api:
        core = client.CoreV1Api(api)
        core.create_node(node_body("win-1"))
        core.patch_node_status(
            "win-1", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        )
        with pytest.raises(ApiException) as exc:
            core.create_node(node_body("win-2"))
        assert exc.value.status == 403
        with pytest.raises(ApiException) as exc:
            core.delete_node("win-1")
        assert exc.value.status == 403
    assert twin.store.get("nodes", "win-1")["status"]["conditions"][0]["status"] == "True"


def test_a_certificate_from_another_ca_is_not_an_identity(twin: KubeTwin, tmp_path: Path):
    from sim.pki import CertificateAuthority

    other = CertificateAuthority("rogue")
    cert, key = other.issue_client_cert("system:admin", ["system:masters"])
    (tmp_path / "r.crt").write_bytes(cert)
    (tmp_path / "r.key").write_bytes(key)
    cfg = client.Configuration()
    cfg.host, cfg.ssl_ca_cert = twin.url, str(twin.ca_path)
    cfg.cert_file, cfg.key_file = str(tmp_path / "r.crt"), str(tmp_path / "r.key")
    # The TLS layer refuses a certificate the twin CA did not sign, as kube-apiserver does.
    with client.ApiClient(cfg) as api, pytest.raises(urllib3.exceptions.MaxRetryError):
        client.CoreV1Api(api).list_node(_request_timeout=5)


def test_approval_changes_only_the_conditions(certs: client.CertificatesV1Api):
    created = certs.create_certificate_signing_request(csr_body("appr", signer="example.com/x"))
    _approve(certs, "appr")
    after = certs.read_certificate_signing_request("appr")
    assert [(c.type, c.reason) for c in after.status.conditions] == [("Approved", "WMCOApprove")]
    assert after.spec.request == created.spec.request
    assert after.status.certificate is None


def test_approved_kubelet_csr_gets_a_certificate_that_verifies_against_the_ca(
    certs: client.CertificatesV1Api, twin: KubeTwin
):
    certs.create_certificate_signing_request(csr_body("kubelet-client"))
    _approve(certs, "kubelet-client")
    issued = wait_for(lambda: _certificate(certs, "kubelet-client"), what="signed certificate")
    cert = twin.ca.verify(base64.b64decode(issued))
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert (cn, org) == ("system:node:win-1", "system:nodes")


def test_serving_certificate_carries_the_requested_ip_sans(
    certs: client.CertificatesV1Api, twin: KubeTwin
):
    certs.create_certificate_signing_request(
        csr_body("serve", signer=SERVING_SIGNER, ips=("10.0.0.5",))
    )
    _approve(certs, "serve")
    issued = wait_for(lambda: _certificate(certs, "serve"), what="serving certificate")
    cert = twin.ca.verify(base64.b64decode(issued))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]


def test_denied_or_unknown_signer_csrs_never_get_a_certificate(certs: client.CertificatesV1Api):
    certs.create_certificate_signing_request(csr_body("denied"))
    certs.create_certificate_signing_request(csr_body("foreign", signer="example.com/other"))
    certs.create_certificate_signing_request(csr_body("marker"))
    _approve(certs, "denied", "Denied")
    _approve(certs, "foreign")
    _approve(certs, "marker")
    wait_for(lambda: _certificate(certs, "marker"), what="the later CSR to be signed")
    assert _certificate(certs, "denied") is None and _certificate(certs, "foreign") is None


def test_approved_and_denied_together_are_invalid(certs: client.CertificatesV1Api):
    certs.create_certificate_signing_request(csr_body("both"))
    with pytest.raises(ApiException) as exc:
        certs.patch_certificate_signing_request_approval(
            "both",
            {
                "status": {
                    "conditions": [
                        {"type": "Approved", "status": "True"},
                        {"type": "Denied", "status": "True"},
                    ]
                }
            },
        )
    assert exc.value.status == 422


def test_csrs_can_be_listed_by_signer_name(certs: client.CertificatesV1Api):
    certs.create_certificate_signing_request(csr_body("c1"))
    certs.create_certificate_signing_request(csr_body("s1", signer=SERVING_SIGNER))
    listed = certs.list_certificate_signing_request(
        field_selector=f"spec.signerName={SERVING_SIGNER}"
    )
    assert [c.metadata.name for c in listed.items] == ["s1"]


def test_a_node_may_renew_its_lease_and_post_events_but_not_read_secrets(
    twin: KubeTwin, tmp_path: Path
):
    with client_for_cert(twin, tmp_path, "system:node:win-1", ["system:nodes"]) as api:
        lease = client.CoordinationV1Api(api).create_namespaced_lease(
            "kube-node-lease",
            {"metadata": {"name": "win-1"}, "spec": {"holderIdentity": "win-1"}},
        )
        assert lease.spec.holder_identity == "win-1"
        client.CoreV1Api(api).create_namespaced_event(
            "default",
            {
                "metadata": {"generateName": "win-1."},
                "involvedObject": {"kind": "Node", "name": "win-1"},
                "reason": "Starting",
                "message": "kubelet starting",
            },
        )
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(api).list_namespaced_secret("winfleet")
        assert exc.value.status == 403


@pytest.mark.parametrize(
    ("name", "kwargs", "reason"),
    [
        ("client-with-san", {"ips": ("10.0.0.5",)}, "subjectAltNames are not allowed"),
        ("client-wrong-org", {"orgs": ("system:masters",)}, "organization"),
        ("client-wrong-cn", {"cn": "alice"}, "common name"),
        ("serving-without-san", {"signer": SERVING_SIGNER}, "subjectAltName is required"),
    ],
)
def test_approved_requests_that_do_not_fit_the_signer_fail_instead_of_being_signed(
    certs: client.CertificatesV1Api, name: str, kwargs: dict[str, Any], reason: str
):
    certs.create_certificate_signing_request(csr_body(name, **kwargs))
    _approve(certs, name)

    def failed() -> Any:
        conditions = certs.read_certificate_signing_request(name).status.conditions or []
        return next((c for c in conditions if c.type == "Failed"), None)

    condition = wait_for(failed, what=f"{name} to be marked Failed")
    assert condition.reason == "SignerValidationFailure" and reason in condition.message
    assert _certificate(certs, name) is None
