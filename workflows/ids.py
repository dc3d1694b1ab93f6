"""Workflow IDs: one scheme, so every entry point (CLI, watcher, Web UI examples) agrees.

An ID names the thing a workflow changes, so starting the same work twice joins or is refused
instead of running twice (Temporal keeps one running execution per ID).
"""

from __future__ import annotations


def onboard(pool: str, node: str) -> str:
    return f"onboard-{pool}-{node}"


def decommission(pool: str, node: str) -> str:
    return f"decommission-{pool}-{node}"


def pool(name: str) -> str:
    return f"pool-{name}"


def upgrade(pool: str) -> str:
    return f"upgrade-{pool}"


def reconcile(pool: str) -> str:
    return f"reconcile-{pool}"
