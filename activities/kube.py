"""The one door to the Kubernetes API: client construction and error translation.

Uses the official (synchronous) `kubernetes` client; `call()` runs each request on the blocking
pool (activities/blocking.py) so activities stay async, and translates `ApiException`/transport
errors into winfleet errors in exactly one place. Other modules (csr, node, hostkeys, events)
build on `call()`. `list_page` and `watch_stream` are the blocking list and watch of the
informers (activities/cache_informer.py), which run in threads of their own: raw JSON, not the
client's typed models, and a watch read line by line as the server streams it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from activities import blocking
from activities.config import on_settings_change, settings
from activities.errors import InvalidRequest, KubernetesUnavailable, WinfleetError
from activities.tracing import span

T = TypeVar("T")


class NotFound(WinfleetError):
    """The object does not exist (callers decide whether that is fine)."""


class Conflict(WinfleetError):
    """409: stale resourceVersion or the object already exists."""


class Expired(KubernetesUnavailable):
    """410 Gone: the resourceVersion asked for is older than the server keeps (list again)."""


class TooManyRequests(KubernetesUnavailable):
    """429: throttled, or an eviction a PodDisruptionBudget refuses (see `causes`)."""

    def __init__(self, message: str, causes: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.causes = causes


def _status_causes(body: object) -> list[dict[str, str]]:
    """`details.causes` of a Status reply (reason and message only; nothing else is kept)."""
    try:
        status = json.loads(body) if isinstance(body, str | bytes) else {}
        causes = (status.get("details") or {}).get("causes") or []
        return [
            {"reason": str(c.get("reason", ""))[:64], "message": str(c.get("message", ""))[:300]}
            for c in causes
            if isinstance(c, dict)
        ]
    except (ValueError, AttributeError):
        return []


@cache
def api_client() -> client.ApiClient:
    """An ApiClient for the configured kubeconfig (or in-cluster config)."""
    cfg = client.Configuration()
    path = settings().kubeconfig
    if path:
        config.load_kube_config(config_file=path, client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    # One pooled connection per thread that may call at once (urllib3 discards the excess).
    cfg.connection_pool_maxsize = blocking.size()
    return client.ApiClient(cfg)


on_settings_change(api_client.cache_clear)


def core() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


def certificates() -> client.CertificatesV1Api:
    return client.CertificatesV1Api(api_client())


def coordination() -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api_client())


def custom_objects() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())


def translate(exc: Exception, what: str) -> WinfleetError:
    """Map a kubernetes-client exception to a winfleet error (the single place to do so).

    The message carries the status, the API server's reason code and the names of the fields
    it objected to, never the response headers or body (they hold request ids, audit data and,
    for some kinds, object content).
    """
    if isinstance(exc, ApiException):
        status = exc.status or 0
        said = _status_summary(exc)
        if status == 404:
            return NotFound(f"{what}: not found")
        if status == 409:
            return Conflict(f"{what}: conflict ({said})")
        if status == 410:
            return Expired(f"{what}: resource version too old ({said})")
        if status in (400, 422):
            return InvalidRequest(f"{what}: rejected by the API server ({status} {said})")
        if status == 429:
            return TooManyRequests(
                f"{what}: the API server answered 429 ({said})", _status_causes(exc.body)
            )
        if status in (401, 403):
            return InvalidRequest(
                f"{what}: not authorized ({status}); check winfleet's kubeconfig/RBAC"
            )
        return KubernetesUnavailable(f"{what}: API server answered {status} {said}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return KubernetesUnavailable(f"{what}: API server unreachable ({type(exc).__name__})")
    raise exc


_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,39}$")
_FIELD = re.compile(r"^[A-Za-z0-9_.\[\]/-]{1,80}$")


def _status_summary(exc: ApiException) -> str:
    """`<Reason>` (+ `fields a, b`) from the Status body, or the HTTP reason phrase."""
    try:
        body = json.loads(exc.body or "")
    except (ValueError, TypeError):
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        reason = body.get("reason")
        if isinstance(reason, str) and _WORD.match(reason):
            parts.append(reason)
        causes = (body.get("details") or {}).get("causes") or ()
        named = (str(c.get("field")) for c in causes if isinstance(c, dict))
        fields = sorted({f for f in named if _FIELD.match(f)})
        if fields:
            parts.append("fields " + ", ".join(fields[:5]))
    if not parts:
        phrase = (exc.reason or "").strip()
        parts.append(phrase if _WORD.match(phrase.replace(" ", "")) else "")
    return "; ".join(p for p in parts if p)


def _read_body(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
    """Call with `_preload_content=False` and read the whole body in the same thread, so the
    pooled connection goes back clean (a half-read one breaks the next request on it)."""
    response = fn(*args, _preload_content=False, **kwargs)
    try:
        return bytes(response.read())
    finally:
        response.release_conn()


async def call_json(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`call` returning the reply as parsed JSON, bypassing the client's typed models (they
    reject objects that lack fields they declare required, e.g. a Node's partial nodeInfo)."""
    body = await call(what, _read_body, fn, *args, **kwargs)
    return json.loads(body or b"null")


async def call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking client call in a thread, traced, with errors translated."""
    with span("k8s " + what) as s:
        try:
            return await blocking.run(fn, *args, **kwargs)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            error = translate(exc, what)
            if not isinstance(error, NotFound):
                raise error from exc
            # An expected answer for lookups, not a failure of the span.
            s.set_attribute("winfleet.outcome", "not found")
            cause = exc
    raise error from cause


# --- list and watch, for the informers' threads (blocking) ------------------------------------
JsonObject = dict[str, Any]


def list_page(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JsonObject:
    """One page of a `list_*` call as parsed JSON (blocking; errors translated)."""
    try:
        data = json.loads(_read_body(fn, *args, **kwargs) or b"{}")
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise translate(exc, what) from exc
    except ValueError as exc:
        raise KubernetesUnavailable(
            f"{what}: the API server sent something other than JSON"
        ) from exc
    return data if isinstance(data, dict) else {}


@contextmanager
def watch_stream(
    what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> Iterator[tuple[Any, Iterator[JsonObject]]]:
    """Start a watch (`fn(..., watch=True)`) and yield the response (to interrupt it from
    another thread: `response.shutdown()`) and its events, decoded; blocking. Errors, also
    those while reading, come out translated; the connection is closed at the end."""
    try:
        response = fn(*args, watch=True, _preload_content=False, **kwargs)
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise translate(exc, what) from exc
    try:
        yield response, _events(what, response)
    finally:
        response.close()
        response.release_conn()


def _events(what: str, response: Any) -> Iterator[JsonObject]:
    try:
        for line in iter_lines(response.stream(amt=None, decode_content=False)):
            event = json.loads(line)
            if isinstance(event, dict):
                yield event
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise translate(exc, what) from exc
    except ValueError as exc:
        raise KubernetesUnavailable(f"{what}: the API server sent a line that is not JSON") from exc


def iter_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The non-empty newline-delimited lines of a streamed body, however chunks cut them."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        yield from (line for line in lines if line.strip())
    if rest.strip():
        yield rest


def status_error(what: str, status: JsonObject) -> WinfleetError:
    """The winfleet error for a Status object, e.g. the ERROR event of a watch (410 Expired)."""
    code = status.get("code")
    exc = ApiException(status=code if isinstance(code, int) else 500, reason=status.get("reason"))
    exc.body = json.dumps(status)
    return translate(exc, what)
