"""`winfleet upgrade --dry-run`: the plan a pool's settings give, the budgets that would block a
drain now, and what is printed."""

from __future__ import annotations

from typing import Any

import pytest

from activities.contracts import ByohHostSpec, Platform, PoolName
from activities.pool_contracts import (
    IntOrPercent,
    NodeView,
    PoolSpec,
    UpgradeSettings,
    UpgradeStrategy,
)
from worker.dry_run import (
    Blocker,
    ReplacementTime,
    blocking_budgets,
    mean_duration,
    plan_rollout,
    render,
    selects,
)


def nodes(count: int, version: str = "1.0.0") -> list[NodeView]:
    return [
        NodeView(f"p-{i:05d}", ready="True", version=version, created=f"2026-01-{i + 1:02d}")
        for i in range(count)
    ]


def pool(**kw: Any) -> PoolSpec:
    base: dict[str, Any] = {"name": PoolName("p"), "namespace": "winfleet"}
    base.setdefault("platform", Platform.AWS)
    return PoolSpec(**{**base, **kw})


@pytest.mark.parametrize(
    ("spec", "count", "sizes", "how"),
    [
        (pool(replicas=8, max_unhealthy=IntOrPercent(2)), 8, [2, 2, 2, 2], "2 node(s) down"),
        (pool(replicas=8, max_unhealthy=IntOrPercent(25, True)), 8, [2, 2, 2, 2], "25% of 8"),
        (pool(replicas=5, max_unhealthy=IntOrPercent(10, True)), 5, [1] * 5, "10% of 5"),
        (
            pool(
                replicas=4,
                max_unhealthy=IntOrPercent(0),
                upgrade=UpgradeSettings(max_surge=3),
            ),
            4,
            [3, 1],
            "maxSurge 3",
        ),
        (
            pool(
                replicas=6,
                max_unhealthy=IntOrPercent(2),
                upgrade=UpgradeSettings(canary=True),
            ),
            6,
            [1, 2, 2, 1],
            "canary",
        ),
        (
            pool(
                replicas=4,
                max_unhealthy=IntOrPercent(2),
                upgrade=UpgradeSettings(strategy=UpgradeStrategy.IN_PLACE, max_surge=2),
            ),
            4,
            [2, 2],
            "InPlace, 2 node(s) down",  # surge needs new machines: InPlace ignores it
        ),
        (
            pool(
                platform=Platform.BYOH,
                byoh_hosts=(ByohHostSpec("10.0.0.1"),),
                max_unhealthy=IntOrPercent(50, True),
            ),
            4,
            [2, 2],
            "50% of 4 replicas",  # BYOH: the pool's nodes are its replicas
        ),
    ],
)
def test_batches_follow_the_budget_surge_and_canary_of_the_pool(
    spec: PoolSpec, count: int, sizes: list[int], how: str
) -> None:
    plan = plan_rollout(spec, nodes(count), "1.1.0")
    assert [len(b) for b in plan.batches] == sizes
    assert how in plan.how
    assert [n for batch in plan.batches for n in batch] == list(plan.order)


def test_a_budget_that_rounds_down_to_no_node_is_called_out() -> None:
    spec = pool(replicas=5, max_unhealthy=IntOrPercent(10, True))
    lines = render(plan_rollout(spec, nodes(5), "1.1.0"), ReplacementTime(60, "measured"), [])
    warning = [line for line in lines if line.startswith("warning:")]
    assert warning == [
        "warning: the rollout would wait: maxUnhealthy 10% (10% of 5 replicas rounds down to 0) "
        "lets no node be taken down while maxSurge is 0: use at least 1, or set maxSurge ≥ 1 first"
    ]
    fine = pool(replicas=5, max_unhealthy=IntOrPercent(20, True))
    assert not plan_rollout(fine, nodes(5), "1.1.0").problem


def test_a_pool_already_on_the_target_has_an_empty_plan() -> None:
    plan = plan_rollout(pool(replicas=2), nodes(2, "1.1.0"), "1.1.0")
    assert plan.order == () and plan.batches == ()
    lines = render(plan, ReplacementTime(900, "the default"), [])
    assert lines == [
        "pool p: every node already runs 1.1.0; nothing to do",
        "dry run: nothing was changed",
    ]


@pytest.mark.parametrize(
    ("selector", "labels", "picked"),
    [
        (None, {"app": "db"}, False),  # null selects nothing
        ({}, {"app": "db"}, True),  # {} selects every pod of the namespace (policy/v1)
        ({"matchLabels": {"app": "db"}}, {"app": "db", "tier": "x"}, True),
        ({"matchLabels": {"app": "db"}}, {"app": "web"}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "x"]}]},
         {"app": "x"}, True),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}, {}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}, {}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]},
         {"app": "db"}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {"app": ""}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {"app": "a"}, False),
        ({"matchLabels": {"app": "db"},
          "matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"app": "db"}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}, {"app": "2"},
         False),
    ],
)  # fmt: skip
def test_label_selectors_select_as_the_api_server_does(
    selector: dict[str, Any] | None, labels: dict[str, str], picked: bool
) -> None:
    assert selects(selector, labels) is picked


def running_pod(
    name: str, node: str, labels: dict[str, str], ns: str = "apps", **meta: Any
) -> dict[str, Any]:
    phase = meta.pop("phase", "Running")
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels, **meta},
        "spec": {"nodeName": node},
        "status": {"phase": phase},
    }


def budget(name: str, selector: dict[str, Any] | None, allowed: int | None, ns: str = "apps"):  # type: ignore[no-untyped-def]
    status = {} if allowed is None else {"disruptionsAllowed": allowed}
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector},
            "status": status}  # fmt: skip


DB = {"matchLabels": {"app": "db"}}
DS_OWNER = [{"kind": "DaemonSet", "name": "exporter", "controller": True}]


@pytest.mark.parametrize(
    ("budgets", "pods", "expected"),
    [
        # a budget at 0 with a pod on a planned node blocks; one that allows a disruption does not
        ([budget("db", DB, 0), budget("web", {"matchLabels": {"app": "web"}}, 1)],
         [running_pod("db-0", "p-1", {"app": "db"}), running_pod("web-0", "p-1", {"app": "web"})],
         [Blocker("apps/db", ("apps/db-0 on p-1",))]),
        # a status the disruption controller has not written yet blocks, as eviction does
        ([budget("db", DB, None)], [running_pod("db-0", "p-1", {"app": "db"})],
         [Blocker("apps/db", ("apps/db-0 on p-1",))]),
        # same labels in another namespace: not this budget's pods
        ([budget("db", DB, 0, ns="other")], [running_pod("db-0", "p-1", {"app": "db"})], []),
        # pods a drain leaves alone or need not evict: DaemonSet, mirror, finished, leaving
        ([budget("all", {}, 0)],
         [running_pod("ds", "p-1", {}, ownerReferences=DS_OWNER),
          running_pod("mirror", "p-1", {}, annotations={"kubernetes.io/config.mirror": "x"}),
          running_pod("job", "p-1", {}, phase="Succeeded"),
          running_pod("pending", "p-1", {}, phase="Pending"),
          running_pod("gone", "p-1", {}, deletionTimestamp="2026-01-01T00:00:00Z")],
         []),
        # several pods of one budget on several nodes: named together, sorted
        ([budget("db", DB, 0)],
         [running_pod("db-1", "p-2", {"app": "db"}), running_pod("db-0", "p-1", {"app": "db"})],
         [Blocker("apps/db", ("apps/db-0 on p-1", "apps/db-1 on p-2"))]),
        # a null selector protects nothing
        ([budget("none", None, 0)], [running_pod("db-0", "p-1", {"app": "db"})], []),
    ],
)  # fmt: skip
def test_budgets_that_allow_no_disruption_and_select_a_pod_to_evict_block(
    budgets: list[dict[str, Any]], pods: list[dict[str, Any]], expected: list[Blocker]
) -> None:
    assert blocking_budgets(budgets, pods) == expected


def test_the_printout_names_order_batches_time_strategy_and_blockers() -> None:
    spec = pool(replicas=3, max_unhealthy=IntOrPercent(2))
    plan = plan_rollout(spec, nodes(3), "1.1.0")
    lines = render(
        plan,
        ReplacementTime(240.0, "the mean of the pool's last 3 completed onboarding(s)"),
        [Blocker("apps/db", ("apps/db-0 on p-00000",))],
    )
    assert lines == [
        "pool p: 3 node(s) to move to 1.1.0",
        "order: p-00000, p-00001, p-00002",
        "batch 1: p-00000, p-00001",
        "batch 2: p-00002",
        "estimated time: 8m (2 batch(es) x 4m per replacement)",
        "strategy: Replace, 2 node(s) down at a time (maxUnhealthy 2 of 3 replicas)",
        "replacement time: 4m, the mean of the pool's last 3 completed onboarding(s)",
        "PodDisruptionBudgets that would block a drain now (disruptionsAllowed 0):",
        "  apps/db: apps/db-0 on p-00000",
        "dry run: nothing was changed",
    ]


def test_the_replacement_time_is_the_mean_of_what_was_measured() -> None:
    assert mean_duration([100.0, 200.0, 300.0]) == 200.0
    assert mean_duration([]) is None
