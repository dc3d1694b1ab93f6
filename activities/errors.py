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
    # What an admin should do when this error stops a workflow (shown in its failure).
    advice: str = "see the workflow history and `winfleet trace`"

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

    advice = "fix the input and start again"


class SshAuthenticationFailed(PermanentError):
    """The host refused our key: the machine must be re-provisioned."""

    advice = (
        "re-provision the VM with winfleet's public key (the key Secret named in the input) "
        "in administrators_authorized_keys"
    )


class HostKeyMismatch(PermanentError):
    """The host presented a key other than the one pinned for it: possible impersonation."""

    advice = (
        "verify the host is the one you expect; if it was legitimately reinstalled, remove its "
        "entry from ConfigMap windows-ssh-host-keys"
    )


class UnsupportedWindowsBuild(PermanentError):
    """The host runs a Windows build winfleet does not support."""

    advice = (
        "use a Windows Server 2019 (10.0.17763) or 2022 (10.0.20348) image, or extend "
        "WINFLEET_SUPPORTED_BUILDS"
    )


class CsrRejected(PermanentError):
    """A CSR claiming to be this node failed validation and no valid one arrived."""

    advice = "inspect the CSRRefused events; a forged or misconfigured kubelet asked"


class CloudRequestRejected(PermanentError):
    """The cloud refused the request (bad image, quota, permissions)."""

    advice = "check the image, subnet, quota and permissions in the machine spec"


class PayloadInvalid(PermanentError):
    """The local payload does not match its manifest."""

    advice = "the worker's payload does not match its sha256sum manifest: reinstall it"


class NodeNameClaimed(PermanentError):
    """Another running workflow holds the node name; nothing was changed."""

    advice = "wait for the other run to end (or cancel it), then start again"


class DrainTimedOut(PermanentError):
    """Pods could not be evicted within the drain timeout (budgets named in the message)."""

    advice = "free the PodDisruptionBudgets named (scale the workloads up) or drain with force"


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
    NodeNameClaimed,
    DrainTimedOut,
)

NON_RETRYABLE_TYPES: tuple[str, ...] = tuple(e.__name__ for e in ALL_ERRORS if not e.retryable)
ADVICE: dict[str, str] = {e.__name__: e.advice for e in ALL_ERRORS}


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
