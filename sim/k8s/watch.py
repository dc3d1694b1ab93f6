"""Watches on the SIMULATED Kubernetes API server: newline-delimited JSON event streams.

A watch starts from "now" (synthetic ADDED events for current objects) or from a given
resourceVersion (replaying the store's event window; older than the window is a 410 Expired
ERROR event, as from a compacted etcd), applies label/field selectors (an object that stops
matching is reported DELETED), sends BOOKMARK events when asked, and ends at timeoutSeconds or
when the twin stops. Used by `sim.k8s.handlers` for `?watch=true` requests.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from sim.k8s import tables
from sim.k8s.errors import ApiError, status_body
from sim.k8s.resources import ResourceType
from sim.k8s.selectors import request_predicate
from sim.k8s.store import Event, Store, dumps

DEFAULT_WATCH_SECONDS = 1800.0


class Watches:
    """Serves watch requests and can end them all at shutdown."""

    def __init__(self, store: Store, bookmark_interval: float) -> None:
        self.store = store
        self.bookmark_interval = bookmark_interval
        self._queues: set[asyncio.Queue[Event | None]] = set()

    def close_all(self) -> None:
        for q in list(self._queues):
            q.put_nowait(None)

    async def serve(self, request: web.Request, rt: ResourceType, ns: str) -> web.StreamResponse:
        """Stream watch events for `rt` (in `ns`) until timeoutSeconds or twin shutdown."""
        q = request.query
        match = request_predicate(q, rt.namespaced, ns, rt.kind)
        gp = (rt.group, rt.plural)
        rv_param = q.get("resourceVersion") or ""
        try:
            since = int(rv_param) if rv_param not in ("", "0") else None
            timeout = float(q.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        except ValueError as exc:
            raise ApiError(400, f"invalid resourceVersion or timeoutSeconds: {exc}") from exc
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        as_table = tables.wants_table(request)

        def line(e: Event, type_: str | None = None) -> bytes:
            if as_table:  # kubectl get -w: each event carries a one-row Table
                row = tables.table(rt, [e.obj], e.obj["metadata"]["resourceVersion"])
                return dumps({"type": type_ or e.type, "object": row}) + b"\n"
            return e.line(type_)

        def translate(e: Event) -> bytes | None:
            if e.gp != gp:
                return None
            new_ok = match(e.obj)
            if e.type == "DELETED":
                return line(e) if new_ok else None
            old_ok = e.old is not None and match(e.old)
            if new_ok:
                return line(e, "ADDED" if e.type == "MODIFIED" and not old_ok else e.type)
            return line(e, "DELETED") if old_ok else None

        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        store = self.store

        def listener(e: Event) -> None:
            if e.gp == gp:
                queue.put_nowait(e)

        # Subscribe and snapshot with no await in between, so no event falls in a gap.
        store.subscribe(listener)
        self._queues.add(queue)
        lines: list[bytes] = []
        if since is None:
            for entry in store.entries(gp, ns if rt.namespaced and ns else None):
                if match(entry.obj):
                    lines.append(line(Event(0, gp, "ADDED", entry.obj, None, entry.raw)))
        elif since < store.compacted_rv:
            err = status_body(
                410, f"too old resource version: {since} ({store.compacted_rv + 1})", "Expired"
            )
            lines.append(dumps({"type": "ERROR", "object": err}) + b"\n")
            queue.put_nowait(None)
        else:
            lines += [ln for ln in map(translate, store.events_since(since, gp)) if ln]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            if lines:
                await resp.write(b"".join(lines))
            while (remaining := deadline - loop.time()) > 0:
                wait = min(remaining, self.bookmark_interval) if bookmarks else remaining
                try:
                    event = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    if bookmarks and deadline - loop.time() > 0:
                        mark = {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": rt.kind,
                                "apiVersion": rt.api_version,
                                "metadata": {"resourceVersion": str(store.resource_version)},
                            },
                        }
                        await resp.write(dumps(mark) + b"\n")
                    continue
                if event is None:
                    break
                out = translate(event)
                if out:
                    await resp.write(out)
            await resp.write_eof()
        except ConnectionResetError:
            pass
        finally:
            store.unsubscribe(listener)
            self._queues.discard(queue)
        return resp
