"""The worker's pool watcher: WindowsMachinePool changes reach their `WindowsPool` workflow.

Lists and then watches the WindowsMachinePools in winfleet's namespace (the `kubernetes`
client's watch, resumed from the last resourceVersion, bookmarks on, a relist after 410 Gone or
a dropped connection) and, for every pool it sees and every change of its spec (a new
`metadata.generation`) or its deletion, signals-with-start the pool's workflow (`pool-<name>`,
signal `spec_changed`). Status-only updates (the workflows' own writes) are not passed on.
The signal carries only the pool's name and generation: the workflow reads the pool itself, so
what it acts on is in its history. Several workers may watch at once: a repeated signal is
harmless. Started by `winfleet worker` next to the Temporal worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from activities import kube
from activities.config import settings
from activities.pool_contracts import POOL_GROUP, POOL_PLURAL, POOL_VERSION, PoolRun, PoolSignal
from workflows import ids

log = logging.getLogger(__name__)

WATCH_SECONDS = 60  # each watch call ends after this (the server may end it sooner); resumed
RETRY_SECONDS = 2.0
NOTIFY_ATTEMPTS = 5


class PoolWatcher:
    """One list+watch loop in a thread; signals go out on the worker's event loop."""

    def __init__(self, temporal: Client, task_queue: str) -> None:
        self._temporal = temporal
        self._task_queue = task_queue
        self._seen: dict[str, int] = {}  # pool name -> last generation passed on
        self._stop = threading.Event()

    async def run(self) -> None:
        """Watch until cancelled."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, int, bool]] = asyncio.Queue()

        def emit(name: str, generation: int, deleted: bool) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (name, generation, deleted))

        thread = threading.Thread(
            target=self._watch, args=(emit,), name="pool-watcher", daemon=True
        )
        thread.start()
        try:
            while True:
                name, generation, deleted = await queue.get()
                await self._notify(name, generation, deleted)
        finally:
            self._stop.set()

    async def _notify(self, name: str, generation: int, deleted: bool) -> None:
        signal = PoolSignal(generation=generation, deleted=deleted)
        for attempt in range(NOTIFY_ATTEMPTS):
            try:
                await self._temporal.start_workflow(
                    "WindowsPool",
                    PoolRun(pool=name),
                    id=ids.pool(name),
                    task_queue=self._task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    start_signal="spec_changed",
                    start_signal_args=[signal],
                )
                log.info(
                    "pool %s: generation %d%s passed on", name, generation, " (deleted)" * deleted
                )
                return
            except RPCError as exc:
                log.warning("pool %s: signal refused (%s); retrying", name, exc.message)
                await asyncio.sleep(RETRY_SECONDS * (attempt + 1))
        log.error("pool %s: could not signal its workflow; the next change or restart will", name)

    # --- the blocking side (a thread) ------------------------------------------------------------
    def _watch(self, emit: Callable[[str, int, bool], None]) -> None:
        api = client.CustomObjectsApi(kube.api_client())
        ns = settings().namespace
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist(api, ns, emit)
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    api.list_namespaced_custom_object,
                    POOL_GROUP,
                    POOL_VERSION,
                    ns,
                    POOL_PLURAL,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_SECONDS,
                )
                for event in stream:
                    obj = event["object"]
                    meta = obj.get("metadata") or {}
                    version = meta.get("resourceVersion") or version
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "ERROR":
                        version = ""  # 410 Gone and friends: list again
                        break
                    self._consider(obj, event["type"] == "DELETED", emit)
            except ApiException as exc:
                if exc.status == 410:
                    version = ""
                    continue
                log.warning("pool watch: API server answered %s; retrying", exc.status)
                self._stop.wait(RETRY_SECONDS)
            except Exception as exc:
                log.warning("pool watch interrupted (%s); resuming", type(exc).__name__)
                self._stop.wait(RETRY_SECONDS)

    def _relist(self, api: Any, ns: str, emit: Callable[[str, int, bool], None]) -> str:
        listing = api.list_namespaced_custom_object(POOL_GROUP, POOL_VERSION, ns, POOL_PLURAL)
        names = set()
        for obj in listing.get("items") or ():
            names.add(obj["metadata"]["name"])
            self._consider(obj, False, emit)
        for gone in set(self._seen) - names:  # deleted while we were not watching
            emit(gone, self._seen.pop(gone), True)
        return str((listing.get("metadata") or {}).get("resourceVersion", ""))

    def _consider(
        self, obj: dict[str, Any], deleted: bool, emit: Callable[[str, int, bool], None]
    ) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        generation = int(meta.get("generation") or 0)
        deleting = deleted or bool(meta.get("deletionTimestamp"))
        key = -generation if deleting else generation  # a deletion is a change of its own
        if not name or self._seen.get(name) == key:
            return
        self._seen[name] = key
        if deleted:
            self._seen.pop(name, None)
        emit(name, generation, deleting)
