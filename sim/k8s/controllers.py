"""Stand-ins for the cluster's own controllers in the SIMULATED Kubernetes API server.

- OVN master: gives every Node labelled kubernetes.io/os=windows the annotation
  `k8s.ovn.org/hybrid-overlay-node-subnet` with a distinct /24 from 10.132.0.0/14, shortly after
  the Node appears (a Node that is re-created keeps its subnet).
- CSR signer: when a CSR carries an Approved condition (and no Denied one) and its signer is
  kubernetes.io/kube-apiserver-client-kubelet or kubernetes.io/kubelet-serving, it writes a
  certificate signed by the twin CA into status.certificate, or a Failed condition when the
  request does not fit the signer (`sim.k8s.signer`). Nothing approves CSRs.
- Disruption controller: keeps PodDisruptionBudget status current (`sim.k8s.disruption`).
- With `kube_controllers` (the default; off gives an API server alone, like envtest): the node
  lifecycle controller (`sim.k8s.nodelifecycle`), the scheduler (`sim.k8s.scheduler`), the pod
  side of every kubelet (`sim.k8s.kubelet_pods`), the Deployment, ReplicaSet and DaemonSet
  controllers and garbage collection (`sim.k8s.deployments`, `replicasets`, `daemonsets`,
  `garbage`), each a `ControlLoop` kicked by the store events it cares about.

All react to store events and act through `sim.k8s.api.Api` on the twin's event loop;
started and stopped by `sim.k8s.server.KubeTwin`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from sim.k8s import signer
from sim.k8s.api import Api
from sim.k8s.daemonsets import DaemonSetController
from sim.k8s.deployments import DeploymentController
from sim.k8s.disruption import PDBS, PODS, refresh_statuses
from sim.k8s.errors import ApiError
from sim.k8s.garbage import OwnerCascade, PodGC
from sim.k8s.kubelet_pods import PodKubelet
from sim.k8s.loop import ControlLoop
from sim.k8s.nodelifecycle import NodeLifecycle
from sim.k8s.replicasets import ReplicaSetController
from sim.k8s.scheduler import Scheduler
from sim.k8s.signer import SIGNERS
from sim.k8s.store import Event
from sim.pki import CertificateAuthority

log = logging.getLogger(__name__)

SUBNET_ANNOTATION = "k8s.ovn.org/hybrid-overlay-node-subnet"
_POOL = ipaddress.ip_network("10.132.0.0/14")


NODES = ("", "nodes")
DEPLOYMENTS = ("apps", "deployments")
REPLICASETS = ("apps", "replicasets")
DAEMONSETS = ("apps", "daemonsets")


@dataclass(frozen=True)
class ControllerSettings:
    """Timings of the simulated kube-controller-manager and kubelets (tests shorten them)."""

    kube_controllers: bool = True
    node_monitor_grace_seconds: float = 40.0
    node_monitor_period_seconds: float | None = None  # default: min(5 s, grace / 4)
    pod_start_seconds: float = 1.0
    pod_stop_seconds: float = 0.5


class Controllers:
    """Runs the OVN-subnet, CSR-signer and disruption reactions and the control loops."""

    def __init__(
        self,
        api: Api,
        ca: CertificateAuthority,
        ovn_delay: float = 0.05,
        settings: ControllerSettings | None = None,
    ) -> None:
        self._api = api
        self._ca = ca
        self._ovn_delay = ovn_delay
        self._subnets: dict[str, str] = {}
        self._subnet_iter = _POOL.subnets(new_prefix=24)
        self._tasks: set[asyncio.Task[None]] = set()
        self._pdb_pending: set[str] = set()
        self.settings = settings = settings or ControllerSettings()
        grace = settings.node_monitor_grace_seconds
        period = settings.node_monitor_period_seconds or min(5.0, grace / 4)
        self.node_lifecycle = NodeLifecycle(api, grace, period)
        self.pod_kubelet = PodKubelet(api, settings.pod_start_seconds, settings.pod_stop_seconds)
        loops = {
            "node-lifecycle": (self.node_lifecycle.step, period, {NODES}),
            "scheduler": (Scheduler(api).step, None, {NODES, PODS}),
            "kubelet-pods": (self.pod_kubelet.step, None, {NODES, PODS}),
            "replicaset": (ReplicaSetController(api).step, None, {PODS, REPLICASETS}),
            "deployment": (DeploymentController(api).step, None, {DEPLOYMENTS, REPLICASETS}),
            "daemonset": (DaemonSetController(api).step, None, {DAEMONSETS, NODES, PODS}),
            "garbage-collector": (OwnerCascade(api).step, None, set()),
            "pod-gc": (PodGC(api, quarantine=grace).step, period, {NODES}),
        }
        self._loops: list[ControlLoop] = []
        self._kicks: dict[tuple[str, str], list[ControlLoop]] = {}
        self._gc: ControlLoop | None = None
        if settings.kube_controllers:
            for name, (step, every, kinds) in loops.items():
                loop = ControlLoop(name, step, every)
                self._loops.append(loop)
                for gp in kinds:
                    self._kicks.setdefault(gp, []).append(loop)
                if name == "garbage-collector":
                    self._gc = loop

    def start(self) -> None:
        self._api.store.subscribe(self._on_event)
        for loop in self._loops:
            loop.start()

    async def stop(self) -> None:
        self._api.store.unsubscribe(self._on_event)
        for loop in self._loops:
            await loop.stop()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_event(self, event: Event) -> None:
        for loop in self._kicks.get(event.gp, ()):
            loop.kick()
        if (
            self._gc is not None
            and event.type == "DELETED"
            and event.gp
            in (
                DEPLOYMENTS,
                REPLICASETS,
                DAEMONSETS,
            )
        ):
            self._gc.kick()
        if event.gp in (PODS, PDBS):
            ns = event.obj["metadata"].get("namespace", "")
            if ns not in self._pdb_pending and self._api.store.entries(PDBS, ns):
                self._pdb_pending.add(ns)
                self._spawn(self._refresh_budgets(ns))
        if event.type == "DELETED":
            return
        if event.gp == ("", "nodes"):
            meta = event.obj["metadata"]
            if (
                (meta.get("labels") or {}).get("kubernetes.io/os") == "windows"
                and SUBNET_ANNOTATION not in (meta.get("annotations") or {})
                and not meta.get("deletionTimestamp")
            ):
                self._spawn(self._assign_subnet(meta["name"]))
        elif event.gp == ("certificates.k8s.io", "certificatesigningrequests"):
            status = event.obj.get("status") or {}
            types = {
                c.get("type")
                for c in status.get("conditions") or []
                if c.get("status", "True") == "True"
            }
            if (
                "Approved" in types
                and not types & {"Denied", "Failed"}
                and not status.get("certificate")
                and (event.obj.get("spec") or {}).get("signerName") in SIGNERS
            ):
                self._spawn(self._sign(event.obj["metadata"]["name"]))

    # -- disruption controller -----------------------------------------------------------
    async def _refresh_budgets(self, ns: str) -> None:
        self._pdb_pending.discard(ns)
        refresh_statuses(self._api, ns)

    # -- OVN master ------------------------------------------------------------------------
    def subnet_for(self, node: str) -> str:
        if node not in self._subnets:
            self._subnets[node] = str(next(self._subnet_iter))
        return self._subnets[node]

    async def _assign_subnet(self, node: str) -> None:
        await asyncio.sleep(self._ovn_delay)
        rt = self._api.registry.get("", "v1", "nodes")
        assert rt is not None
        entry = self._api.store.entry(("", "nodes"), "", node)
        if entry is None or SUBNET_ANNOTATION in (entry.obj["metadata"].get("annotations") or {}):
            return
        patch = {"metadata": {"annotations": {SUBNET_ANNOTATION: self.subnet_for(node)}}}
        try:
            self._api.patch(rt, "", node, "application/merge-patch+json", patch)
        except ApiError as exc:  # the node went away meanwhile
            log.debug("OVN subnet for %s not set: %s", node, exc.message)

    # -- CSR signer ------------------------------------------------------------------------
    async def _sign(self, name: str) -> None:
        signer.sign(self._api, self._ca, name)
