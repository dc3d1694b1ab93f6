"""The Deployment controller of kube-controller-manager, SIMULATED.

For every apps/v1 Deployment: the ReplicaSet whose template equals the Deployment's (ignoring
`pod-template-hash`) is the new one; if none exists it is created as `<deploy>-<hash>` (hash of
the template, label and selector `pod-template-hash`, controller ownerReference kind
Deployment, annotations `deployment.kubernetes.io/revision` (one more than any old set),
`desired-replicas`, `max-replicas`). Then, unless `spec.paused`:
- RollingUpdate (default; maxSurge 25% rounded up, maxUnavailable 25% rounded down, 1 if both
  are 0): scale the new set up while all sets together stay within replicas + maxSurge; scale
  old sets down (unhealthy replicas first, then available ones, oldest set first) only as far as
  keeps replicas - maxUnavailable pods available;
- Recreate: old sets to 0, and the new one up once no old pod is left.
Old sets with no replicas beyond `revisionHistoryLimit` (10) are deleted. Status: `replicas`,
`updatedReplicas`, `readyReplicas`, `availableReplicas`, `unavailableReplicas`,
`observedGeneration`, conditions Available (MinimumReplicasAvailable/Unavailable) and
Progressing (NewReplicaSetCreated, ReplicaSetUpdated, NewReplicaSetAvailable), enough for
`kubectl rollout status`. Not modelled: proportional scaling of several live sets during a
rollout, progressDeadlineSeconds, rollback through the API, collision counts.

Runs as a `ControlLoop` from `sim.k8s.controllers`.
"""

from __future__ import annotations

import copy
from typing import Any

from sim.k8s.api import Api
from sim.k8s.auth import INTERNAL
from sim.k8s.errors import ApiError
from sim.k8s.owners import owned_by, owner_ref, replicas, template_hash
from sim.k8s.pods import is_active, now_iso
from sim.k8s.store import Obj

DEPLOYMENTS = ("apps", "deployments")
RSS = ("apps", "replicasets")
PODS = ("", "pods")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"


def _resolve(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total
        return -(-scaled // 100) if round_up else scaled // 100
    return int(value)


def surge_and_unavailable(deploy: Obj) -> tuple[int, int]:
    rolling = ((deploy.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    want = replicas(deploy)
    surge = _resolve(rolling.get("maxSurge", "25%"), want, round_up=True)
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), want, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _without_hash(template: Obj) -> Obj:
    out = copy.deepcopy(template)
    labels = (out.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return out


def revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, 0))
    except ValueError:
        return 0


def _available(rs: Obj) -> int:
    """Available pods of a set, never more than its (possibly just lowered) spec."""
    return min(int((rs.get("status") or {}).get("availableReplicas") or 0), replicas(rs))


class DeploymentController:
    def __init__(self, api: Api) -> None:
        self._api = api
        self._rs_rt = api.registry.get("apps", "v1", "replicasets")
        self._deploy_rt = api.registry.get("apps", "v1", "deployments")

    def step(self) -> float | None:
        sets = owned_by(self._api.store, RSS)
        pods = owned_by(self._api.store, PODS)
        for entry in self._api.store.entries(DEPLOYMENTS):
            deploy = entry.obj
            if deploy["metadata"].get("deletionTimestamp"):
                continue
            owned = sets.get(deploy["metadata"]["uid"], [])
            self._sync(deploy, owned, pods)
        return None

    # -- one deployment -------------------------------------------------------------------
    def _sync(self, deploy: Obj, owned: list[Obj], pods: dict[str, list[Obj]]) -> None:
        template = (deploy.get("spec") or {}).get("template") or {}
        new = next((rs for rs in owned if _without_hash(rs["spec"]["template"]) == template), None)
        old = sorted((rs for rs in owned if rs is not new), key=revision)
        created = False
        if new is None:
            new = self._create_new(deploy, old)
            created = new is not None
        if new is None:
            return
        next_revision = max((revision(rs) for rs in old), default=0) + 1
        if revision(new) < next_revision:
            new = self._scale(new, replicas(new), {REVISION: str(next_revision)})
        if not (deploy.get("spec") or {}).get("paused"):
            strategy = ((deploy.get("spec") or {}).get("strategy") or {}).get("type")
            if strategy == "Recreate":
                new = self._recreate(deploy, new, old, pods)
            else:
                new = self._rolling(deploy, new, old)
            self._clean_up(deploy, old)
        self._write(deploy, new, [rs for rs in owned if rs is not new], created)

    def _create_new(self, deploy: Obj, old: list[Obj]) -> Obj | None:
        meta, spec = deploy["metadata"], deploy.get("spec") or {}
        hashed = template_hash(spec.get("template") or {})
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hashed
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = hashed
        want = replicas(deploy)
        surge, _ = surge_and_unavailable(deploy)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            start = 0 if any(replicas(rs) for rs in old) else want
        else:
            start = max(0, min(want, want + surge - sum(replicas(rs) for rs in old)))
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{hashed}",
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    REVISION: str(max((revision(rs) for rs in old), default=0) + 1),
                    DESIRED: str(want),
                    MAX_REPLICAS: str(want + surge),
                },
                "ownerReferences": [owner_ref(deploy, "Deployment")],
            },
            "spec": {
                "replicas": start,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        assert self._rs_rt is not None
        try:
            return self._api.create(self._rs_rt, meta["namespace"], body, INTERNAL)
        except ApiError:
            return None

    def _scale(self, rs: Obj, count: int, annotations: dict[str, str] | None = None) -> Obj:
        out = copy.deepcopy(rs)
        out["spec"]["replicas"] = max(0, count)
        if annotations:
            out["metadata"].setdefault("annotations", {}).update(annotations)
        if out == rs:
            return rs
        assert self._rs_rt is not None
        meta = rs["metadata"]
        return self._api.update(self._rs_rt, meta["namespace"], meta["name"], out)

    def _rolling(self, deploy: Obj, new: Obj, old: list[Obj]) -> Obj:
        want = replicas(deploy)
        surge, unavailable = surge_and_unavailable(deploy)
        total = replicas(new) + sum(replicas(rs) for rs in old)
        if replicas(new) > want:
            new = self._scale(new, want)
        elif not any(replicas(rs) for rs in old):
            new = self._scale(new, want)  # nothing old left: plain scaling
        elif replicas(new) < want and want + surge - total > 0:
            new = self._scale(new, min(want, replicas(new) + want + surge - total))
        live_old = [rs for rs in old if replicas(rs) > 0]
        if not live_old:
            return new
        min_available = want - unavailable
        total = replicas(new) + sum(replicas(rs) for rs in old)
        cleanup = total - min_available - (replicas(new) - _available(new))
        for i, rs in enumerate(old):
            unhealthy = replicas(rs) - _available(rs)
            if cleanup <= 0 or unhealthy <= 0:
                continue
            cut = min(unhealthy, cleanup)
            old[i] = self._scale(rs, replicas(rs) - cut)
            cleanup -= cut
        budget = _available(new) + sum(_available(rs) for rs in old) - min_available
        for i, rs in enumerate(old):
            if budget <= 0:
                break
            cut = min(replicas(rs), budget)
            if cut > 0:
                old[i] = self._scale(rs, replicas(rs) - cut)
                budget -= cut
        return new

    def _recreate(self, deploy: Obj, new: Obj, old: list[Obj], pods: dict[str, list[Obj]]) -> Obj:
        for i, rs in enumerate(old):
            old[i] = self._scale(rs, 0)
        if any(is_active(p) for rs in old for p in pods.get(rs["metadata"]["uid"], [])):
            return new
        return self._scale(new, replicas(deploy))

    def _clean_up(self, deploy: Obj, old: list[Obj]) -> None:
        limit = (deploy.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        idle = [
            rs for rs in old if replicas(rs) == 0 and not (rs.get("status") or {}).get("replicas")
        ]
        assert self._rs_rt is not None
        for rs in idle[: max(0, len(idle) - limit)]:
            try:
                self._api.delete(self._rs_rt, rs["metadata"]["namespace"], rs["metadata"]["name"])
            except ApiError:
                pass

    # -- status ---------------------------------------------------------------------------
    def _write(self, deploy: Obj, new: Obj, old: list[Obj], created: bool) -> None:
        entry = self._api.store.entry(
            DEPLOYMENTS, deploy["metadata"]["namespace"], deploy["metadata"]["name"]
        )
        if entry is None:
            return
        deploy = entry.obj
        new_rev = str(revision(new))
        if (deploy["metadata"].get("annotations") or {}).get(REVISION) != new_rev:
            out = copy.deepcopy(deploy)
            out["metadata"].setdefault("annotations", {})[REVISION] = new_rev
            assert self._deploy_rt is not None
            deploy = self._api.update(
                self._deploy_rt, deploy["metadata"]["namespace"], deploy["metadata"]["name"], out
            )
        sets = [new, *old]
        want = replicas(deploy)
        _, unavailable = surge_and_unavailable(deploy)

        def total(key: str) -> int:
            return sum(int((rs.get("status") or {}).get(key) or 0) for rs in sets)

        available = total("availableReplicas")
        status: Obj = {
            "observedGeneration": deploy["metadata"].get("generation", 1),
            "replicas": total("replicas"),
            "updatedReplicas": int((new.get("status") or {}).get("replicas") or 0),
            "readyReplicas": total("readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": max(0, sum(replicas(rs) for rs in sets) - available),
        }
        name = new["metadata"]["name"]
        complete = (
            status["updatedReplicas"] == want and status["replicas"] == want and available >= want
        )
        if created:
            progressing = ("NewReplicaSetCreated", f'Created new replica set "{name}"')
        elif complete:
            progressing = (
                "NewReplicaSetAvailable",
                f'ReplicaSet "{name}" has successfully progressed.',
            )
        else:
            progressing = ("ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.')
        if available >= want - unavailable:
            avail = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            avail = (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        current = deploy.get("status") or {}
        conditions = _conditions(
            current.get("conditions") or [],
            [("Available", *avail), ("Progressing", "True", *progressing)],
        )
        status["conditions"] = conditions
        if any(current.get(k) != v for k, v in status.items()):
            assert self._deploy_rt is not None
            meta = deploy["metadata"]
            self._api.update(
                self._deploy_rt,
                meta["namespace"],
                meta["name"],
                {**deploy, "status": {**current, **status}},
                "status",
            )


def _conditions(current: list[Obj], wanted: list[tuple[str, str, str, str]]) -> list[Obj]:
    out = []
    stamp = now_iso()
    for kind, status, reason, message in wanted:
        old = next((c for c in current if c.get("type") == kind), None)
        if old and (old.get("status"), old.get("reason"), old.get("message")) == (
            status,
            reason,
            message,
        ):
            out.append(old)
            continue
        changed = old is None or old.get("status") != status
        out.append(
            {
                "type": kind,
                "status": status,
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp if changed else old.get("lastTransitionTime", stamp),
                "reason": reason,
                "message": message,
            }
        )
    return out
