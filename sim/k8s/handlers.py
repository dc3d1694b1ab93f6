"""HTTP layer of the SIMULATED Kubernetes API server (aiohttp).

Parses kube-style URLs (/api/v1/..., /apis/<group>/<version>/..., namespaced or not, with
subresources), authenticates (bearer token or verified client certificate) and authorizes each
request, applies armed faults, and serves CRUD, list (selectors, limit/continue), watch
(newline-delimited JSON events, bookmarks, 410 for versions older than the event window),
discovery and /version, the TokenRequest and review endpoints. Field managers come from the
`fieldManager` parameter or the User-Agent prefix, as kube-apiserver derives them. Object
semantics are in `sim.k8s.api`; used by `sim.k8s.server.KubeTwin`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from sim.k8s import disruption, openapi, reviews, tables
from sim.k8s.api import Api
from sim.k8s.auth import Authenticator, Identity
from sim.k8s.authz import Authorizer
from sim.k8s.errors import ApiError, invalid, not_found, status_body
from sim.k8s.faults import Faults
from sim.k8s.patch import APPLY
from sim.k8s.rbac import Attributes
from sim.k8s.requests import RequestCounts
from sim.k8s.resources import CREATE_SUBRESOURCES, ResourceType
from sim.k8s.selectors import request_predicate
from sim.k8s.store import dumps
from sim.k8s.tokens import ServiceAccountTokens
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


@dataclass(frozen=True)
class AuditRecord:
    """One resource request as kube-apiserver's audit log records it (stage ResponseComplete,
    level Metadata): who, verb, resource, namespace, name and the response code."""

    user: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    dry_run: bool = False


AUDIT_LIMIT = 100_000


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


async def _dry_run(request: web.Request) -> bool:
    """`?dryRun=All` on a write, or `dryRun: [All]` in a DELETE's DeleteOptions (the only value
    kube-apiserver accepts; kubectl `--dry-run=server` sends one or the other)."""
    if request.method in ("GET", "HEAD"):
        return False
    values = list(request.query.getall("dryRun", []))
    if request.method == "DELETE" and request.can_read_body:
        try:
            options = json.loads(await request.read() or b"{}")
        except ValueError:
            options = {}
        if isinstance(options, dict) and isinstance(options.get("dryRun"), list):
            values += [str(v) for v in options["dryRun"]]
    for value in values:
        if value != "All":
            raise ApiError(400, f'unsupported dry run value: "{value}"; supported values: "All"')
    return bool(values)


def _is_resource_path(path: str) -> bool:
    """/api/v1/<resource>... or /apis/<group>/<version>/<resource>... (not discovery)."""
    parts = [p for p in path.split("/") if p]
    return (parts[:2] == ["api", "v1"] and len(parts) > 2) or (
        parts[:1] == ["apis"] and len(parts) > 3
    )


def prefix_from_user_agent(agent: str) -> str:
    """The default field manager: the User-Agent up to its first '/' (printable, 128 max)."""
    return "".join(ch for ch in agent.split("/")[0] if ch.isprintable())[:128]


def _field_manager(request: web.Request, verb: str) -> str:
    """The `fieldManager` parameter (validated as the real Create/Update/PatchOptions are)."""
    q = request.query
    manager = q.get("fieldManager", "")
    is_apply = verb == "patch" and (request.content_type or "").lower() == APPLY
    causes = []
    if is_apply and not manager:
        causes.append(
            ("fieldManager", "FieldValueRequired", "Required value: is required for apply patch")
        )
    if verb == "patch" and "force" in q and not is_apply:
        msg = "Forbidden: may not be specified for non-apply patch"
        causes.append(("force", "FieldValueForbidden", msg))
    if len(manager) > 128:
        causes.append(
            ("fieldManager", "FieldValueTooLong", "Too long: must have at most 128 bytes")
        )
    if any(not ch.isprintable() for ch in manager):
        msg = f'Invalid value: "{manager}": must only contain printable characters'
        causes.append(("fieldManager", "FieldValueInvalid", msg))
    if causes:
        kind = {"create": "CreateOptions", "update": "UpdateOptions"}.get(verb, "PatchOptions")
        raise invalid(kind, "meta.k8s.io", "", causes)
    return manager or prefix_from_user_agent(request.headers.get("User-Agent", ""))


class Handlers:
    """Request routing and the HTTP verbs."""

    def __init__(
        self,
        api: Api,
        authn: Authenticator,
        faults: Faults,
        server_url: Callable[[], str],
        bookmark_interval: float,
        authz: Authorizer,
        tokens: ServiceAccountTokens,
        requests: RequestCounts | None = None,
    ) -> None:
        self.api = api
        self.requests = requests or RequestCounts()
        self.authn = authn
        self.authz = authz
        self.tokens = tokens
        self.faults = faults
        self._server_url = server_url
        self.bookmark_interval = bookmark_interval
        self.watches = Watches(api.store, bookmark_interval)
        self.audit: deque[AuditRecord] = deque(maxlen=AUDIT_LIMIT)

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
            if not _is_resource_path(request.path):
                verb = request.method.lower()
                self.requests.count(who.user, verb, "", request.path)
                self.authz.check(Attributes(who, verb, path=request.path, resource_request=False))
                discovery = self._discovery(request.path)
                if discovery is None:
                    raise ApiError(404, "the server could not find the requested resource")
                return _json(discovery)
            target = self._route(request)
            self.requests.count(who.user, target.verb, target.rt.plural, target.sub)
        except ApiError as exc:
            return _json(exc.status(), exc.code)
        code, dry_run = 500, False
        try:
            dry_run = await _dry_run(request)
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
                code = failure
                return web.Response(
                    body=dumps(err.status()),
                    status=failure,
                    content_type="application/json",
                    headers=headers,
                )
            if dry_run:
                # read the body first: nothing may await while the store is in dry-run mode,
                # or the controllers' writes in between would be dropped too
                await request.read()
            with self.api.store.dry_running() if dry_run else contextlib.nullcontext():
                response = await self._serve(request, target, who)
            code = response.status
            return response
        except ApiError as exc:
            code = exc.code
            return _json(exc.status(), exc.code)
        finally:
            self.audit.append(
                AuditRecord(
                    who.user,
                    target.verb,
                    target.rt.group,
                    target.rt.plural,
                    target.sub,
                    target.ns,
                    target.name,
                    code,
                    dry_run,
                )
            )

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
        create_only = rt.verbs == ("create",)
        bad_post = method == "POST" and bool(name) and sub not in CREATE_SUBRESOURCES
        if (
            verb is None
            or bad_post
            or (create_only and (method != "POST" or name))
            or (method in ("PUT", "PATCH") and not name)
            or (sub in CREATE_SUBRESOURCES and method != "POST")
        ):
            raise ApiError(405, "the server does not allow this method on the requested resource")
        return Target(rt, ns, name, sub, verb)

    def _authorize(self, who: Identity, t: Target, request: web.Request) -> None:
        rt = t.rt
        name = t.name
        if not name and t.verb in ("list", "watch"):
            # As kube-apiserver's RequestInfo: a list or watch whose field selector pins
            # metadata.name is authorized for that name (RBAC resourceNames can allow it).
            name = _exact_name(request.query.get("fieldSelector", ""))
        self.authz.check(Attributes(who, t.verb, rt.group, rt.plural, t.sub, name, t.ns))

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
        if rt.plural in reviews.REVIEW_KINDS:
            answer = reviews.review(rt.plural, t.ns, body, who, self.authz, self.authn)
            return _json(answer, 201)
        if t.sub == "token":
            return _json(self.tokens.request(t.ns, t.name, body), 201)
        if t.sub == "eviction":
            pod = api.store.entry(("", "pods"), t.ns, t.name)
            if pod is None:
                raise not_found("", "pods", t.name)
            self.authz.admit(who, "CREATE", "", "pods", "eviction", pod.obj, pod.obj)
            api.admit_policies(who, "CREATE", rt, "eviction", None, body)
            disruption.evict(api, t.ns, t.name, body)
            return _json(status_body(201, "", success=True), 201)
        if t.verb == "create" and t.sub == "binding":
            api.bind(t.ns, t.name, body)
            return _json(status_body(201, "", success=True), 201)
        if t.verb == "delete":
            if "gracePeriodSeconds" in request.query and isinstance(body, dict):
                body["gracePeriodSeconds"] = int(request.query["gracePeriodSeconds"])
            return _json(api.delete(rt, t.ns, t.name, body, who))
        manager = _field_manager(request, t.verb)
        if t.verb == "create":
            created = api.create(rt, t.ns, body, who, manager=manager, **checks)
            return _json(created, 201, checks["warnings"])
        if t.verb == "update":
            updated = api.update(rt, t.ns, t.name, body, t.sub, who=who, manager=manager, **checks)
            return _json(updated, 200, checks["warnings"])
        exists = api.store.entry((rt.group, rt.plural), t.ns, t.name) is not None
        force = request.query.get("force") in ("true", "1")
        patched = api.patch(
            rt,
            t.ns,
            t.name,
            request.content_type,
            body,
            t.sub,
            who=who,
            manager=manager,
            force=force,
            **checks,
        )
        return _json(patched, 200 if exists else 201, checks["warnings"])
        # deletecollection
        gone = [
            api.delete(
                rt, e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"], None, who
            )
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
        match = request_predicate(request.query, rt.namespaced, ns, rt.kind)
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


def _exact_name(field_selector: str) -> str:
    """The name a field selector requires exactly (`metadata.name=x` or `==x`), else ""."""
    for term in field_selector.split(","):
        key, sep, value = term.strip().partition("==")
        if not sep:
            key, sep, value = term.strip().partition("=")
        if sep and not key.endswith("!") and key.strip() == "metadata.name" and value.strip():
            return value.strip()
    return ""
