"""Every onboarding step is bounded in total, and the README's time-bound table says the truth."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from workflows import policies

README = Path(__file__).resolve().parents[2] / "README.md"

# README row (first cell) -> the step policy it documents
ROWS = {
    "claim, preflight": policies.CLAIM_STEP,
    "vm-create": policies.VM_CREATE_STEP,
    "wait-ssh": policies.WAIT_SSH_STEP,
    "copy-payload": policies.COPY_PAYLOAD_STEP,
    "configure-kubelet, cni": policies.REMOTE_STEP,
    "approve-csrs": policies.CSR_STEP,
    "hybrid-overlay (each of its 3 steps), kube-proxy, node-ready": policies.NETWORK_STEP,
    "finalize": policies.KUBE_CALL_STEP,
    "each compensation step (deconfigure: 15 min, 3 attempts)": policies.UNDO_STEP,
}


def minutes(cell: str) -> timedelta:
    m = re.match(r"(\d+) min", cell.strip())
    assert m, cell
    return timedelta(minutes=int(m.group(1)))


def readme_rows() -> dict[str, tuple[str, str]]:
    text = README.read_text()
    table = text[text.index("### Time bounds") :]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].endswith("min"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


@pytest.mark.parametrize("row", sorted(ROWS))
def test_the_readme_states_each_steps_bounds(row: str) -> None:
    attempt, total = readme_rows()[row]
    step = ROWS[row]
    assert minutes(attempt) == step.attempt
    assert minutes(total.split(" each")[0]) == step.total


def test_every_step_is_bounded_in_total_beyond_one_attempt() -> None:
    steps = [v for v in vars(policies).values() if isinstance(v, policies.Step)]
    assert len(steps) >= 10
    for step in steps:
        assert step.attempt <= step.total < timedelta(hours=1)
    assert policies.NODE_READY_STEP == policies.NETWORK_STEP  # one README row for both
    assert policies.PREFLIGHT_STEP == policies.CLAIM_STEP
    assert policies.DECONFIGURE_UNDO_STEP.total == timedelta(minutes=15)
    assert policies.DECONFIGURE_UNDO_STEP.retry.maximum_attempts == 3
