"""Stand-ins for the cluster's own controllers in the SIMULATED Kubernetes API server.

- OVN master: gives every Node labelled kubernetes.io/os=windows the annotation
  `k8s.ovn.org/hybrid-overlay-node-subnet` with a distinct /24 from 10.132.0.0/14, shortly after
  the Node appears (a Node that is re-created keeps its subnet).
- CSR signer: when a CSR carries an Approved condition (and no Denied one) and its signer is
  kubernetes.io/kube-apiserver-client-kubelet or kubernetes.io/kubelet-serving, it writes a
  certificate signed by the twin CA into status.certificate, or a Failed condition when the
  request does not fit the signer (`sim.k8s.signer`). Nothing approves CSRs.
- Disruption controller: keeps PodDisruptionBudget status current (`sim.k8s.disruption`).

All react to store events and act through `sim.k8s.api.Api` on the twin's event loop;
started and stopped by `sim.k8s.server.KubeTwin`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Coroutine
from typing import Any

from sim.k8s import signer
from sim.k8s.api import Api
from sim.k8s.disruption import PDBS, PODS, refresh_statuses
from sim.k8s.errors import ApiError
from sim.k8s.signer import SIGNERS
from sim.k8s.store import Event
from sim.pki import CertificateAuthority

log = logging.getLogger(__name__)

SUBNET_ANNOTATION = "k8s.ovn.org/hybrid-overlay-node-subnet"
_POOL = ipaddress.ip_network("10.132.0.0/14")


class Controllers:
    """Runs the OVN-subnet and CSR-signer reactions to store events."""

    def __init__(self, api: Api, ca: CertificateAuthority, ovn_delay: float = 0.05) -> None:
        self._api = api
        self._ca = ca
        self._ovn_delay = ovn_delay
        self._subnets: dict[str, str] = {}
        self._subnet_iter = _POOL.subnets(new_prefix=24)
        self._tasks: set[asyncio.Task[None]] = set()
        self._pdb_pending: set[str] = set()

    def start(self) -> None:
        self._api.store.subscribe(self._on_event)

    async def stop(self) -> None:
        self._api.store.unsubscribe(self._on_event)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_event(self, event: Event) -> None:
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
