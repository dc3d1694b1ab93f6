"""The series the Grafana dashboard (deploy/monitoring/grafana-dashboard.json) queries."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "monitoring" / "grafana-dashboard.json"
# PromQL words that look like metric names but are functions, keywords or label names
_NOT_SERIES = {
    "sum", "max", "min", "count", "avg", "by", "without", "rate", "increase",
    "histogram_quantile", "clamp_min", "le", "on", "ignoring",
}  # fmt: skip


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]


def series(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers and strings removed)."""
    bare = re.sub(r'"[^"]*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\b(by|without)\s*\([^)]*\)", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    found = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    return {n for n in found if n not in _NOT_SERIES and not n[0].isdigit()}


def family(name: str) -> str:
    """The family a sample name belongs to (`x_bucket` -> `x`, `x_total` -> `x`)."""
    for suffix in ("_bucket", "_count", "_sum", "_total", "_created"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name
