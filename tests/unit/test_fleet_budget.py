"""The disruption budget: what counts as unavailable and how many more nodes may go down."""

from __future__ import annotations

import pytest

from activities.pool_contracts import IntOrPercent, NodeView
from workflows.fleet.budget import (
    Unavailable,
    allowed_disruptions,
    unavailable,
    unavailable_count,
    validate_max_unhealthy,
)


def ready(name: str, **kw: object) -> NodeView:
    return NodeView(name, ready="True", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("nodes", "desired", "expected"),
    [
        ([ready("a"), ready("b")], 2, []),
        ([ready("a"), NodeView("b", ready="False")], 2, [Unavailable("b", "NotReady")]),
        ([ready("a"), NodeView("b", ready="Unknown")], 2, [Unavailable("b", "Unknown")]),
        ([ready("a", unschedulable=True), ready("b")], 2, [Unavailable("a", "cordoned")]),
        ([ready("a", deleting=True), ready("b")], 2, [Unavailable("a", "deleting")]),
        (
            [ready("a")],
            3,
            [Unavailable("", "missing"), Unavailable("", "missing")],
        ),
        (
            [NodeView("a", ready="False", unschedulable=True)],
            2,
            [Unavailable("a", "NotReady"), Unavailable("", "missing")],
        ),
    ],
)
def test_unavailable_nodes_and_missing_replicas_are_listed_with_their_reason(
    nodes: list[NodeView], desired: int, expected: list[Unavailable]
) -> None:
    assert unavailable(nodes, desired) == expected
    assert unavailable_count(nodes, desired) == len(expected)


def test_a_ready_surge_node_makes_up_for_the_old_node_being_replaced() -> None:
    nodes = [ready("old", unschedulable=True), ready("b"), ready("c"), ready("surge")]
    assert unavailable(nodes, 3) == [Unavailable("old", "cordoned")]
    assert unavailable_count(nodes, 3) == 0  # ready capacity is still 3 of 3


def test_a_surge_node_still_starting_makes_up_for_nothing() -> None:
    nodes = [ready("a"), ready("b"), ready("c"), NodeView("surge", ready="False")]
    assert unavailable_count(nodes, 3) == 0
    assert unavailable_count([*nodes[:2], nodes[3]], 3) == 1


@pytest.mark.parametrize(
    ("budget", "desired", "down", "in_flight", "allowed"),
    [
        (IntOrPercent(2), 8, 0, 0, 2),
        (IntOrPercent(2), 8, 1, 0, 1),  # a NotReady node uses the budget
        (IntOrPercent(2), 8, 1, 1, 0),
        (IntOrPercent(2), 8, 3, 0, 0),  # never negative
        (IntOrPercent(25, percent=True), 8, 0, 1, 1),
        (IntOrPercent(25, percent=True), 3, 0, 0, 0),  # 0.75 rounds down
        (IntOrPercent(0), 3, 0, 0, 0),
    ],
)
def test_allowed_disruptions_is_the_budget_less_what_is_down_and_in_flight(
    budget: IntOrPercent, desired: int, down: int, in_flight: int, allowed: int
) -> None:
    assert allowed_disruptions(budget, desired, down, in_flight) == allowed


@pytest.mark.parametrize(
    ("value", "replicas", "max_surge"),
    [(1, 3, 0), (3, 3, 0), (0, 3, 1), ("25%", 8, 0), ("100%", 3, 0), ("0%", 3, 1), ("10%", 3, 1)],
)
def test_sensible_max_unhealthy_values_are_accepted(
    value: int | str, replicas: int, max_surge: int
) -> None:
    assert validate_max_unhealthy(value, replicas, max_surge) is None


@pytest.mark.parametrize(
    ("value", "replicas", "max_surge", "message"),
    [
        (-1, 3, 0, "maxUnhealthy -1 is negative"),
        (4, 3, 0, "maxUnhealthy 4 is more than the pool's 3 replicas"),
        (0, 3, 0, "maxUnhealthy 0 lets no node be taken down while maxSurge is 0"),
        ("150%", 3, 0, 'maxUnhealthy "150%" is more than 100%'),
        ("0%", 3, 0, "maxUnhealthy 0% (0% of 3 replicas rounds down to 0) lets no node"),
        ("25%", 3, 0, "maxUnhealthy 25% (25% of 3 replicas rounds down to 0)"),
        ("two", 3, 0, 'maxUnhealthy must be a whole number or a percentage like "25%", not "two"'),
        ("2", 3, 0, 'not "2"'),
        (1.5, 3, 0, "not 1.5"),
        (True, 3, 0, "not True"),
    ],
)
def test_nonsense_max_unhealthy_values_are_rejected_with_a_clear_message(
    value: object, replicas: int, max_surge: int, message: str
) -> None:
    rejection = validate_max_unhealthy(value, replicas, max_surge)  # type: ignore[arg-type]
    assert rejection is not None and message in rejection
