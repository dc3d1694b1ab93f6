"""List and watch one kind of Kubernetes object and keep it in memory: the informer pattern.

An `Informer` lists its objects (in pages), then watches from the list's resourceVersion with
bookmarks, resuming from the last resourceVersion it saw when a watch ends or its connection
drops, and listing again when the server answers 410 Gone (the version was compacted away).
The blocking `kubernetes` client runs in one thread of its own per informer (a watch blocks
for minutes; the shared pool of activities/blocking.py is for short calls); every change is
handed to the event loop, where the objects live, so readers need no lock. Waiters subscribe to
an index key (an object's name, or e.g. the node a CSR claims) and are woken by changes to it.

Staleness is bounded: `live()` is false before the first list, after the API refused the watch
(403: reads then go to the API, see activities/cache.py), and once the watch has been down for
more than `STALE_AFTER_S`. Objects written by the worker can be fed in at once (`observe`, as
client-go's mutation cache does) so the next read sees the write before its watch event.
Used by activities/cache.py only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from activities import kube, polling
from activities.errors import InvalidRequest, WinfleetError

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
Lister = Callable[..., Any]  # a `list_*` method of the kubernetes client

LIST_PAGE = 500  # objects per list request, as client-go's reflector pages
WATCH_SECONDS = (240, 360)  # each watch asks the server to end it after a random time in this
READ_GRACE_S = 30.0  # ... and the client gives up on a silent connection this much later
CONNECT_TIMEOUT_S = 10.0
RETRY_FIRST_S = 0.2  # after a failed list/watch, doubling up to RETRY_MAX_S
RETRY_MAX_S = 10.0
REFUSED_RETRY_S = 60.0  # after 401/403: the watch is retried rarely, reads use the API
STALE_AFTER_S = 2.0  # a watch down longer than this: the objects may be stale
SHORT_WATCH_S = 1.0  # a watch that ended this soon, with nothing in it, counts as a failure


class Waker:
    """An asyncio.Event that informers set when an object a waiter cares about changes."""

    def __init__(self) -> None:
        self.event = asyncio.Event()


class Informer:
    """The objects of one list+watch, by name, on the event loop that created it."""

    def __init__(
        self,
        what: str,
        lister: Lister,
        *args: Any,
        field_selector: str = "",
        index: Callable[[JsonObject], str | None] | None = None,
    ) -> None:
        self.what = what
        self._lister = lister
        self._args = args
        self._field_selector = field_selector
        self._index = index or _name
        self._loop = asyncio.get_running_loop()
        self._objects: dict[str, JsonObject] = {}
        self._keys: dict[str, str | None] = {}  # name -> index key
        self._by_key: dict[str, dict[str, JsonObject]] = {}
        self._wakers: dict[str, set[Waker]] = {}
        self._synced = asyncio.Event()
        self._settled = asyncio.Event()  # listed, or refused: a first read need not wait more
        self._connected = False
        self._down_since = time.monotonic()
        self._refused: str | None = None  # why the API refused the list/watch (401/403)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"watch {what}", daemon=True)

    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the watch thread (its blocking read is interrupted)."""
        self._stop.set()
        with self._lock:
            response = self._response
        if response is not None:
            _shutdown(response)

    # --- reads (event loop) --------------------------------------------------------------------
    def live(self) -> bool:
        """Listed, allowed, and watching (or down for less than STALE_AFTER_S)."""
        if not self._synced.is_set() or self._refused is not None:
            return False
        return self._connected or time.monotonic() - self._down_since < STALE_AFTER_S

    async def ready(self, wait_s: float) -> bool:
        """Whether reads may come from memory, waiting up to `wait_s` for the first list."""
        if not self._settled.is_set():
            await polling.wait_event(self._settled, wait_s)
        return self.live()

    def get(self, name: str) -> JsonObject | None:
        """The object (shared: do not change it), or None."""
        return self._objects.get(name)

    def indexed(self, key: str) -> list[JsonObject]:
        """The objects whose index key is `key` (shared: do not change them)."""
        return list(self._by_key.get(key, {}).values())

    def observe(self, obj: JsonObject) -> None:
        """Take in an object the worker just wrote, unless the cache has a newer one."""
        if self._synced.is_set():
            self._apply("MODIFIED", obj)

    # --- wakers --------------------------------------------------------------------------------
    def subscribe(self, key: str, waker: Waker) -> None:
        self._wakers.setdefault(key, set()).add(waker)

    def unsubscribe(self, key: str, waker: Waker) -> None:
        found = self._wakers.get(key)
        if found is not None:
            found.discard(waker)
            if not found:
                del self._wakers[key]

    def _wake(self, *keys: str | None) -> None:
        for key in keys:
            if key is not None:
                for waker in self._wakers.get(key, ()):
                    waker.event.set()

    def _wake_all(self) -> None:
        for wakers in self._wakers.values():
            for waker in wakers:
                waker.event.set()

    # --- changes (event loop) ------------------------------------------------------------------
    def _apply(self, kind: str, obj: JsonObject) -> None:
        name = _name(obj)
        if not name:
            return
        old = self._objects.get(name)
        if kind == "DELETED":
            if old is None:
                return
            del self._objects[name]
            new_key = None
        else:
            if old is not None and _older(obj, old):
                return  # an event from before a write the worker already observed
            self._objects[name] = obj
            new_key = self._index(obj)
        old_key = self._keys.pop(name, None)
        if old_key is not None:
            self._by_key.get(old_key, {}).pop(name, None)
            if not self._by_key.get(old_key, True):
                del self._by_key[old_key]
        if kind != "DELETED":
            self._keys[name] = new_key
            if new_key is not None:
                self._by_key.setdefault(new_key, {})[name] = obj
        self._wake(old_key, new_key)

    def _replace(self, items: list[JsonObject]) -> None:
        self._objects.clear()
        self._keys.clear()
        self._by_key.clear()
        for obj in items:
            name = _name(obj)
            if name:
                self._objects[name] = obj
                key = self._keys[name] = self._index(obj)
                if key is not None:
                    self._by_key.setdefault(key, {})[name] = obj
        self._refused = None
        self._synced.set()
        self._settled.set()
        self._wake_all()

    def _set_connected(self, connected: bool) -> None:
        if self._connected and not connected:
            self._down_since = time.monotonic()
        self._connected = connected

    def _set_refused(self, why: str) -> None:
        self._refused = why
        self._set_connected(False)
        self._settled.set()
        self._wake_all()  # waiters re-check, now through the API

    # --- the watch thread ----------------------------------------------------------------------
    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody reads this informer any more
            self._stop.set()

    def _run(self) -> None:
        version = ""
        delay = RETRY_FIRST_S
        while not self._stop.is_set():
            try:
                if not version:
                    items, version = self._list()
                    self._post(self._replace, items)
                started = time.monotonic()
                version, seen = self._watch(version)
                if seen or time.monotonic() - started > SHORT_WATCH_S:
                    delay = RETRY_FIRST_S
                    continue
                failure = "the watch ended at once"
            except kube.Expired:
                version = ""  # compacted: list again
                continue
            except InvalidRequest as exc:  # 401/403 (or 400): reads go to the API meanwhile
                self._post(self._set_refused, exc.message)
                log.warning("watching %s: %s; reading through the API", self.what, exc.message)
                self._stop.wait(REFUSED_RETRY_S)
                continue
            except WinfleetError as exc:
                failure = exc.message
            except Exception as exc:  # never let the thread die: the cache would go stale
                failure = f"{type(exc).__name__}: {str(exc)[:200]}"
            if self._stop.is_set():
                break
            log.info("watching %s: %s; retrying in %.1f s", self.what, failure, delay)
            self._post(self._set_connected, False)
            self._stop.wait(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _selector(self) -> dict[str, Any]:
        return {"field_selector": self._field_selector} if self._field_selector else {}

    def _list(self) -> tuple[list[JsonObject], str]:
        """All objects (page by page) and the list's resourceVersion."""
        items: list[JsonObject] = []
        token = ""
        while True:
            page = kube.list_page(
                f"list {self.what}",
                self._lister,
                *self._args,
                limit=LIST_PAGE,
                _continue=token or None,
                _request_timeout=(CONNECT_TIMEOUT_S, 60.0),
                **self._selector(),
            )
            items += [i for i in page.get("items") or () if isinstance(i, dict)]
            meta = page.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def _watch(self, version: str) -> tuple[str, bool]:
        """Watch from `version` until the server ends the watch; the last version seen and
        whether anything came. Raises kube.Expired on 410 (in the reply or as an event)."""
        seconds = random.randint(*WATCH_SECONDS)
        seen = False
        with kube.watch_stream(
            f"watch {self.what}",
            self._lister,
            *self._args,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
            _request_timeout=(CONNECT_TIMEOUT_S, seconds + READ_GRACE_S),
            **self._selector(),
        ) as (response, events):
            with self._lock:
                self._response = response
            if self._stop.is_set():
                return version, seen
            self._post(self._set_connected, True)
            try:
                for event in events:
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        raise kube.status_error(f"watch {self.what}", obj)
                    seen = True
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._post(self._apply, kind, obj)
            finally:
                with self._lock:
                    self._response = None
                self._post(self._set_connected, False)
        return version, seen


def _name(obj: JsonObject) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _version(obj: JsonObject) -> int | None:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


def _older(new: JsonObject, old: JsonObject) -> bool:
    """Whether `new` is older than `old` (resourceVersions compared only when both are numbers,
    as etcd's are; the API calls them opaque, so anything else is taken as newer)."""
    a, b = _version(new), _version(old)
    return a is not None and b is not None and a < b


def _shutdown(response: Any) -> None:
    """Interrupt a blocking read on `response` from another thread (urllib3 >= 2.3)."""
    try:
        response.shutdown()
    except Exception:  # already closed, or an older urllib3: the read ends at its timeout
        log.debug("could not interrupt a watch read", exc_info=True)
