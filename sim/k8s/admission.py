"""Admission plugins of the SIMULATED kube-apiserver that change Nodes on create.

TaintNodesByCondition (enabled by default in kube-apiserver): a new Node gets the taint
`node.kubernetes.io/not-ready:NoSchedule`, so nothing is scheduled onto it before the node
lifecycle controller has seen its real conditions (`sim.k8s.nodelifecycle` removes the taint
once the Node is Ready). The pod-side plugins (DefaultTolerationSeconds) are in `sim.k8s.pods`.
Called by `sim.k8s.api` on create.
"""

from __future__ import annotations

from sim.k8s.pods import NOT_READY
from sim.k8s.store import Obj


def taint_new_node(node: Obj) -> None:
    spec = node.setdefault("spec", {})
    taints = spec.get("taints") or []
    if not any(t.get("key") == NOT_READY and t.get("effect") == "NoSchedule" for t in taints):
        taints.append({"key": NOT_READY, "effect": "NoSchedule"})
    spec["taints"] = taints
