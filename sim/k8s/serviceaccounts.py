"""The ServiceAccount controller of the SIMULATED cluster (stand-in for kube-controller-manager's).

Every namespace gets a `default` ServiceAccount shortly after it appears (and again if it is
deleted), as in a real cluster, so `kubectl create token default -n <ns>` works everywhere.
Reacts to store events on the twin's event loop; started and stopped by `sim.k8s.server.KubeTwin`.
"""

from __future__ import annotations

import asyncio

from sim.k8s.api import Api
from sim.k8s.auth import INTERNAL
from sim.k8s.errors import ApiError
from sim.k8s.store import Event

NAMESPACES = ("", "namespaces")
SERVICE_ACCOUNTS = ("", "serviceaccounts")
MANAGER = "kube-controller-manager"


class ServiceAccountController:
    """Keeps a `default` ServiceAccount in every active namespace."""

    def __init__(self, api: Api) -> None:
        self._api = api

    def start(self) -> None:
        self._api.store.subscribe(self._on_event)
        for entry in self._api.store.entries(NAMESPACES):
            self.ensure_default(entry.obj["metadata"]["name"])

    def stop(self) -> None:
        self._api.store.unsubscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        meta = event.obj["metadata"]
        if event.gp == NAMESPACES and event.type == "ADDED":
            ns = meta["name"]
        elif event.gp == SERVICE_ACCOUNTS and event.type == "DELETED" and meta["name"] == "default":
            ns = meta.get("namespace", "")
        else:
            return
        asyncio.get_running_loop().call_soon(self.ensure_default, ns)

    def ensure_default(self, ns: str) -> None:
        store, rt = self._api.store, self._api.registry.get("", "v1", "serviceaccounts")
        assert rt is not None
        namespace = store.entry(NAMESPACES, "", ns)
        if namespace is None or namespace.obj["metadata"].get("deletionTimestamp"):
            return
        if store.entry(SERVICE_ACCOUNTS, ns, "default") is None:
            try:
                self._api.create(
                    rt, ns, {"metadata": {"name": "default"}}, INTERNAL, manager=MANAGER
                )
            except ApiError:  # the namespace went away meanwhile
                return
