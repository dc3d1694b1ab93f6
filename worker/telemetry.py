"""Tracing and logging set-up for the worker and the CLI.

Spans go over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else to a local JSON-lines
file (`WINFLEET_TRACE_FILE`, default `.state/traces.jsonl`) that `winfleet trace` reads.
Logs are JSON lines when `WINFLEET_LOG_FORMAT=json` (production), plain text otherwise. A JSON
line carries, where known, the workflow ID, run ID, workflow and activity type, node, phase and
trace/span IDs (`LogContext` tracks node and phase per activity), so a log line joins its span
(`trace_id`) and its workflow step (`workflow_id`, `run_id`, `activity`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

DEFAULT_TRACE_FILE = ".state/traces.jsonl"


def trace_file() -> Path:
    return Path(os.environ.get("WINFLEET_TRACE_FILE", DEFAULT_TRACE_FILE))


class JsonLinesSpanExporter(SpanExporter):
    """One JSON object per finished span, appended to a file (safe across processes)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_record(s), separators=(",", ":")) + "\n" for s in spans]
        with self._lock, self._path.open("a", encoding="utf-8") as f:
            f.write("".join(lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def span_record(span: ReadableSpan) -> dict[str, object]:
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else "",
        "span_id": f"{ctx.span_id:016x}" if ctx else "",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "service": (span.resource.attributes.get("service.name") if span.resource else None),
    }


_provider: TracerProvider | None = None


def setup_tracing(service_name: str, *, synchronous: bool = False) -> TracerProvider:
    """Install the global tracer provider once per process."""
    global _provider
    if _provider is not None:
        return _provider
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter: SpanExporter
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = JsonLinesSpanExporter(trace_file())
    processor = SimpleSpanProcessor(exporter) if synchronous else BatchSpanProcessor(exporter)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.shutdown()


# The activities of each onboarding phase (workflows/onboard.py), and the checks before them.
PHASES = {
    "claim_node": "preflight",
    "preflight_node": "preflight",
    "create_vm": "vm-create",
    "wait_for_ssh": "wait-ssh",
    "copy_payload": "copy-payload",
    "configure_kubelet": "configure-kubelet",
    "approve_node_csrs": "approve-csrs",
    "wait_node_annotation": "hybrid-overlay",
    "start_hybrid_overlay": "hybrid-overlay",
    "configure_cni": "cni",
    "start_kube_proxy": "kube-proxy",
    "wait_node_ready": "node-ready",
    "finalize_node": "node-ready",
}
ONBOARDING = "OnboardWindowsNode"

# node and phase of the activity this task runs (set by LogContext, read by JsonFormatter)
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "winfleet_log_context", default=None
)


def node_of(arg: object) -> str:
    """The node an activity input is about: its `node_name`, or its host's."""
    name = getattr(arg, "node_name", "") or getattr(getattr(arg, "host", None), "node_name", "")
    return name if isinstance(name, str) else ""


class LogContext(Interceptor):
    """Worker interceptor: while an activity runs, its log lines carry its node and phase."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _LogContextInbound(next)


class _LogContextInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        fields = {"node": node_of(input.args[0]) if input.args else ""}
        if info.workflow_type == ONBOARDING and info.activity_type in PHASES:
            fields["phase"] = PHASES[info.activity_type]
        token = _context.set(fields)
        try:
            return await super().execute_activity(input)
        finally:
            _context.reset(token)


def _temporal_fields(record: logging.LogRecord) -> dict[str, object]:
    """IDs the Temporal SDK's loggers put on a record (`temporal_activity`/`_workflow`)."""
    out: dict[str, object] = {}
    for key in ("temporal_activity", "temporal_workflow"):
        info = getattr(record, key, None)
        if isinstance(info, dict):
            for src, dst in (
                ("workflow_id", "workflow_id"),
                ("workflow_run_id", "run_id"),
                ("run_id", "run_id"),
                ("workflow_type", "workflow_type"),
                ("activity_type", "activity"),
                ("attempt", "attempt"),
            ):
                if info.get(src) is not None:
                    out[dst] = info[src]
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_temporal_fields(record))
        entry.update({k: v for k, v in (_context.get() or {}).items() if v})
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = f"{span.trace_id:032x}"
            entry["span_id"] = f"{span.span_id:016x}"
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)[-2000:]
        return json.dumps(entry)


def setup_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("WINFLEET_LOG_FORMAT", "text") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("WINFLEET_LOG_LEVEL", "INFO"))
    # asyncssh logs every channel at INFO; keep it for debugging only.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
