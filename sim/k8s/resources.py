"""The resource types the SIMULATED Kubernetes API server knows, and its discovery documents.

`Registry` maps (group, version, plural) to a `ResourceType`. Built-in types are registered at
start-up; CustomResourceDefinitions add more at run time (see `sim.k8s.handlers`). The discovery
endpoints (/api, /apis, /apis/<group>/<version>) are rendered from here so kubectl and the
`kubernetes` client see a consistent picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim.k8s.custom import CustomVersion, from_crd_version


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: frozenset[str] = frozenset()
    short_names: tuple[str, ...] = ()
    singular: str = ""
    custom: bool = False  # a CRD-declared type (no strategic merge patch)
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    # Strategic-merge list keys for this kind: dotted path -> merge key ("" = set of scalars).
    merge_keys: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # A CRD-declared type's schema, printer columns and scale paths (sim.k8s.custom).
    custom_version: CustomVersion | None = field(default=None, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


_META_KEYS = {"metadata.finalizers": "", "metadata.ownerReferences": "uid"}
# Subresources that take a POST of another kind: subresource -> (group, version, kind).
CREATE_SUBRESOURCES = {
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "binding": ("", "v1", "Binding"),
}
_POD_KEYS = {
    "spec.containers": "name",
    "spec.initContainers": "name",
    "spec.volumes": "name",
    "spec.containers.env": "name",
    "spec.containers.ports": "containerPort",
    "spec.containers.volumeMounts": "mountPath",
    "spec.tolerations": "",
    "status.conditions": "type",
}
_NODE_KEYS = {"status.conditions": "type", "status.addresses": "type", "spec.podCIDRs": ""}
_CSR_KEYS = {"status.conditions": "type"}
# apps/v1 workloads: the pod template's lists merge like a Pod's (kubectl set image, apply).
_TEMPLATE_KEYS = {
    f"spec.template.{path}": key for path, key in _POD_KEYS.items() if path.startswith("spec.")
}
_APPS_KEYS = {**_META_KEYS, **_TEMPLATE_KEYS, "status.conditions": "type"}


def _apps(plural: str, kind: str, short: tuple[str, ...]) -> ResourceType:
    return ResourceType(
        "apps",
        "v1",
        plural,
        kind,
        True,
        frozenset({"status"}),
        short,
        kind.lower(),
        merge_keys=dict(_APPS_KEYS),
    )


def _core(
    plural: str,
    kind: str,
    namespaced: bool = True,
    sub: tuple[str, ...] = (),
    short: tuple[str, ...] = (),
    keys: dict[str, str] | None = None,
) -> ResourceType:
    return ResourceType(
        "",
        "v1",
        plural,
        kind,
        namespaced,
        frozenset(sub),
        short,
        kind.lower(),
        merge_keys={**_META_KEYS, **(keys or {})},
    )


BUILTINS: tuple[ResourceType, ...] = (
    _core("namespaces", "Namespace", False, ("status",), ("ns",)),
    _core("nodes", "Node", False, ("status",), ("no",), _NODE_KEYS),
    _core("pods", "Pod", True, ("status", "eviction", "binding"), ("po",), _POD_KEYS),
    _core("configmaps", "ConfigMap", short=("cm",)),
    _core("secrets", "Secret"),
    _core("events", "Event", short=("ev",)),
    _core("services", "Service", sub=("status",), short=("svc",), keys={"spec.ports": "port"}),
    _core(
        "serviceaccounts",
        "ServiceAccount",
        sub=("token",),
        short=("sa",),
        keys={"secrets": "name", "imagePullSecrets": "name"},
    ),
    *(
        ResourceType(
            "rbac.authorization.k8s.io",
            "v1",
            plural,
            kind,
            namespaced,
            singular=kind.lower(),
            merge_keys=dict(_META_KEYS),
        )
        for plural, kind, namespaced in (
            ("roles", "Role", True),
            ("rolebindings", "RoleBinding", True),
            ("clusterroles", "ClusterRole", False),
            ("clusterrolebindings", "ClusterRoleBinding", False),
        )
    ),
    *(
        ResourceType(group, "v1", plural, kind, namespaced, singular="", verbs=("create",))
        for group, plural, kind, namespaced in (
            ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
            ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview", False),
            ("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", True),
            ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
            ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", False),
            ("authentication.k8s.io", "tokenreviews", "TokenReview", False),
        )
    ),
    _apps("deployments", "Deployment", ("deploy",)),
    _apps("replicasets", "ReplicaSet", ("rs",)),
    _apps("daemonsets", "DaemonSet", ("ds",)),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        True,
        frozenset({"status"}),
        ("pdb",),
        "poddisruptionbudget",
        merge_keys={**_META_KEYS, "status.conditions": "type"},
    ),
    ResourceType(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        False,
        frozenset({"status", "approval"}),
        ("csr",),
        "certificatesigningrequest",
        merge_keys={**_META_KEYS, **_CSR_KEYS},
    ),
    ResourceType(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        True,
        frozenset(),
        (),
        "lease",
        merge_keys=dict(_META_KEYS),
    ),
    *(
        ResourceType(
            "admissionregistration.k8s.io",
            "v1",
            plural,
            kind,
            False,
            frozenset(sub),
            short,
            kind.lower(),
            merge_keys=dict(_META_KEYS),
        )
        for plural, kind, sub, short in (
            ("validatingadmissionpolicies", "ValidatingAdmissionPolicy", ("status",), ()),
            ("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", (), ()),
        )
    ),
    # Stored and served, not enforced: the twin has no pod network (sim/README.md)
    ResourceType(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        True,
        frozenset(),
        ("netpol",),
        "networkpolicy",
        merge_keys=dict(_META_KEYS),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        frozenset({"status"}),
        ("crd", "crds"),
        "customresourcedefinition",
        merge_keys=dict(_META_KEYS),
    ),
)


def crd_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The served versions a CustomResourceDefinition object declares, as resource types."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for v in spec.get("versions", []):
        if not v.get("served", True):
            continue
        sub = frozenset(k for k in (v.get("subresources") or {}) if k in ("status", "scale"))
        out.append(
            ResourceType(
                spec["group"],
                v["name"],
                names["plural"],
                names["kind"],
                spec.get("scope", "Namespaced") == "Namespaced",
                sub,
                tuple(names.get("shortNames", ())),
                names.get("singular", names["kind"].lower()),
                custom=True,
                custom_version=from_crd_version(names["kind"], v),
            )
        )
    return out


def machine_api_crds() -> list[dict[str, Any]]:
    """The machine.openshift.io/v1beta1 Machine and MachineSet CRDs (pre-registered)."""
    out = []
    for kind, plural, short in (
        ("Machine", "machines", ["mach"]),
        ("MachineSet", "machinesets", ["ms"]),
    ):
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.machine.openshift.io"},
                "spec": {
                    "group": "machine.openshift.io",
                    "scope": "Namespaced",
                    "names": {
                        "kind": kind,
                        "plural": plural,
                        "singular": kind.lower(),
                        "listKind": f"{kind}List",
                        "shortNames": short,
                    },
                    "versions": [
                        {
                            "name": "v1beta1",
                            "served": True,
                            "storage": True,
                            "subresources": {"status": {}},
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    ],
                },
            }
        )
    return out


class Registry:
    """All resource types currently served, indexed for routing and discovery."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in BUILTINS:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._types[rt.key] = rt

    def remove(self, group: str, plural: str) -> None:
        for key in [k for k in self._types if k[0] == group and k[2] == plural]:
            del self._types[key]

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_plural(self, plural: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.plural == plural]

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self._types.values():
            if rt.group and rt.version not in out.setdefault(rt.group, []):
                out[rt.group].append(rt.version)
        return out

    # -- discovery documents -------------------------------------------------------------
    def api_versions(self, server_address: str) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = []
        for group, versions in sorted(self.group_versions().items()):
            vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": vs, "preferredVersion": vs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.group_versions().get(group)
        if not versions:
            return None
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": vs,
            "preferredVersion": vs[0],
        }

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = [rt for rt in self._types.values() if rt.group == group and rt.version == version]
        if not types:
            return None
        resources: list[dict[str, Any]] = []
        for rt in sorted(types, key=lambda t: t.plural):
            resources.append(
                {
                    "name": rt.plural,
                    "singularName": rt.singular,
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": list(rt.verbs),
                    "shortNames": list(rt.short_names),
                }
            )
            for sub in sorted(rt.subresources):
                entry = {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub in CREATE_SUBRESOURCES:  # kubectl drain / create token read these
                    group, version, kind = CREATE_SUBRESOURCES[sub]
                    entry.update(group=group, version=version, kind=kind, verbs=["create"])
                if sub == "scale":  # kubectl scale reads the Scale's group and version here
                    entry.update(group="autoscaling", version="v1", kind="Scale")
                resources.append(entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": rt.api_version,
            "resources": resources,
        }
