"""Reading the failures activities and children end with: their own type, message and advice.

Used by the onboarding and decommission workflows to say what failed and what to do.
"""

from __future__ import annotations

import asyncio

from temporalio.exceptions import ApplicationError, CancelledError

from workflows import policies


def cause(err: BaseException) -> tuple[str, str]:
    """Type and message of the activity's own error: the outermost application error.

    (Deeper causes are library exceptions the activity translated, e.g. asyncssh's.)
    """
    current: BaseException | None = err
    while current is not None:
        if isinstance(current, ApplicationError):
            return current.type or "", current.message
        current = current.__cause__
    return "", str(err)


def describe(err: BaseException) -> str:
    if isinstance(err, CancelledError | asyncio.CancelledError):
        return "cancelled"
    cause_type, message = cause(err)
    return f"{cause_type}: {message}" if cause_type else message


def advice(cause_type: str) -> str:
    """What an admin should do about an error of this type."""
    return policies.ADVICE.get(cause_type, "see the workflow history and `winfleet trace`")
