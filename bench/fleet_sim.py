"""SIMULATED nodes for the 500-node rollout of `bench.fleet`: stub activities and workflows.

The real `WindowsPool` and `UpgradeWindowsPool` run against these: `read_pool`, `observe_pool`,
`read_pool_node`, `pool_availability`, `write_pool_status`, `set_pool_spec`, `pool_finalizer`
read and change an in-memory pool (`SIM`), and `DecommissionWindowsNode` / `OnboardWindowsNode`
only remove a node or add one at a version. Nothing here touches a cluster, a cloud or a host:
it measures what the fleet workflows themselves write to history.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        DecommissionInput,
        DecommissionResult,
        HostAddress,
        HostRef,
        NodeName,
        OnboardNodeInput,
        OnboardNodeResult,
        Platform,
    )
    from activities.pool_contracts import (
        Availability,
        IntOrPercent,
        NodeView,
        PoolName,
        PoolObservation,
        PoolSpec,
    )
    from activities.pool_state import (
        AvailabilityInput,
        FinalizerInput,
        ObserveInput,
        PoolNodeInput,
        PoolRead,
        PoolRef,
        PoolStatus,
        SetPoolSpec,
    )
    from activities.schedules import ReconcileSchedule, ScheduleRef

NS = "winfleet"
STEP = timedelta(seconds=30)


class SimulatedPool:
    """The cluster as the stub activities see it: node name -> NodeView (SIMULATED)."""

    def __init__(self, name: str, size: int, budget: int) -> None:
        self.name = name
        self.spec = PoolSpec(
            name=PoolName(name),
            namespace=NS,
            platform=Platform.AWS,
            replicas=size,
            version="1.0.0",
            max_unhealthy=IntOrPercent(budget),
            generation=1,
        )
        self.nodes = {
            f"{name}-{i:05d}": NodeView(
                name=NodeName(f"{name}-{i:05d}"),
                ready="True",
                version="1.0.0",
                created=f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
                pool=name,
                address=f"10.0.{i // 250}.{i % 250}",
            )
            for i in range(size)
        }


SIM: dict[str, SimulatedPool] = {}


@activity.defn(name="read_pool")
async def sim_read_pool(inp: PoolRef) -> PoolRead:
    pool = SIM[inp.pool]
    return PoolRead(pool.spec, exists=True, generation=pool.spec.generation, finalized=True)


@activity.defn(name="observe_pool")
async def sim_observe_pool(inp: ObserveInput) -> PoolObservation:
    pool = SIM[inp.pool]
    return PoolObservation(
        found=True, nodes=tuple(pool.nodes.values()), generation=pool.spec.generation
    )


@activity.defn(name="read_pool_node")
async def sim_read_pool_node(inp: PoolNodeInput) -> NodeView | None:
    return SIM[inp.pool].nodes.get(inp.node)


@activity.defn(name="pool_availability")
async def sim_pool_availability(inp: AvailabilityInput) -> Availability:
    nodes = SIM[inp.pool].nodes
    up = [n for n in nodes.values() if n.available]
    return Availability(
        available=len(up),
        available_nodes=tuple(n for n in inp.nodes if n in nodes and nodes[n].available),
    )


@activity.defn(name="write_pool_status")
async def sim_write_pool_status(inp: PoolStatus) -> bool:
    return True


@activity.defn(name="set_pool_spec")
async def sim_set_pool_spec(inp: SetPoolSpec) -> int:
    pool = SIM[inp.pool]
    if inp.version:
        pool.spec = replace(pool.spec, version=inp.version, generation=pool.spec.generation + 1)
    return pool.spec.generation


@activity.defn(name="pool_finalizer")
async def sim_pool_finalizer(inp: FinalizerInput) -> bool:
    return False


@activity.defn(name="ensure_reconcile_schedule")
async def sim_ensure_reconcile_schedule(inp: ReconcileSchedule) -> bool:
    """No drift Schedule in this simulation: the history measured is the rollout's."""
    return False


@activity.defn(name="delete_reconcile_schedule")
async def sim_delete_reconcile_schedule(inp: ScheduleRef) -> bool:
    return False


@activity.defn(name="sim_node_change")
async def sim_node_change(change: list[str]) -> None:
    """`["remove", pool, node]` or `["add", pool, node, version]` on the simulated cluster."""
    pool = SIM[change[1]]
    if change[0] == "remove":
        pool.nodes.pop(change[2], None)
    else:
        pool.nodes[change[2]] = NodeView(
            name=NodeName(change[2]),
            ready="True",
            version=change[3],
            created="2026-06-01T00:00:00Z",
            pool=change[1],
            address="10.9.9.9",
        )


@workflow.defn(name="DecommissionWindowsNode")
class SimulatedDecommission:
    @workflow.run
    async def run(self, inp: DecommissionInput) -> DecommissionResult:
        await workflow.execute_activity(
            sim_node_change,
            ["remove", inp.pool, inp.node_name],
            start_to_close_timeout=STEP,
        )
        return DecommissionResult()


@workflow.defn(name="OnboardWindowsNode")
class SimulatedOnboard:
    @workflow.run
    async def run(self, inp: OnboardNodeInput) -> OnboardNodeResult:
        await workflow.execute_activity(
            sim_node_change,
            ["add", inp.pool, inp.node_name, inp.version],
            start_to_close_timeout=STEP,
        )
        return OnboardNodeResult(
            node_name=NodeName(inp.node_name),
            host=HostRef(platform=inp.platform, address=HostAddress("10.9.9.9"), username="x"),
            version=inp.version,
        )
