"""maxUnhealthy as a count or a percentage: parsing and resolving against a pool's size."""

from __future__ import annotations

import pytest

from activities.pool_contracts import IntOrPercent, NodeView


@pytest.mark.parametrize(
    ("raw", "parsed", "shown"),
    [
        (3, IntOrPercent(3), "3"),
        (0, IntOrPercent(0), "0"),
        ("25%", IntOrPercent(25, percent=True), "25%"),
        ("100%", IntOrPercent(100, percent=True), "100%"),
        ("0%", IntOrPercent(0, percent=True), "0%"),
    ],
)
def test_counts_and_percentages_parse_and_print_back(
    raw: int | str, parsed: IntOrPercent, shown: str
) -> None:
    assert IntOrPercent.parse(raw) == parsed
    assert str(parsed) == shown


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (-1, "-1 is negative"),
        ("150%", '"150%" is more than 100%'),
        ("half", '"half" is neither a count nor a percentage like "25%"'),
        ("2.5%", '"2.5%" is neither a count nor a percentage like "25%"'),
        ("3", '"3" is neither a count nor a percentage like "25%"'),
        (True, "True is neither a count nor a percentage"),
    ],
)
def test_nonsense_budgets_are_refused_with_a_reason(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("%", "%").replace(".", r"\.")):
        IntOrPercent.parse(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("budget", "total", "count"),
    [
        (IntOrPercent(2), 8, 2),
        (IntOrPercent(2), 0, 2),
        (IntOrPercent(25, percent=True), 8, 2),
        (IntOrPercent(25, percent=True), 7, 1),  # 1.75 rounds down, as Cluster API's
        (IntOrPercent(25, percent=True), 3, 0),
        (IntOrPercent(100, percent=True), 5, 5),
        (IntOrPercent(10, percent=True), 0, 0),
        (IntOrPercent(-3), 4, 0),  # never below 0
    ],
)
def test_a_budget_resolves_to_a_count_rounding_percentages_down(
    budget: IntOrPercent, total: int, count: int
) -> None:
    assert budget.resolve(total) == count


@pytest.mark.parametrize(
    ("node", "available"),
    [
        (NodeView("a", ready="True"), True),
        (NodeView("a", ready="False"), False),
        (NodeView("a", ready="Unknown"), False),
        (NodeView("a", ready="True", unschedulable=True), False),
        (NodeView("a", ready="True", deleting=True), False),
    ],
)
def test_a_node_is_available_only_when_ready_schedulable_and_staying(
    node: NodeView, available: bool
) -> None:
    assert node.available is available
