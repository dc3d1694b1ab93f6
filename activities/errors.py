"""The failures winfleet knows about, split by what the caller should do.

Retryable errors are worth another attempt under the activity's retry policy; permanent ones
stop the workflow and trigger compensation. Activities raise these; `to_application_error`
converts them at the activity boundary into Temporal's `ApplicationError` with the class name as
`type`, so workflows and retry policies match on names, not on Python classes.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError


class WinfleetError(Exception):
    """Base class. `retryable` says whether another attempt can help."""

    retryable: bool = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- retryable -------------------------------------------------------------------------------
class HostUnreachable(WinfleetError):
    """SSH connection refused/timed out: the VM may still be booting."""


class RemoteCommandFailed(WinfleetError):
    """A command on the Windows host exited non-zero or missed its success line."""


class TransferInterrupted(WinfleetError):
    """An SFTP transfer broke off; the next attempt resumes."""


class NodeNotReadyYet(WinfleetError):
    """The node (or its CSR, HNS network, annotation) is not there yet."""


class KubernetesUnavailable(WinfleetError):
    """The Kubernetes API answered 5xx/429 or could not be reached."""


class CloudUnavailable(WinfleetError):
    """The cloud API throttled or failed transiently."""


# --- permanent -------------------------------------------------------------------------------
class PermanentError(WinfleetError):
    retryable = False


class InvalidRequest(PermanentError):
    """The input cannot be acted on; nothing was changed."""


class SshAuthenticationFailed(PermanentError):
    """The host refused our key: the machine must be re-provisioned."""


class HostKeyMismatch(PermanentError):
    """The host presented a key other than the one pinned for it: possible impersonation."""


class UnsupportedWindowsBuild(PermanentError):
    """The host runs a Windows build winfleet does not support."""


class CsrRejected(PermanentError):
    """A CSR claiming to be this node failed validation and no valid one arrived."""


class CloudRequestRejected(PermanentError):
    """The cloud refused the request (bad image, quota, permissions)."""


class PayloadInvalid(PermanentError):
    """The local payload does not match its manifest."""


ALL_ERRORS: tuple[type[WinfleetError], ...] = (
    HostUnreachable,
    RemoteCommandFailed,
    TransferInterrupted,
    NodeNotReadyYet,
    KubernetesUnavailable,
    CloudUnavailable,
    InvalidRequest,
    SshAuthenticationFailed,
    HostKeyMismatch,
    UnsupportedWindowsBuild,
    CsrRejected,
    CloudRequestRejected,
    PayloadInvalid,
)

NON_RETRYABLE_TYPES: tuple[str, ...] = tuple(e.__name__ for e in ALL_ERRORS if not e.retryable)


def to_application_error(exc: WinfleetError) -> ApplicationError:
    """Convert at the activity boundary; `type` is the class name."""
    return ApplicationError(exc.message, type=type(exc).__name__, non_retryable=not exc.retryable)


UNEXPECTED_EXCERPT = 200
# Where a library's str() starts dumping the HTTP exchange (kubernetes ApiException, urllib3).
_DUMP_MARKERS = ("HTTP response headers", "HTTP response body", "Reason:", "Content:")


def _unexpected(exc: Exception) -> ApplicationError:
    """An exception no translator knew: its type and a short, dump-free excerpt; retryable."""
    text = str(exc)
    for marker in _DUMP_MARKERS:
        text = text.split(marker, 1)[0]
    first = " ".join(text.split())[:UNEXPECTED_EXCERPT]
    name = type(exc).__name__
    return ApplicationError(f"unexpected {name}: {first}".rstrip(": "), type=name)


P = ParamSpec("P")
R = TypeVar("R")


def boundary(
    fn: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    """Decorate an activity so its failures leave it as short `ApplicationError`s.

    Library exceptions are translated where they happen (one place per library). What reaches
    Temporal's history is only the translated message and the stack of frames: the cause chain
    (a library exception whose str() holds response headers and body) is cut here. Anything
    untranslated leaves as a retryable error named after its class, with a short excerpt.
    """

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except WinfleetError as exc:
            raise to_application_error(exc).with_traceback(exc.__traceback__) from None
        except ApplicationError:
            raise
        except Exception as exc:
            raise _unexpected(exc).with_traceback(exc.__traceback__) from None

    return wrapper
