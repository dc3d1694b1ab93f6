"""`winfleet trace`: spans of one workflow become an indented timeline with durations."""

from __future__ import annotations

import json
from pathlib import Path

from worker.traces import load_spans, render, spans_of_workflow


def span(name: str, sid: str, parent: str | None, start: float, end: float, **attrs: str) -> dict:  # type: ignore[type-arg]
    return {
        "name": name, "trace_id": "t1", "span_id": sid, "parent_id": parent,
        "start_ns": int(start * 1e9), "end_ns": int(end * 1e9), "status": "UNSET",
        "attributes": attrs,
    }  # fmt: skip


def test_a_workflow_trace_renders_as_an_indented_timeline(tmp_path: Path) -> None:
    spans = [
        span("RunWorkflow:OnboardWindowsNode", "a", None, 10.0, 10.0, temporalWorkflowID="wf-1"),
        span("RunActivity:copy_payload", "b", "a", 11.0, 13.5, temporalWorkflowID="wf-1"),
        span("sftp put", "c", "b", 11.5, 13.0, **{"winfleet.path": "C:\\k\\kubelet.exe"}),
        span("HandleQuery:progress", "q", "a", 12.0, 12.0, temporalWorkflowID="wf-1"),
        {
            **span("RunActivity:other", "x", None, 1.0, 2.0, temporalWorkflowID="wf-2"),
            "trace_id": "t2",
        },
    ]
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in spans))

    mine = spans_of_workflow(load_spans(path), "wf-1")
    text = render(mine)

    lines = text.splitlines()[1:]
    assert [line.split()[2] for line in lines] == [
        "RunWorkflow:OnboardWindowsNode", "RunActivity:copy_payload", "sftp",
    ]  # fmt: skip
    assert "   1.000s    2.500s    RunActivity:copy_payload" in text
    assert "      sftp put  [path=C:\\k\\kubelet.exe]" in text
    assert "HandleQuery" not in text and "other" not in text


def test_an_unknown_workflow_says_so_instead_of_printing_nothing(tmp_path: Path) -> None:
    assert "no spans recorded" in render(spans_of_workflow(load_spans(tmp_path / "none"), "x"))
