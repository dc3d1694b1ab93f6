"""`winfleet trace <workflow-id>`: a trace as an indented timeline with durations.

Reads the JSON-lines span file written by worker.telemetry; finds every trace that holds a span
of the workflow (Temporal's interceptor tags spans with `temporalWorkflowID`), then prints the
span tree ordered by start time.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Span = dict[str, Any]


def load_spans(path: Path) -> list[Span]:
    if not path.exists():
        return []
    spans = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                spans.append(json.loads(line))
    return spans


def spans_of_workflow(spans: Iterable[Span], workflow_id: str) -> list[Span]:
    spans = list(spans)
    traces = {
        s["trace_id"]
        for s in spans
        if s.get("attributes", {}).get("temporalWorkflowID") == workflow_id
    }
    return [s for s in spans if s["trace_id"] in traces]


def activity_names_in_order(spans: Iterable[Span]) -> list[str]:
    """Activity types of the `RunActivity:*` spans, by start time (retries appear twice)."""
    runs = sorted((s for s in spans if s["name"].startswith("RunActivity:")), key=_start)
    return [s["name"].split(":", 1)[1] for s in runs]


def _start(span: Span) -> int:
    return int(span.get("start_ns") or 0)


def render(spans: list[Span]) -> str:
    # Progress queries are read-only polling by `winfleet onboard`: not steps of the onboarding.
    spans = [s for s in spans if not s["name"].startswith("HandleQuery:")]
    if not spans:
        return "no spans recorded for that workflow (is WINFLEET_TRACE_FILE the worker's?)"
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str | None, list[Span]] = defaultdict(list)
    for s in spans:
        parent = s.get("parent_id")
        children[parent if parent in by_id else None].append(s)
    t0 = min(_start(s) for s in spans)
    lines: list[str] = []

    def walk(span: Span, depth: int) -> None:
        start = (_start(span) - t0) / 1e9
        dur = ((span.get("end_ns") or _start(span)) - _start(span)) / 1e9
        attrs = span.get("attributes", {})
        detail = " ".join(
            f"{k.removeprefix('winfleet.')}={v}"
            for k, v in attrs.items()
            if k.startswith("winfleet.") and k not in ("winfleet.node",)
        )
        mark = " ERROR" if span.get("status") == "ERROR" else ""
        lines.append(
            f"{start:8.3f}s {dur:8.3f}s  {'  ' * depth}{span['name']}{mark}"
            + (f"  [{detail}]" if detail else "")
        )
        for child in sorted(children.get(span["span_id"], []), key=_start):
            walk(child, depth + 1)

    for root in sorted(children[None], key=_start):
        walk(root, 0)
    header = f"{'start':>9} {'duration':>9}  span"
    return "\n".join([header, *lines])
