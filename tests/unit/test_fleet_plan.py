"""The rollout plan: which nodes, in what order, in which batches, and how long it takes."""

from __future__ import annotations

import pytest

from activities.pool_contracts import NodeView
from workflows.fleet.plan import batches, dry_run_lines, estimate, format_duration, upgrade_order


def node(name: str, version: str, created: str, ready: str = "True", **kw: object) -> NodeView:
    return NodeView(name, ready=ready, version=version, created=created, **kw)  # type: ignore[arg-type]


NODES = [
    node("web-b", "1.0.0", "2026-01-02T00:00:00Z"),
    node("web-a", "1.0.0", "2026-01-02T00:00:00Z"),
    node("web-c", "1.0.0", "2026-01-01T00:00:00Z"),
    node("web-d", "1.1.0", "2025-12-01T00:00:00Z"),  # already on the target
    node("web-e", "1.0.0", "2026-01-03T00:00:00Z", ready="False"),
    node("web-f", "1.0.0", "2025-06-01T00:00:00Z", deleting=True),
    node("web-g", "", "2026-01-04T00:00:00Z", unschedulable=True),
]


def test_unhealthy_nodes_come_first_then_the_oldest_then_by_name() -> None:
    assert upgrade_order(NODES, "1.1.0") == ("web-e", "web-g", "web-c", "web-a", "web-b")


def test_nodes_on_the_target_and_nodes_being_deleted_are_not_in_the_plan() -> None:
    order = upgrade_order(NODES, "1.1.0")
    assert "web-d" not in order and "web-f" not in order
    assert upgrade_order(NODES, "1.0.0") == ("web-g", "web-d")


@pytest.mark.parametrize(
    ("order", "size", "expected"),
    [
        (("a", "b", "c", "d", "e"), 2, (("a", "b"), ("c", "d"), ("e",))),
        (("a", "b"), 4, (("a", "b"),)),
        (("a", "b", "c"), 1, (("a",), ("b",), ("c",))),
        ((), 3, ()),
    ],
)
def test_the_order_is_cut_into_batches_the_budget_allows(
    order: tuple[str, ...], size: int, expected: tuple[tuple[str, ...], ...]
) -> None:
    assert batches(order, size) == expected


def test_a_batch_size_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        batches(("a",), 0)


@pytest.mark.parametrize(
    ("plan", "seconds", "eta"),
    [
        ((("a", "b"), ("c",)), 300.0, 600.0),
        ((), 300.0, 0.0),
        (tuple((f"n{i}",) for i in range(20)), 60.0, 1200.0),  # WMCO's budget of 1: 20 x T
        (tuple(tuple(f"n{i}" for i in range(j, j + 4)) for j in range(0, 20, 4)), 60.0, 300.0),
    ],
)
def test_the_estimate_is_one_replacement_time_per_batch(
    plan: tuple[tuple[str, ...], ...], seconds: float, eta: float
) -> None:
    assert estimate(plan, seconds) == eta


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59.6, "1m"), (250, "4m10s"), (3723, "1h2m3s"), (7200, "2h")]
)
def test_durations_read_like_go_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_dry_run_shows_order_batches_and_estimated_time() -> None:
    order = upgrade_order(NODES, "1.1.0")
    lines = dry_run_lines("web", "1.1.0", order, batches(order, 2), 250)
    assert lines == (
        "pool web: 5 node(s) to move to 1.1.0",
        "order: web-e, web-g, web-c, web-a, web-b",
        "batch 1: web-e, web-g",
        "batch 2: web-c, web-a",
        "batch 3: web-b",
        "estimated time: 12m30s (3 batch(es) x 4m10s per replacement)",
    )


def test_the_dry_run_of_an_up_to_date_pool_says_there_is_nothing_to_do() -> None:
    assert dry_run_lines("web", "1.1.0", (), (), 250) == (
        "pool web: every node already runs 1.1.0; nothing to do",
    )
