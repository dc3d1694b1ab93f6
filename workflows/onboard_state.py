"""The onboarding workflow's one mutable state (shown by its `progress` query)."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import HostRef, Phase


@dataclass
class OnboardState:
    """The workflow's one mutable state; `progress` shows it."""

    node_name: str = ""
    phase: Phase | None = None
    completed: list[Phase] = field(default_factory=list)
    status: str = "running"
    detail: str = ""
    host: HostRef | None = None
    kubelet_started: bool = False
    bytes_copied: int = 0
