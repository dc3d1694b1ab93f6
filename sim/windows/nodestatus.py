"""How the SIMULATED kubelet tells the cluster it is alive: its node Lease and its node status.

- Lease (the kubelet's nodelease controller): `kube-node-lease/<node>` with `holderIdentity`
  the node name, `leaseDurationSeconds` (`nodeLeaseDurationSeconds`, 40), an ownerReference
  to the Node, and `renewTime` (MicroTime) renewed every quarter of the duration (10 s) with a
  PUT on the last version read; created when missing, read again after a conflict.
- Node status (`nodeStatusUpdateFrequency` 10 s, `nodeStatusReportFrequency` 5 min): every
  update period the kubelet reads its Node and PATCHes `nodes/<n>/status` when its conditions
  differ from what the Node shows (e.g. the node lifecycle controller wrote Unknown meanwhile)
  or when the report period passed since the last report; a change of the host's own
  readiness is posted at once.
- The three periods come from the KubeletConfiguration file (`--config`, C:\\k\\kubelet.conf,
  written by WMCB from the worker Ignition), as with the real kubelet (`Timings.read`).

Conditions: Ready (KubeletReady / KubeletNotReady), MemoryPressure, DiskPressure and
PIDPressure (False: sufficient memory, no disk pressure, sufficient PID), each with
  lastHeartbeatTime = the time of the post and lastTransitionTime kept until its status flips.

When the kubelet stops, nothing is posted: the node lifecycle controller of the cluster turns
the Node Unknown after its grace period (`sim.k8s.nodelifecycle`). Used by `kubelet.py`.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sim.windows.kubeapi import KubeClient, KubeUnreachable

LEASE_NAMESPACE = "kube-node-lease"
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float:
    """Seconds in a Go duration string ("10s", "5m0s", "750ms")."""
    parts = _GO_DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


@dataclass(frozen=True)
class Timings:
    lease_duration_seconds: int = 40
    status_update_seconds: float = 10.0
    status_report_seconds: float = 300.0

    @property
    def renew_seconds(self) -> float:
        return self.lease_duration_seconds / 4

    @classmethod
    def read(cls, path: Path) -> Timings:
        """From a KubeletConfiguration file; defaults for what is missing or unreadable."""
        try:
            doc = yaml.safe_load(path.read_text()) or {}
            return cls(
                int(doc.get("nodeLeaseDurationSeconds", 40)),
                go_duration(str(doc.get("nodeStatusUpdateFrequency", "10s"))),
                go_duration(str(doc.get("nodeStatusReportFrequency", "5m0s"))),
            )
        except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError):
            return cls()


_PRESSURE = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def _now(micro: bool = False) -> str:
    at = datetime.datetime.now(datetime.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def kubelet_conditions(
    ready: bool, message: str, shown: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """The conditions the kubelet posts, keeping transition times of unchanged ones."""
    stamp = _now()
    wanted = [(kind, "False", reason, text) for kind, reason, text in _PRESSURE] + [
        (
            "Ready",
            "True" if ready else "False",
            "KubeletReady" if ready else "KubeletNotReady",
            message,
        )
    ]
    out = []
    for kind, status, reason, text in wanted:
        old = next((c for c in shown if c.get("type") == kind), None)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else stamp
        out.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": text,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": since or stamp,
            }
        )
    return out


def _differs(posted: list[dict[str, str]], shown: list[dict[str, Any]]) -> bool:
    def key(conds: list[Any]) -> set[tuple[Any, ...]]:
        return {(c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in conds}

    return key(posted) != key([c for c in shown if c.get("type") in {p["type"] for p in posted}])


class NodeReporter:
    """Lease renewals and node status posts of one running kubelet; call `tick()` often."""

    def __init__(self, client: KubeClient, node: str, timings: Timings | None = None) -> None:
        self._client = client
        self._node = node
        self.timings = timings or Timings()
        self._lease: dict[str, Any] | None = None
        self._next_renew = 0.0
        self._next_status = 0.0
        self._last_report = float("-inf")
        self._last_state: tuple[bool, str] | None = None

    @property
    def _lease_path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{self._node}"

    async def tick(self, now: float, state: tuple[bool, str]) -> bool:
        """Renew the lease and post status when due; False if the Node is gone (404)."""
        try:
            if now >= self._next_renew and await self._renew():
                self._next_renew = now + self.timings.renew_seconds
            if state != self._last_state or now >= self._next_status:
                found = await self._post_status(now, state)
                if found is False:
                    return False
        except KubeUnreachable:
            pass
        return True

    async def _renew(self) -> bool:
        if self._lease is None:
            code, obj = await self._client.get(self._lease_path)
            if code == 200:
                self._lease = obj
            elif code == 404:
                return await self._create_lease()
            else:
                return False
        assert self._lease is not None
        lease = {**self._lease, "spec": {**self._lease.get("spec", {}), "renewTime": _now(True)}}
        code, obj = await self._client.request("PUT", self._lease_path, lease)
        if code == 200:
            self._lease = obj
            return True
        self._lease = None  # conflict or gone: read (or create) again next time
        return False

    async def _create_lease(self) -> bool:
        code, node = await self._client.get(f"/api/v1/nodes/{self._node}")
        owners = (
            [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": self._node,
                    "uid": node["metadata"]["uid"],
                }
            ]
            if code == 200
            else []
        )
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self._node,
                "namespace": LEASE_NAMESPACE,
                "ownerReferences": owners,
            },
            "spec": {
                "holderIdentity": self._node,
                "leaseDurationSeconds": self.timings.lease_duration_seconds,
                "renewTime": _now(True),
            },
        }
        code, obj = await self._client.post(
            f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases", body
        )
        if code == 201:
            self._lease = obj
            return True
        return False

    async def _post_status(self, now: float, state: tuple[bool, str]) -> bool | None:
        """True: posted or up to date; False: the Node does not exist; None: try again."""
        code, node = await self._client.get(f"/api/v1/nodes/{self._node}")
        if code == 404:
            return False
        if code != 200:
            return None
        shown = (node.get("status") or {}).get("conditions") or []
        conditions = kubelet_conditions(state[0], state[1], shown)
        due = now - self._last_report >= self.timings.status_report_seconds
        if _differs(conditions, shown) or due:
            code, _ = await self._client.patch(
                f"/api/v1/nodes/{self._node}/status", {"status": {"conditions": conditions}}
            )
            if code == 404:
                return False
            if code != 200:
                return None
            self._last_report = now
        self._last_state = state
        self._next_status = now + self.timings.status_update_seconds
        return True
