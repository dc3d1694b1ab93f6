"""OpenTelemetry spans for the work inside activities (SSH commands, copies, API calls).

The worker installs the tracer provider and Temporal's tracing interceptor (which makes the
span per activity); this module only opens child spans. Attribute values are identifiers,
never secrets: callers pass node, host and phase, not keys or command output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

_tracer = trace.get_tracer("winfleet")

AttrValue = str | int | float | bool


@contextmanager
def span(name: str, **attributes: AttrValue | None) -> Iterator[Span]:
    """A child span; `None` attributes are dropped, failures mark the span as error."""
    attrs = {f"winfleet.{k}": v for k, v in attributes.items() if v is not None}
    with _tracer.start_as_current_span(name, attributes=attrs, record_exception=False) as s:
        try:
            yield s
        except BaseException as exc:
            s.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
