"""The pod side of every node's kubelet, SIMULATED inside the API twin (one loop for all nodes).

What a kubelet does with the pods bound to its node, without containers:
- A pod bound to a node whose Ready condition is True starts `start_seconds` after the loop
  first sees it bound: phase Running, conditions Initialized / Ready / ContainersReady /
  PodScheduled True, `hostIP`, a `podIP` from the node's pod subnet (the hybrid-overlay subnet
  annotation of a Windows node, `spec.podCIDR`, else a /24 of 10.128.0.0/14 per node),
  `startTime` and a running `containerStatuses` entry per container.
- A terminating pod (deletionTimestamp set) whose node's kubelet is alive (Ready True or
  False, i.e. still posting status) is removed `stop_seconds` later (or at the end of its
  grace period if shorter) with a DELETE of grace 0 and a uid precondition, as the kubelet's
  status manager does once the containers stopped. On a node whose status is Unknown (kubelet
  gone) or that does not exist, nothing happens: the pod stays Terminating.
- A Running pod that the node lifecycle controller marked not Ready while its node was away is
  Ready again once the node is Ready (the kubelet's status sync).

Why here and not in each simulated Windows host: pods have no behaviour of their own in the
twin, the kubelet's liveness is already visible as the Node's Ready condition and Lease, and
one loop over the store starts 1,000 pods in well under a second where 200 per-host watches
would cost 200 HTTP streams; Linux workers (plain Node objects) run pods the same way.

Runs as a `ControlLoop` from `sim.k8s.controllers`.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import time
from collections.abc import Callable

from sim.k8s.api import Api
from sim.k8s.errors import ApiError
from sim.k8s.nodelifecycle import internal_ip, ready_status
from sim.k8s.pods import now_iso, set_condition
from sim.k8s.store import Obj

NODES = ("", "nodes")
PODS = ("", "pods")
SUBNET_ANNOTATION = "k8s.ovn.org/hybrid-overlay-node-subnet"
_FALLBACK_POOL = ipaddress.ip_network("10.128.0.0/14")
_FIRST_HOST = 3  # .1 is the gateway, .2 the node's own overlay endpoint


def _node_subnet(node: Obj) -> ipaddress.IPv4Network:
    annotated = (node["metadata"].get("annotations") or {}).get(SUBNET_ANNOTATION)
    cidr = annotated or (node.get("spec") or {}).get("podCIDR")
    if cidr:
        try:
            return ipaddress.IPv4Network(cidr, strict=False)
        except ValueError:
            pass
    index = int(hashlib.sha256(node["metadata"]["name"].encode()).hexdigest(), 16) % 1024
    return ipaddress.IPv4Network((int(_FALLBACK_POOL.network_address) + index * 256, 24))


def running_status(pod: Obj, node: Obj, pod_ip: str) -> Obj:
    """The status a kubelet reports once all containers of `pod` run."""
    status = copy.deepcopy(pod.get("status") or {})
    started = now_iso()
    for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled"):
        set_condition(status, kind, "True")
    host_ip = internal_ip(node) or ""
    status.update(
        phase="Running",
        hostIP=host_ip,
        hostIPs=[{"ip": host_ip}] if host_ip else [],
        podIP=pod_ip,
        podIPs=[{"ip": pod_ip}],
        startTime=started,
        qosClass="BestEffort",
        containerStatuses=[
            {
                "name": c.get("name", ""),
                "image": c.get("image", ""),
                "imageID": f"{c.get('image', '')}@sha256:{'0' * 64}",
                "containerID": "containerd://"
                + hashlib.sha256(f"{pod['metadata']['uid']}/{c.get('name')}".encode()).hexdigest(),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
                "lastState": {},
            }
            for c in (pod.get("spec") or {}).get("containers") or []
        ],
    )
    return status


class PodKubelet:
    def __init__(
        self,
        api: Api,
        start_seconds: float = 1.0,
        stop_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self.start_seconds = start_seconds
        self.stop_seconds = stop_seconds
        self._clock = clock
        self._seen: dict[tuple[str, str], float] = {}  # (uid, what) -> first seen
        self._pods_rt = api.registry.get("", "v1", "pods")

    def _due(self, key: tuple[str, str], delay: float, now: float) -> float:
        """Seconds until `key` is due (<= 0: now)."""
        first = self._seen.setdefault(key, now)
        return first + delay - now

    def step(self) -> float | None:
        now = self._clock()
        store = self._api.store
        nodes = {e.obj["metadata"]["name"]: e.obj for e in store.entries(NODES)}
        pods = [e.obj for e in store.entries(PODS)]
        used: dict[str, set[str]] = {}
        for pod in pods:
            ip = (pod.get("status") or {}).get("podIP")
            node_name = (pod.get("spec") or {}).get("nodeName")
            if ip and node_name:
                used.setdefault(node_name, set()).add(ip)
        wait: float | None = None
        live: set[tuple[str, str]] = set()
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            node = nodes.get(node_name or "")
            if node is None:
                continue
            ready = ready_status(node)
            uid = pod["metadata"]["uid"]
            if pod["metadata"].get("deletionTimestamp"):
                if ready not in ("True", "False"):
                    continue
                key = (uid, "stop")
                live.add(key)
                grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
                left = self._due(key, min(self.stop_seconds, grace), now)
                if left > 0:
                    wait = left if wait is None else min(wait, left)
                else:
                    self._remove(pod)
                continue
            if ready != "True":
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Pending":
                key = (uid, "start")
                live.add(key)
                left = self._due(key, self.start_seconds, now)
                if left > 0:
                    wait = left if wait is None else min(wait, left)
                else:
                    self._start(pod, node, used.setdefault(node["metadata"]["name"], set()))
            elif phase == "Running" and _marked_not_ready(pod):
                self._ready_again(pod)
        for key in set(self._seen) - live:
            del self._seen[key]
        return wait

    def _write_status(self, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        assert self._pods_rt is not None
        try:
            self._api.update(
                self._pods_rt, meta["namespace"], meta["name"], {**pod, "status": status}, "status"
            )
        except ApiError:
            pass  # deleted meanwhile

    def _start(self, pod: Obj, node: Obj, used: set[str]) -> None:
        subnet = _node_subnet(node)
        for offset in range(_FIRST_HOST, subnet.num_addresses - 1):
            candidate = str(subnet.network_address + offset)
            if candidate not in used:
                break
        else:
            return  # no address left: the pod stays Pending, as with an exhausted IPAM
        used.add(candidate)
        self._write_status(pod, running_status(pod, node, candidate))

    def _ready_again(self, pod: Obj) -> None:
        status = copy.deepcopy(pod.get("status") or {})
        set_condition(status, "Ready", "True")
        self._write_status(pod, status)

    def _remove(self, pod: Obj) -> None:
        meta = pod["metadata"]
        assert self._pods_rt is not None
        try:
            self._api.delete(
                self._pods_rt,
                meta["namespace"],
                meta["name"],
                {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )
        except ApiError:
            pass  # already gone


def _marked_not_ready(pod: Obj) -> bool:
    conditions = {c.get("type"): c.get("status") for c in pod["status"].get("conditions") or []}
    return conditions.get("Ready") == "False" and conditions.get("ContainersReady") == "True"
