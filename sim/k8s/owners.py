"""Owner references and pod templates shared by the SIMULATED workload controllers.

`owner_ref` builds the controller reference a ReplicaSet/Deployment/DaemonSet puts on what it
creates; `owned_by` indexes the live objects of a kind by their controller's uid;
`template_hash` is the `pod-template-hash` / `controller-revision-hash` value (an FNV-32a hash
of the template, written with the apimachinery "safe" alphabet, like the real ones);
`pod_from_template` is what controllers POST. Used by `sim.k8s.replicasets`,
`sim.k8s.deployments`, `sim.k8s.daemonsets` and `sim.k8s.garbage`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from sim.k8s.pods import controller_of
from sim.k8s.store import GroupPlural, Obj, Store

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def owner_ref(owner: Obj, kind: str, api_version: str = "apps/v1") -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(store: Store, gp: GroupPlural, ns: str | None = None) -> dict[str, list[Obj]]:
    """Controller uid -> the objects of `gp` it controls."""
    out: dict[str, list[Obj]] = {}
    for entry in store.entries(gp, ns):
        ref = controller_of(entry.obj)
        if ref is not None:
            out.setdefault(str(ref.get("uid")), []).append(entry.obj)
    return out


def template_hash(template: Any, collisions: int = 0) -> str:
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    data += str(collisions).encode() if collisions else b""
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in str(value))


def pod_from_template(
    template: Obj, generate_name: str, owner: Obj, extra_labels: dict[str, str]
) -> Obj:
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": generate_name,
            "labels": {**(meta.get("labels") or {}), **extra_labels},
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": [owner],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)
