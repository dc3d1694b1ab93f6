"""The one door to the Kubernetes API: client construction and error translation.

Uses the official (synchronous) `kubernetes` client; `call()` runs each request in a thread so
activities stay async, and translates `ApiException`/transport errors into winfleet errors in
exactly one place. Other modules (csr, node, hostkeys, events) build on `call()`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from activities.config import on_settings_change, settings
from activities.errors import InvalidRequest, KubernetesUnavailable, WinfleetError
from activities.tracing import span

T = TypeVar("T")


class NotFound(WinfleetError):
    """The object does not exist (callers decide whether that is fine)."""


class Conflict(WinfleetError):
    """409: stale resourceVersion or the object already exists."""


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
    return client.ApiClient(cfg)


on_settings_change(api_client.cache_clear)


def core() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


def certificates() -> client.CertificatesV1Api:
    return client.CertificatesV1Api(api_client())


def coordination() -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api_client())


def translate(exc: Exception, what: str) -> WinfleetError:
    """Map a kubernetes-client exception to a winfleet error (the single place to do so)."""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        reason = (exc.reason or "").strip()
        if status == 404:
            return NotFound(f"{what}: not found")
        if status == 409:
            return Conflict(f"{what}: conflict ({reason})")
        if status in (400, 422):
            return InvalidRequest(f"{what}: rejected by the API server ({status} {reason})")
        if status == 429:
            return TooManyRequests(
                f"{what}: the API server answered 429 {reason}", _status_causes(exc.body)
            )
        if status in (401, 403):
            return InvalidRequest(
                f"{what}: not authorized ({status}); check winfleet's kubeconfig/RBAC"
            )
        return KubernetesUnavailable(f"{what}: API server answered {status} {reason}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return KubernetesUnavailable(f"{what}: API server unreachable ({type(exc).__name__})")
    raise exc


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
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            error = translate(exc, what)
            if not isinstance(error, NotFound):
                raise error from exc
            # An expected answer for lookups, not a failure of the span.
            s.set_attribute("winfleet.outcome", "not found")
            cause = exc
    raise error from cause
