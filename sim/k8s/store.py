"""In-memory object storage for the SIMULATED Kubernetes API server.

Holds every object by (group, plural) and (namespace, name), stamps resourceVersions from one
global monotonic counter, caches each object's serialized JSON (so listing 1,000 Nodes is a byte
join, not 1,000 `json.dumps`), and keeps a bounded window of change events for watches; a watch
asking for a version older than the window gets 410 Gone, as from a compacted etcd.

Mutations happen on the twin's event loop (`sim.k8s.api`); the read methods (`get`, `list`) are
thread-safe and return copies, for tests that assert on state directly (`KubeTwin.store`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
GroupPlural = tuple[str, str]
NsName = tuple[str, str]


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class Entry:
    obj: Obj
    raw: bytes
    rv: int


@dataclass
class Event:
    rv: int
    gp: GroupPlural
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None
    raw: bytes  # the serialized object

    def line(self, type_: str | None = None) -> bytes:
        return b'{"type":"' + (type_ or self.type).encode() + b'","object":' + self.raw + b"}\n"


Listener = Callable[[Event], None]


class Store:
    """Objects, the resourceVersion counter, the event window and the listeners."""

    def __init__(self, event_window: int = 10_000) -> None:
        self._lock = threading.RLock()
        self._data: dict[GroupPlural, dict[NsName, Entry]] = {}
        self._rv = 0
        self._events: deque[Event] = deque(maxlen=event_window)
        self._compacted_rv = 0  # events with rv <= this may have been dropped
        self._listeners: list[Listener] = []
        # `?dryRun=All`: every write runs (admission, validation) and nothing is kept
        self.dry_run = False

    # -- versions --------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_rv(self) -> int:
        return self._compacted_rv

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    # -- listeners (watches and controllers; called on the event loop) ----------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: Event) -> None:
        if len(self._events) == self._events.maxlen:
            self._compacted_rv = self._events[0].rv
        self._events.append(event)
        for listener in list(self._listeners):
            listener(event)

    def events_since(self, rv: int, gp: GroupPlural) -> list[Event]:
        with self._lock:
            return [e for e in self._events if e.rv > rv and e.gp == gp]

    # -- writes (event loop only) ----------------------------------------------------------
    @contextlib.contextmanager
    def dry_running(self) -> Iterator[None]:
        """Writes inside answer as if made and change nothing (kube-apiserver `dryRun=All`)."""
        self.dry_run = True
        try:
            yield
        finally:
            self.dry_run = False

    def put(self, gp: GroupPlural, obj: Obj, event_type: str, old: Obj | None = None) -> Obj:
        """Store `obj` with a fresh resourceVersion and emit ADDED or MODIFIED."""
        if self.dry_run:
            if old is None:  # a dry-run create answers without a resourceVersion
                obj["metadata"].pop("resourceVersion", None)
            return obj
        with self._lock:
            rv = self._next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            raw = dumps(obj)
            key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            self._data.setdefault(gp, {})[key] = Entry(obj, raw, rv)
            self._emit(Event(rv, gp, event_type, obj, old, raw))
            return obj

    def rewrite(self, gp: GroupPlural, obj: Obj) -> None:
        """Replace a stored object's content, keeping its resourceVersion and emitting nothing.

        What readers see when the decoding changes under stored data (a CRD's new schema
        prunes and defaults objects read from etcd without writing them).
        """
        if self.dry_run:
            return
        with self._lock:
            key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            entry = self._data.get(gp, {}).get(key)
            if entry is not None:
                obj["metadata"]["resourceVersion"] = str(entry.rv)
                entry.obj, entry.raw = obj, dumps(obj)

    def remove(self, gp: GroupPlural, ns: str, name: str) -> Obj | None:
        """Delete an object and emit DELETED (carrying a new resourceVersion)."""
        if self.dry_run:
            entry = self._data.get(gp, {}).get((ns, name))
            return copy.deepcopy(entry.obj) if entry is not None else None
        with self._lock:
            entry = self._data.get(gp, {}).pop((ns, name), None)
            if entry is None:
                return None
            obj = copy.deepcopy(entry.obj)
            rv = self._next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            self._emit(Event(rv, gp, "DELETED", obj, entry.obj, dumps(obj)))
            return obj

    def drop_all(self, gp: GroupPlural) -> None:
        with self._lock:
            for ns, name in list(self._data.get(gp, {})):
                self.remove(gp, ns, name)

    # -- reads -----------------------------------------------------------------------------
    def entry(self, gp: GroupPlural, ns: str, name: str) -> Entry | None:
        return self._data.get(gp, {}).get((ns, name))

    def entries(self, gp: GroupPlural, ns: str | None = None) -> list[Entry]:
        """Entries sorted by (namespace, name); the objects are the live ones (do not mutate)."""
        with self._lock:
            bucket = self._data.get(gp, {})
            keys = sorted(k for k in bucket if ns is None or k[0] == ns)
            return [bucket[k] for k in keys]

    def groups(self) -> Iterator[GroupPlural]:
        return iter(list(self._data))

    # -- test convenience (thread-safe copies) ---------------------------------------------
    def _gp(self, plural: str, group: str | None) -> GroupPlural | None:
        if group is not None:
            return (group, plural)
        with self._lock:
            return next((gp for gp in self._data if gp[1] == plural), None)

    def get(
        self, plural: str, name: str, namespace: str = "", group: str | None = None
    ) -> Obj | None:
        """A copy of one object, e.g. `store.get("nodes", "win-1")`, or None."""
        gp = self._gp(plural, group)
        with self._lock:
            entry = self._data.get(gp, {}).get((namespace, name)) if gp else None
            return copy.deepcopy(entry.obj) if entry else None

    def list(
        self, plural: str, namespace: str | None = None, group: str | None = None
    ) -> list[Obj]:
        """Copies of all objects of a plural (optionally in one namespace), sorted by name."""
        gp = self._gp(plural, group)
        if gp is None:
            return []
        return [copy.deepcopy(e.obj) for e in self.entries(gp, namespace)]
