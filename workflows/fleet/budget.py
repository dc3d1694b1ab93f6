"""The disruption budget of a pool: who is unavailable, how many more may go down.

A node is unavailable while NotReady/Unknown, cordoned (spec.unschedulable) or being deleted;
a desired replica with no node at all is unavailable too ("missing"). Nodes beyond the desired
count (a surge replacement) make up for unavailable ones, as Cluster API counts availability
against the desired replicas: with `maxSurge: 1, maxUnhealthy: 0` an old node may go once its
replacement is Ready. `maxUnhealthy` is a count or a percentage of the desired replicas
(rounded down).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.pool_contracts import IntOrPercent, NodeView

_PERCENT = re.compile(r"^\d{1,3}%$")


@dataclass(frozen=True)
class Unavailable:
    node: str  # "" for a missing replica
    reason: str  # NotReady | Unknown | cordoned | deleting | missing


def why_unavailable(node: NodeView) -> str:
    """The reason `node` is unavailable, or "" if it is available."""
    if node.deleting:
        return "deleting"
    if node.ready != "True":
        return "Unknown" if node.ready == "Unknown" else "NotReady"
    if node.unschedulable:
        return "cordoned"
    return ""


def unavailable(nodes: Iterable[NodeView], desired: int) -> list[Unavailable]:
    """Every unavailable node (by name) and every missing replica, nodes first."""
    listed = list(nodes)
    down = [Unavailable(n.name, r) for n in listed if (r := why_unavailable(n))]
    missing = max(0, desired - len(listed))
    return down + [Unavailable("", "missing")] * missing


def unavailable_count(nodes: Iterable[NodeView], desired: int) -> int:
    """How many of the `desired` replicas are not available now (surplus nodes make up)."""
    available = sum(1 for n in nodes if not why_unavailable(n))
    return max(0, desired - available)


def allowed_disruptions(
    max_unhealthy: IntOrPercent, desired: int, unavailable_now: int, in_flight: int
) -> int:
    """How many more nodes may be taken down now.

    `unavailable_now` comes from the node list (`unavailable_count`); `in_flight` are
    disruptions already granted that the node list does not show yet (a granted node that is
    already cordoned is counted in `unavailable_now`: do not count it twice).
    """
    return max(0, max_unhealthy.resolve(desired) - unavailable_now - in_flight)


def validate_max_unhealthy(value: int | str, replicas: int, max_surge: int) -> str | None:
    """Why `value` cannot be a pool's maxUnhealthy, or None if it can.

    An integer from 0 to `replicas` (0 only while maxSurge ≥ 1, else no node could ever be
    replaced), or a percentage from 0 % to 100 % (one that leaves no node to take down needs
    maxSurge ≥ 1 as well).
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return f'maxUnhealthy must be a whole number or a percentage like "25%", not {value!r}'
    if isinstance(value, str) and not _PERCENT.match(value):
        return f'maxUnhealthy must be a whole number or a percentage like "25%", not "{value}"'
    try:
        parsed = IntOrPercent.parse(value)
    except ValueError as exc:
        return f"maxUnhealthy {exc}"
    if not parsed.percent and parsed.value > replicas:
        return f"maxUnhealthy {parsed} is more than the pool's {replicas} replicas"
    if parsed.resolve(replicas) == 0 and max_surge < 1:
        rounded = f" ({parsed} of {replicas} replicas rounds down to 0)" if parsed.percent else ""
        return (
            f"maxUnhealthy {parsed}{rounded} lets no node be taken down while maxSurge is 0: "
            "use at least 1, or set maxSurge ≥ 1 first"
        )
    return None
