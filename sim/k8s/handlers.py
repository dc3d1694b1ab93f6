"""HTTP layer of the SIMULATED Kubernetes API server (aiohttp).

Parses kube-style URLs (/api/v1/..., /apis/<group>/<version>/..., namespaced or not, with
subresources), authenticates (bearer token or verified client certificate) and authorizes each
request, applies armed faults, and serves CRUD, list (selectors, limit/continue), watch
(newline-delimited JSON events, bookmarks, 410 for versions older than the event window),
discovery and /version. Object semantics are in `sim.k8s.api`; used by `sim.k8s.server.KubeTwin`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from sim.k8s import disruption, openapi, tables
from sim.k8s.api import Api
from sim.k8s.auth import Authenticator, Identity, allowed
from sim.k8s.errors import ApiError, forbidden, status_body
from sim.k8s.faults import Faults
from sim.k8s.resources import ResourceType
from sim.k8s.selectors import request_predicate
from sim.k8s.store import dumps
from sim.k8s.watch import Watches

VERSION = {
    "major": "1",
    "minor": "29",
    "gitVersion": "v1.29.0-winfleet-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.21",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass
class Target:
    rt: ResourceType
    ns: str
    name: str
    sub: str
    verb: str


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    response = web.Response(body=dumps(body), status=status, content_type="application/json")
    for text in dict.fromkeys(warnings or ()):  # kube-apiserver's `Warning: 299 - "..."` headers
        response.headers.add("Warning", "299 - " + json.dumps(text))
    return response


def _raw(raw: bytes, status: int = 200) -> web.Response:
    return web.Response(body=raw, status=status, content_type="application/json")


class Handlers:
    """Request routing and the HTTP verbs."""

    def __init__(
        self,
        api: Api,
        authn: Authenticator,
        faults: Faults,
        server_url: Callable[[], str],
        bookmark_interval: float,
    ) -> None:
        self.api = api
        self.authn = authn
        self.faults = faults
        self._server_url = server_url
        self.bookmark_interval = bookmark_interval
        self.watches = Watches(api.store, bookmark_interval)

    def install(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.dispatch)

    def close_watches(self) -> None:
        self.watches.close_all()

    # -- entry point -----------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            if request.path in ("/healthz", "/readyz", "/livez"):
                return web.Response(text="ok")
            who = self._authenticate(request)
            discovery = self._discovery(request.path)
            if discovery is not None:
                return _json(discovery)
            target = self._route(request)
            self._authorize(who, target, request)
            delay = self.faults.delay_for(target.verb, target.rt.plural)
            if delay:
                await asyncio.sleep(delay)
            failure = self.faults.take(target.verb, target.rt.plural)
            if failure is not None:
                headers = {"Retry-After": "1"} if failure == 429 else {}
                err = ApiError(
                    failure, f"injected fault for {target.verb} {target.rt.plural} (simulated)"
                )
                return web.Response(
                    body=dumps(err.status()),
                    status=failure,
                    content_type="application/json",
                    headers=headers,
                )
            return await self._serve(request, target, who)
        except ApiError as exc:
            return _json(exc.status(), exc.code)

    def _authenticate(self, request: web.Request) -> Identity:
        peer = None
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport else None
        if ssl_object is not None:
            peer = ssl_object.getpeercert(binary_form=True)
        who = self.authn.authenticate(request.headers.get("Authorization"), peer)
        if who is None:
            raise ApiError(401, "Unauthorized")
        return who

    def _discovery(self, path: str) -> dict[str, Any] | None:
        reg = self.api.registry
        path = path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        doc: dict[str, Any] | None = None
        if path == "/version":
            doc = VERSION
        elif path == "/openapi/v3":
            doc = openapi.root(reg)
        elif path.startswith("/openapi/v3/"):
            doc = openapi.group_version(reg, path.removeprefix("/openapi/v3/"))
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
        elif path == "/api":
            doc = reg.api_versions(self._server_url().split("://", 1)[-1])
        elif path == "/api/v1":
            doc = reg.resource_list("", "v1")
        elif path == "/apis":
            doc = reg.api_group_list()
        elif len(parts) == 2 and parts[0] == "apis":
            doc = reg.api_group(parts[1])
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
        elif len(parts) == 3 and parts[0] == "apis":
            doc = reg.resource_list(parts[1], parts[2])
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
        return doc

    def _route(self, request: web.Request) -> Target:
        parts = [p for p in request.path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource")
        ns = ""
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            ns, rest = rest[1], rest[2:]
        plural, name, sub = [*rest, "", "", ""][:3]
        if len(rest) > 3 or not plural:
            raise ApiError(404, "the server could not find the requested resource")
        rt = self.api.registry.get(group, version, plural)
        if rt is None or (sub and sub not in rt.subresources):
            raise ApiError(404, "the server could not find the requested resource")
        if rt.namespaced and not ns and (name or request.method != "GET"):
            raise ApiError(404, "the server could not find the requested resource")
        if not rt.namespaced and ns:
            raise ApiError(404, "the server could not find the requested resource")
        method = request.method
        watch = request.query.get("watch") in ("true", "1")
        verb = {
            "GET": "get" if name else ("watch" if watch else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(method)
        bad_post = method == "POST" and bool(name) and sub != "eviction"
        if (
            verb is None
            or bad_post
            or (method in ("PUT", "PATCH") and not name)
            or (sub == "eviction" and method != "POST")
        ):
            raise ApiError(405, "the server does not allow this method on the requested resource")
        return Target(rt, ns, name, sub, verb)

    def _authorize(self, who: Identity, t: Target, request: web.Request) -> None:
        name = t.name
        if t.verb == "create" and not name and t.rt.plural == "nodes":
            name = "?"  # checked against the body's name in _serve
        if t.verb == "create" and t.rt.plural == "nodes" and who.node_name and not who.is_admin:
            return  # the node's own name is checked once the body is read
        if not allowed(who, t.verb, t.rt.group, t.rt.plural, t.sub, name):
            raise forbidden(who.user, t.verb, t.rt.group, t.rt.plural, t.name, t.ns)

    async def _body(self, request: web.Request) -> Any:
        text = await request.text()
        if not text:
            return {}
        try:
            if "yaml" in (request.content_type or ""):
                return yaml.safe_load(text)
            return json.loads(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, f"unable to decode the request body: {exc}") from exc

    # -- verbs -----------------------------------------------------------------------------
    async def _serve(self, request: web.Request, t: Target, who: Identity) -> web.StreamResponse:
        api, rt = self.api, t.rt
        if t.verb == "get" and t.sub == "scale":
            scale = api.read_scale(rt, t.ns, t.name)
            return _json(tables.scale_table(scale) if tables.wants_table(request) else scale)
        if t.verb == "get":
            entry = api.store.entry((rt.group, rt.plural), t.ns, t.name)
            if entry is None:
                raise ApiError(
                    404,
                    f'{rt.plural}{"." + rt.group if rt.group else ""} "{t.name}" not found',
                    "NotFound",
                    {"name": t.name, "group": rt.group, "kind": rt.plural},
                )
            if tables.wants_table(request):
                return _json(tables.table(rt, [entry.obj], ""))
            return _raw(entry.raw)
        if t.verb == "list":
            return self._list(request, rt, t.ns)
        if t.verb == "watch":
            return await self.watches.serve(request, rt, t.ns)
        body = await self._body(request)
        # Custom resources: unknown fields per ?fieldValidation=Ignore|Warn|Strict (sim.k8s.custom)
        checks: dict[str, Any] = {
            "field_validation": request.query.get("fieldValidation", ""),
            "warnings": [],
        }
        if t.verb == "create" and t.sub == "eviction":
            disruption.evict(api, t.ns, t.name, body)
            return _json(status_body(201, "", success=True), 201)
        if t.verb == "create":
            if rt.plural == "nodes" and not who.is_admin:
                name = (body.get("metadata") or {}).get("name") if isinstance(body, dict) else ""
                if name != who.node_name:
                    raise forbidden(who.user, "create", rt.group, rt.plural, str(name), "")
            return _json(api.create(rt, t.ns, body, who, **checks), 201, checks["warnings"])
        if t.verb == "update":
            return _json(
                api.update(rt, t.ns, t.name, body, t.sub, **checks), 200, checks["warnings"]
            )
        if t.verb == "patch":
            patched = api.patch(rt, t.ns, t.name, request.content_type, body, t.sub, **checks)
            return _json(patched, 200, checks["warnings"])
        if t.verb == "delete":
            return _json(api.delete(rt, t.ns, t.name, body))
        # deletecollection
        gone = [
            api.delete(rt, e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"])
            for e in self._select(request, rt, t.ns)
        ]
        return _json(
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(api.store.resource_version)},
                "items": gone,
            }
        )

    def _select(self, request: web.Request, rt: ResourceType, ns: str) -> list[Any]:
        match = request_predicate(request.query, rt.namespaced, ns)
        scope = ns if rt.namespaced and ns else None
        entries = self.api.store.entries((rt.group, rt.plural), scope)
        return [e for e in entries if match(e.obj)]

    def _list(self, request: web.Request, rt: ResourceType, ns: str) -> web.Response:
        rv = self.api.store.resource_version
        q = request.query
        entries = self._select(request, rt, ns)
        if q.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(q["continue"]))
                start = (token["ns"], token["name"])
                rv = int(token["rv"])
            except (ValueError, KeyError, binascii.Error) as exc:
                raise ApiError(400, "continue key is not valid") from exc
            if rv < self.api.store.compacted_rv:
                raise ApiError(
                    410,
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.",
                    "Expired",
                )
            entries = [
                e
                for e in entries
                if (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"]) > start
            ]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        limit = int(q.get("limit") or 0)
        if 0 < limit < len(entries):
            last = entries[limit - 1].obj["metadata"]
            token = {"rv": rv, "ns": last.get("namespace", ""), "name": last["name"]}
            meta["continue"] = base64.urlsafe_b64encode(dumps(token)).decode()
            meta["remainingItemCount"] = len(entries) - limit
            entries = entries[:limit]
        if tables.wants_table(request):
            return _json(tables.table(rt, [e.obj for e in entries], str(rv)))
        head = dumps({"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta})
        body = head[:-1] + b',"items":[' + b",".join(e.raw for e in entries) + b"]}"
        return _raw(body)
