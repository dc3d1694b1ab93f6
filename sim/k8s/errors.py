"""Kubernetes `Status` error bodies for the SIMULATED API server.

`ApiError` is raised anywhere in `sim.k8s` and turned into a `Status` JSON response by the HTTP
layer (`sim.k8s.handlers`), with the reason/code pairs the real kube-apiserver uses, so clients
(`kubernetes` Python client, kubectl) map them to the same exceptions they would in production.
"""

from __future__ import annotations

from typing import Any

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    """An API failure with its HTTP code and the Status body to send."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        return status_body(self.code, self.message, self.reason, self.details)


def status_body(
    code: int,
    message: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
    success: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if success else "Failure",
        "code": code,
    }
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    return body


def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404,
        f'{_qualified(group, plural)} "{name}" not found',
        "NotFound",
        {"name": name, "group": group, "kind": plural},
    )


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'{_qualified(group, plural)} "{name}" already exists',
        "AlreadyExists",
        {"name": name, "group": group, "kind": plural},
    )


def conflict(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {_qualified(group, plural)} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again",
        "Conflict",
        {"name": name, "group": group, "kind": plural},
    )


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; causes are (field, reason e.g. FieldValueInvalid, message).

    The message joins the causes as Go's `field.ErrorList.ToAggregate()` does: one cause as is,
    several inside brackets separated by ", ".
    """
    texts = [f"{f}: {m}" if f else m for f, _r, m in causes]
    text = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        f'{qualified} "{name}" is invalid: {text}',
        "Invalid",
        {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [{"field": f, "reason": r, "message": m} for f, r, m in causes],
        },
    )


def forbidden(
    user: str,
    verb: str,
    group: str,
    plural: str,
    name: str,
    ns: str,
    sub: str = "",
    reason: str = "",
) -> ApiError:
    """403 from the authorizer, worded as kube-apiserver's `responsewriters.Forbidden`."""
    where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
    resource = f"{plural}/{sub}" if sub else plural
    text = f'User "{user}" cannot {verb} resource "{resource}" in API group "{group}"{where}' + (
        f": {reason}" if reason else ""
    )
    return forbidden_because(group, plural, name, text)


def forbidden_because(group: str, plural: str, name: str, why: str) -> ApiError:
    """403 as `apierrors.NewForbidden` words it (used by authorizers and admission plugins)."""
    what = f'{_qualified(group, plural)} "{name}"' if name else _qualified(group, plural)
    return ApiError(
        403,
        f"{what} is forbidden: {why}",
        "Forbidden",
        {"name": name, "group": group, "kind": plural},
    )


def forbidden_path(user: str, verb: str, path: str, reason: str = "") -> ApiError:
    """403 for a non-resource URL (discovery, /version, ...)."""
    why = f'User "{user}" cannot {verb} path "{path}"' + (f": {reason}" if reason else "")
    return ApiError(403, f"forbidden: {why}", "Forbidden", {})
