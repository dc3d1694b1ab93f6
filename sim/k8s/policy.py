"""The default RBAC objects of the SIMULATED cluster (kube-apiserver's bootstrap policy + MCO).

Seeded by `KubeTwin` at start, under the names a real cluster has them (labelled
`kubernetes.io/bootstrapping=rbac-defaults`): cluster-admin (bound to system:masters),
system:discovery / system:basic-user / system:public-info-viewer (bound to every authenticated
user), system:node-bootstrapper, the CSR nodeclient/selfnodeclient roles, the signer approver
roles and system:node (whose rules, `NODE_RULES`, the Node authorizer grants to kubelets; its
binding has no subjects, as in clusters since 1.8). The OpenShift Machine Config Operator's
bindings let its `node-bootstrapper` ServiceAccount and the `system:nodes` group request CSRs.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
READ = ["get", "list", "watch"]
CSR = "certificates.k8s.io"


def rule(
    verbs: list[str],
    groups: list[str] | None = None,
    resources: list[str] | None = None,
    names: list[str] | None = None,
    urls: list[str] | None = None,
) -> Obj:
    out: Obj = {"verbs": verbs}
    if urls is not None:
        out["nonResourceURLs"] = urls
        return out
    out["apiGroups"] = groups or [""]
    out["resources"] = resources or []
    if names:
        out["resourceNames"] = names
    return out


NODE_RULES: list[Obj] = [
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(
        ["create"], ["authorization.k8s.io"], ["subjectaccessreviews", "localsubjectaccessreviews"]
    ),
    rule(READ, [""], ["services"]),
    rule(["create", "get", "list", "watch"], [""], ["nodes"]),
    rule(["update", "patch"], [""], ["nodes/status"]),
    rule(["update", "patch"], [""], ["nodes"]),
    rule(["create", "update", "patch"], [""], ["events"]),
    rule(READ, [""], ["pods"]),
    rule(["create", "delete"], [""], ["pods"]),
    rule(["update", "patch"], [""], ["pods/status"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(READ, [""], ["secrets", "configmaps"]),
    rule(["get"], [""], ["persistentvolumeclaims", "persistentvolumes"]),
    rule(["get"], [""], ["endpoints"]),
    rule(["create", "get", "list", "watch"], [CSR], ["certificatesigningrequests"]),
    rule(["get", "create", "update", "patch", "delete"], ["coordination.k8s.io"], ["leases"]),
    rule(["get"], ["storage.k8s.io"], ["volumeattachments"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
]

_DISCOVERY_URLS = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
]
_PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def _approver(signer: str) -> list[Obj]:
    return [rule(["approve"], [CSR], ["signers"], [signer])]


CLUSTER_ROLES: dict[str, list[Obj]] = {
    "cluster-admin": [rule(["*"], ["*"], ["*"]), rule(["*"], urls=["*"])],
    "system:discovery": [rule(["get"], urls=_DISCOVERY_URLS)],
    "system:public-info-viewer": [rule(["get"], urls=_PUBLIC_URLS)],
    "system:basic-user": [
        rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews"]),
        rule(["create"], ["authorization.k8s.io"], ["selfsubjectrulesreviews"]),
        rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
    ],
    "system:node": NODE_RULES,
    "system:node-bootstrapper": [
        rule(["create", "get", "list", "watch"], [CSR], ["certificatesigningrequests"])
    ],
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient": [
        rule(["create"], [CSR], ["certificatesigningrequests/nodeclient"])
    ],
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": [
        rule(["create"], [CSR], ["certificatesigningrequests/selfnodeclient"])
    ],
    "system:certificates.k8s.io:kube-apiserver-client-approver": _approver(
        "kubernetes.io/kube-apiserver-client"
    ),
    "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver": _approver(
        "kubernetes.io/kube-apiserver-client-kubelet"
    ),
    "system:certificates.k8s.io:kubelet-serving-approver": _approver(
        "kubernetes.io/kubelet-serving"
    ),
    "system:certificates.k8s.io:legacy-unknown-approver": _approver("kubernetes.io/legacy-unknown"),
}


def _group(name: str) -> Obj:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


# binding name -> (cluster role, subjects)
CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, list[Obj]]] = {
    "cluster-admin": ("cluster-admin", [_group("system:masters")]),
    "system:discovery": ("system:discovery", [_group("system:authenticated")]),
    "system:basic-user": ("system:basic-user", [_group("system:authenticated")]),
    "system:public-info-viewer": (
        "system:public-info-viewer",
        [_group("system:authenticated"), _group("system:unauthenticated")],
    ),
    "system:node": ("system:node", []),
    # openshift/machine-config-operator manifests/machineconfigserver/*-role-binding.yaml
    "system-bootstrap-node-bootstrapper": (
        "system:node-bootstrapper",
        [
            {
                "kind": "ServiceAccount",
                "name": "node-bootstrapper",
                "namespace": "openshift-machine-config-operator",
            }
        ],
    ),
    "system-bootstrap-node-renewal": (
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        [_group("system:nodes")],
    ),
}

_DEFAULT_META: Obj = {
    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
    "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
}


def default_objects() -> list[tuple[str, Obj]]:
    """(plural, object) for every default ClusterRole and ClusterRoleBinding."""
    out: list[tuple[str, Obj]] = []
    for name, rules in CLUSTER_ROLES.items():
        meta = {"name": name, **_DEFAULT_META}
        out.append(("clusterroles", {"metadata": meta, "rules": rules}))
    for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items():
        body: Obj = {
            "metadata": {"name": name, **_DEFAULT_META},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
        }
        if subjects:
            body["subjects"] = subjects
        out.append(("clusterrolebindings", body))
    return out
