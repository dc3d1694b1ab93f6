"""The Node authorizer and NodeRestriction admission of the SIMULATED Kubernetes API server.

Kubelets (user `system:node:<name>`, group `system:nodes`) are authorized as kube-apiserver
(1.29) does with `--authorization-mode=Node,RBAC` and the NodeRestriction admission plugin:
- secrets and configmaps: only get/list/watch of a named object that a pod bound to the node
  references (volumes, env, envFrom, imagePullSecrets); serviceaccounts/token only for the
  service account of a pod bound to the node; leases only in kube-node-lease, under the node's
  own name; everything else by the system:node rules (`sim.k8s.policy.NODE_RULES`);
- admission: a node may create and modify only its own Node, may not change its taints nor set
  `kubernetes.io`/`k8s.io` labels outside the kubelet's own set (or any node-restriction label),
  may create only its own Lease, and may only delete, evict or update the status of pods bound
  to itself.
Denials carry the real reasons. Used by `sim.k8s.authz`.
"""

from __future__ import annotations

from typing import Any

from sim.k8s.auth import Identity
from sim.k8s.errors import ApiError, forbidden_because
from sim.k8s.policy import NODE_RULES
from sim.k8s.rbac import Attributes, rule_allows
from sim.k8s.store import Obj, Store

_KUBELET_LABELS = {
    "kubernetes.io/hostname",
    "kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
}
_KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def _forbidden_labels(keys: set[str]) -> list[str]:
    out = []
    for key in keys:
        ns = key.rpartition("/")[0]
        kube = _in_namespace(ns, "kubernetes.io") or _in_namespace(ns, "k8s.io")
        kubelet = key in _KUBELET_LABELS or any(
            _in_namespace(ns, d) for d in _KUBELET_LABEL_NAMESPACES
        )
        if _in_namespace(ns, "node-restriction.kubernetes.io") or (kube and not kubelet):
            out.append(key)
    return sorted(out)


def _references(pod: Obj, kind: str, name: str) -> bool:
    spec = pod.get("spec") or {}
    if kind == "serviceaccounts":
        return bool(spec.get("serviceAccountName", "default") == name)
    key = "secret" if kind == "secrets" else "configMap"
    ref_key = "secretKeyRef" if kind == "secrets" else "configMapKeyRef"
    found: list[Any] = []
    if kind == "secrets":
        found += [s.get("name") for s in spec.get("imagePullSecrets") or []]
    for vol in spec.get("volumes") or []:
        if kind == "secrets" and vol.get("secret"):
            found.append(vol["secret"].get("secretName"))
        elif kind == "configmaps" and vol.get("configMap"):
            found.append(vol["configMap"].get("name"))
        for src in (vol.get("projected") or {}).get("sources") or []:
            found.append((src.get(key) or {}).get("name"))
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        found += [
            ((e.get("valueFrom") or {}).get(ref_key) or {}).get("name") for e in c.get("env") or []
        ]
        found += [(e.get(f"{key}Ref") or {}).get("name") for e in c.get("envFrom") or []]
    return name in found


class NodeAuthorizer:
    """Answers for kubelets; no opinion (and no reason) for everyone else."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _related(self, node: str, kind: str, ns: str, name: str) -> bool:
        return any(
            (e.obj.get("spec") or {}).get("nodeName") == node and _references(e.obj, kind, name)
            for e in self.store.entries(("", "pods"), ns)
        )

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        node = attrs.who.node_name
        if node is None:
            return False, ""
        if not node:
            return False, f'unknown node for user "{attrs.who.user}"'
        res = (attrs.group, attrs.resource) if attrs.resource_request else None
        if res in (("", "secrets"), ("", "configmaps")):
            if attrs.verb not in ("get", "list", "watch"):
                return False, "can only read resources of this type"
            if attrs.subresource:
                return False, "cannot read subresource"
            if not attrs.namespace:
                return False, "can only read namespaced object of this type"
            return self._graph(node, attrs)
        if res == ("", "serviceaccounts"):
            if attrs.verb != "create" or not attrs.name:
                return False, "can only create tokens for individual service accounts"
            if attrs.subresource != "token":
                return False, "can only create token subresource of serviceaccount"
            return self._graph(node, attrs)
        if res == ("coordination.k8s.io", "leases"):
            if attrs.verb not in ("get", "create", "update", "patch", "delete"):
                return False, "can only get, create, update, patch, or delete a node lease"
            if attrs.namespace != "kube-node-lease":
                return False, 'can only access leases in the "kube-node-lease" system namespace'
            if attrs.verb != "create" and attrs.name != node:
                return False, "can only access node lease with the same name as the requesting node"
            return True, ""
        return any(rule_allows(attrs, r) for r in NODE_RULES), ""

    def _graph(self, node: str, attrs: Attributes) -> tuple[bool, str]:
        if not attrs.name:
            return False, "No Object name found"
        if self._related(node, attrs.resource, attrs.namespace, attrs.name):
            return True, ""
        return False, f"no relationship found between node '{node}' and this object"


def _deny(group: str, plural: str, name: str, why: str) -> ApiError:
    return forbidden_because(group, plural, name, why)


def admit(
    who: Identity, op: str, group: str, plural: str, sub: str, old: Obj | None, new: Obj | None
) -> None:
    """NodeRestriction: raise 403 when a kubelet reaches beyond its own objects."""
    node = who.node_name
    if node is None:
        return
    obj = new if new is not None else old
    assert obj is not None
    name = obj["metadata"].get("name", "")
    if (group, plural) == ("", "nodes"):
        if name != node:
            raise _deny(
                group, plural, name, f'node "{node}" is not allowed to modify node "{name}"'
            )
        new_labels = (new or {}).get("metadata", {}).get("labels") or {}
        old_labels = (old or {}).get("metadata", {}).get("labels") or {}
        changed = {
            k for k in set(new_labels) | set(old_labels) if new_labels.get(k) != old_labels.get(k)
        }
        bad = _forbidden_labels(changed)
        if bad and op == "CREATE":
            why = f'node "{node}" is not allowed to set the following labels: {", ".join(bad)}'
            raise _deny(group, plural, name, why)
        if bad:
            why = f'node "{node}" is not allowed to modify labels: {", ".join(bad)}'
            raise _deny(group, plural, name, why)
        if op == "UPDATE" and (new or {}).get("spec", {}).get("taints") != (old or {}).get(
            "spec", {}
        ).get("taints"):
            raise _deny(group, plural, name, f'node "{node}" is not allowed to modify taints')
    elif (group, plural) == ("coordination.k8s.io", "leases") and op == "CREATE":
        if name != node:
            why = "can only access node lease with the same name as the requesting node"
            raise _deny(group, plural, name, why)
    elif (group, plural) == ("", "pods"):
        bound = (obj.get("spec") or {}).get("nodeName")
        if op == "CREATE" and not sub:
            mirror = "kubernetes.io/config.mirror" in (obj["metadata"].get("annotations") or {})
            if not mirror:
                why = (
                    'pod does not have "kubernetes.io/config.mirror" annotation, '
                    f'node "{node}" can only create mirror pods'
                )
                raise _deny(group, plural, name, why)
        what = {"status": "update pod status for pods", "eviction": "evict pods"}
        if (op == "DELETE" or sub in ("status", "eviction")) and bound != node:
            action = what.get(sub, "delete pods")
            why = f'node "{node}" can only {action} with spec.nodeName set to itself'
            raise _deny(group, plural, name, why)
