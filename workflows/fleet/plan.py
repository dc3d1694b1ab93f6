"""The plan of a rolling upgrade: which nodes, in what order, in which batches, how long.

Nodes whose version annotation differs from the target are replaced; unavailable ones first
(they already use the budget, so replacing them costs nothing), then the oldest, then by name
for a stable order. Nodes being deleted are left to whoever deletes them. `dry_run_lines`
renders the plan for `winfleet upgrade --dry-run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from temporalio import workflow

from workflows.fleet.budget import why_unavailable

with workflow.unsafe.imports_passed_through():
    from activities.pool_contracts import NodeView


def upgrade_order(nodes: Iterable[NodeView], target_version: str) -> tuple[str, ...]:
    """Names of the nodes to replace, in the order to replace them."""
    todo = [n for n in nodes if n.version != target_version and not n.deleting]
    todo.sort(key=lambda n: (0 if why_unavailable(n) else 1, n.created, n.name))
    return tuple(n.name for n in todo)


def batches(order: Sequence[str], allowed_per_batch: int) -> tuple[tuple[str, ...], ...]:
    """`order` cut into batches of at most `allowed_per_batch` nodes."""
    if allowed_per_batch < 1:
        raise ValueError(f"a batch needs room for at least 1 node, not {allowed_per_batch}")
    return tuple(
        tuple(order[i : i + allowed_per_batch]) for i in range(0, len(order), allowed_per_batch)
    )


def estimate(plan: Sequence[Sequence[str]], replacement_seconds: float) -> float:
    """Seconds the batches take when each batch takes one replacement time."""
    return sum(1 for batch in plan if batch) * replacement_seconds


def format_duration(seconds: float) -> str:
    """`1h2m3s`, `4m10s`, `0s`: Go-style, whole seconds."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")


def dry_run_lines(
    pool: str,
    target_version: str,
    order: Sequence[str],
    plan: Sequence[Sequence[str]],
    replacement_seconds: float,
) -> tuple[str, ...]:
    """What `--dry-run` prints: the order, the batches and the estimated time."""
    if not order:
        return (f"pool {pool}: every node already runs {target_version}; nothing to do",)
    lines = [
        f"pool {pool}: {len(order)} node(s) to move to {target_version}",
        "order: " + ", ".join(order),
    ]
    lines += [f"batch {i}: {', '.join(batch)}" for i, batch in enumerate(plan, start=1)]
    eta = estimate(plan, replacement_seconds)
    lines.append(
        f"estimated time: {format_duration(eta)} "
        f"({len(plan)} batch(es) x {format_duration(replacement_seconds)} per replacement)"
    )
    return tuple(lines)
