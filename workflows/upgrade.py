"""`UpgradeWindowsPool`: the rolling upgrade of one pool (workflow ID `upgrade-<pool>`).

The deck's algorithm, durable and visible: every node whose version annotation differs from the
target is replaced (Replace: drain, delete the Node and VM, onboard a new node at the target
version; with `maxSurge` the new node comes first so capacity never drops; InPlace — BYOH pools
always — drain, deconfigure and configure the same host again). Unhealthy nodes go first, then
the oldest (workflows/fleet/plan.py); the plan is frozen when the rollout starts, and a new
`spec.version` set meanwhile is rolled out after this one (continue-as-new), so no node is
replaced twice in a row needlessly.

Nothing is taken down without a grant from the pool's `WindowsPool` workflow, which keeps one
`maxUnhealthy` budget for every disruptor; a refused grant is asked again a few seconds later.
`canary: true` replaces one node alone first; a replacement that fails, or is not Ready within
`nodeStartupTimeout` (it is then cancelled, which cleans it up), or a drain blocked past
`drainTimeout` with `Fail`, halts the rollout: nothing more is taken down, the old nodes stay,
the reason goes to the pool's status (`Degraded`), the workflow's progress and its failure.

Control: signals `pause` / `resume` (work in flight finishes; nothing new starts), the update
`set_max_unhealthy` (validated; sets the pool's `spec.maxUnhealthy`, effective for the next
node), the query `progress`. Outside the pool's maintenance window it holds as if paused.
History stays bounded: it continues as new, carrying the plan, when Temporal suggests it and
nothing is in flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import versioning
    from activities.contracts import (
        ByohHostSpec,
        Platform,
    )
    from activities.pool_client import (
        StartOnce,
        request_disruption,
        start_workflow_once,
    )
    from activities.pool_contracts import (
        DisruptionDecision,
        DisruptionRequest,
        GrantKind,
        IntOrPercent,
        NodeView,
        PoolSignal,
        PoolSpec,
        RolloutCarry,
        RolloutProgress,
        RolloutReport,
        UpgradeInput,
        UpgradeStrategy,
    )
    from activities.pool_state import (
        ObserveInput,
        PoolNodeInput,
        PoolRef,
        SetPoolSpec,
        observe_pool,
        read_pool,
        read_pool_node,
        set_pool_spec,
    )
    from workflows import ids, policies, pool_link, steps
    from workflows.decommission import DecommissionWindowsNode
    from workflows.failures import describe
    from workflows.fleet import machines, naming, plan
    from workflows.fleet.budget import validate_max_unhealthy
    from workflows.fleet.window import window_state
    from workflows.onboard import OnboardWindowsNode


class Halt(Exception):
    """A replacement failed: the rollout stops taking nodes down."""


@dataclass
class RolloutState:
    target: str = ""
    order: tuple[str, ...] = ()
    done: list[str] = field(default_factory=list)
    in_flight: dict[str, str] = field(default_factory=dict)  # node -> what it is doing
    replaced_by: dict[str, str] = field(default_factory=dict)
    paused: bool = False
    canary_done: bool = False
    halted: str = ""
    waiting_for: str = ""
    started_at: str = ""
    state: str = "Planning"


@workflow.defn(name="UpgradeWindowsPool", versioning_behavior=versioning.LONG_RUNNING)
class UpgradeWindowsPool:
    @workflow.init
    def __init__(self, inp: UpgradeInput) -> None:
        self._pool = inp.pool
        self._s = RolloutState()
        self._spec: PoolSpec | None = None
        self._nodes: dict[str, NodeView] = {}
        self._kick = False
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._hosts: tuple[ByohHostSpec, ...] = ()
        self._reported: RolloutReport | None = None
        self._spec_stale = False

    # --- control ------------------------------------------------------------------------------
    @workflow.signal(name="spec_changed")
    def spec_changed(self) -> None:
        """The pool's spec changed: its settings (not the target version) apply from now."""
        self._spec_stale = True
        self._kick = True

    @workflow.signal(name="pause")
    def pause(self) -> None:
        self._s.paused = True
        self._kick = True

    @workflow.signal(name="resume")
    def resume(self) -> None:
        self._s.paused = False
        self._kick = True

    @workflow.update(name="set_max_unhealthy")
    async def set_max_unhealthy(self, value: int | str) -> str:
        text = str(value).strip()
        generation = await steps.run(
            set_pool_spec, SetPoolSpec(self._pool, max_unhealthy=text), policies.KUBE_CALL_STEP
        )
        if self._spec is not None:
            self._spec = replace(self._spec, max_unhealthy=IntOrPercent.parse(_int_or_str(text)))
        await pool_link.signal(self._pool, "spec_changed", PoolSignal(generation=generation))
        self._kick = True
        return f"maxUnhealthy of pool {self._pool} is now {text}; it applies to the next node"

    @set_max_unhealthy.validator
    def _check_max_unhealthy(self, value: int | str) -> None:
        spec = self._spec
        if spec is None:
            raise ValueError("the rollout has not read its pool yet; try again in a moment")
        replicas = spec.replicas if spec.platform != Platform.BYOH else len(self._nodes)
        problem = validate_max_unhealthy(
            _int_or_str(str(value).strip()), replicas, spec.upgrade.max_surge
        )
        if problem:
            raise ValueError(problem)

    @workflow.query(name="progress")
    def progress(self) -> RolloutProgress:
        s = self._s
        return RolloutProgress(
            pool=self._pool,
            target_version=s.target,
            state=s.state,
            plan=s.order,
            done=tuple(s.done),
            in_flight=tuple(sorted(s.in_flight)),
            remaining=self._remaining(),
            paused=s.paused,
            budget="" if self._spec is None else str(self._spec.max_unhealthy),
            waiting_for=s.waiting_for,
            message=s.halted,
            started_at=s.started_at,
        )

    # --- the rollout --------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: UpgradeInput) -> str:
        await self._start(inp)
        try:
            await self._roll()
        except GeneratorExit:
            raise  # evicted from the worker's cache, not ended: a replay resumes the run
        except BaseException:
            await self._report()
            raise
        await self._report()
        if self._s.halted:
            raise ApplicationError(
                f"rollout of pool {self._pool} to {self._s.target} halted: {self._s.halted}. "
                "The nodes not yet replaced keep running; fix the cause and start the upgrade "
                "again (nodes already on the target are skipped).",
                type="RolloutHalted",
                non_retryable=True,
            )
        read = await steps.run(read_pool, PoolRef(self._pool), policies.KUBE_CALL_STEP)
        if read.spec is not None and read.spec.version and read.spec.version != self._s.target:
            # A newer version was set during this rollout: it follows now, with a new plan.
            workflow.continue_as_new(UpgradeInput(pool=self._pool))
        return (
            f"pool {self._pool}: {len(self._s.done)} node(s) replaced, every planned node "
            f"runs {self._s.target}"
        )

    async def _start(self, inp: UpgradeInput) -> None:
        await steps.run(
            start_workflow_once,
            StartOnce(
                workflow="WindowsPool",
                workflow_id=ids.pool(self._pool),
                arg={"pool": self._pool},
                task_queue=workflow.info().task_queue,
            ),
            policies.KUBE_CALL_STEP,
        )
        read = await steps.run(read_pool, PoolRef(self._pool), policies.KUBE_CALL_STEP)
        if read.spec is None:
            why = read.problem or ("it is being deleted" if read.deleting else "it does not exist")
            raise ApplicationError(
                f"cannot upgrade pool {self._pool}: {why}",
                type="InvalidRequest",
                non_retryable=True,
            )
        spec = read.spec
        if inp.carry is None and inp.version and inp.version != spec.version:
            generation = await steps.run(
                set_pool_spec, SetPoolSpec(self._pool, version=inp.version), policies.KUBE_CALL_STEP
            )
            spec = replace(spec, version=inp.version)
            await pool_link.signal(self._pool, "spec_changed", PoolSignal(generation=generation))
        self._spec = spec
        await self._observe()
        s = self._s
        if inp.carry is not None:
            c = inp.carry
            s.target, s.order, s.done = c.target, c.order, list(c.done)
            s.replaced_by, s.paused = dict(c.replaced_by), c.paused
            s.canary_done, s.started_at = c.canary_done, c.started_at
        else:
            s.target = spec.version or read.default_version
            s.order = plan.upgrade_order(self._nodes.values(), s.target)
            s.started_at = workflow.now().isoformat()
            workflow.logger.info("pool %s: rollout to %s, plan %s", self._pool, s.target, s.order)
        s.state = "Progressing"
        await self._report()

    async def _roll(self) -> None:
        s = self._s
        while True:
            if self._spec_stale:
                await self._reread_settings()
            if s.halted and not s.in_flight:
                s.state = "Halted"
                return
            todo = self._remaining()
            if not todo and not s.in_flight:
                s.state = "Completed"
                return
            wait = policies.ROLLOUT_RETRY
            if todo and not s.halted and not self._history_full():
                blocked, wait = self._held(wait)
                if not blocked and len(s.in_flight) < self._cap():
                    if await self._try_start(todo[0]):
                        continue
            s.state = self._state_name()
            await self._report()
            self._kick = False
            await steps.wait(lambda: self._kick, wait)
            if self._history_full() and not s.in_flight and workflow.all_handlers_finished():
                workflow.continue_as_new(UpgradeInput(pool=self._pool, carry=self._carry()))

    async def _reread_settings(self) -> None:
        self._spec_stale = False
        read = await steps.run(read_pool, PoolRef(self._pool), policies.KUBE_CALL_STEP)
        if read.spec is not None and self._spec is not None:
            # The plan and its target stay frozen; budget, window, canary, timeouts follow.
            self._spec = replace(read.spec, version=self._spec.version)

    def _held(self, wait: timedelta) -> tuple[bool, timedelta]:
        """Whether new replacements are held (paused, outside the window) and how long to wait."""
        s, spec = self._s, self._spec
        assert spec is not None
        if s.paused:
            s.waiting_for = "resume (paused)"
            return True, policies.ROLLOUT_IDLE
        window = spec.upgrade.maintenance_window
        open_now, change = window_state(window, workflow.now())
        if not open_now:
            s.waiting_for = (
                f"the maintenance window to open ({change.isoformat() if change else 'never'})"
            )
            until = (change - workflow.now()) if change else policies.ROLLOUT_IDLE
            return True, max(min(until, policies.ROLLOUT_IDLE), timedelta(seconds=1))
        if spec.upgrade.canary and not s.canary_done and s.in_flight:
            s.waiting_for = f"the canary {next(iter(s.in_flight))}"
            return True, policies.ROLLOUT_IDLE
        return False, wait

    def _cap(self) -> int:
        spec = self._spec
        assert spec is not None
        if spec.upgrade.canary and not self._s.canary_done:
            return 1
        if self._surge(spec):
            return spec.upgrade.max_surge
        replicas = spec.replicas if spec.platform != Platform.BYOH else len(self._nodes)
        return max(1, spec.max_unhealthy.resolve(replicas))

    async def _try_start(self, node: str) -> bool:
        """Ask the pool for `node` and start its replacement; False when it must wait."""
        s, spec = self._s, self._spec
        assert spec is not None
        view = await steps.run(
            read_pool_node, PoolNodeInput(self._pool, node), policies.KUBE_CALL_STEP
        )
        if view is None or view.version == s.target:
            s.done.append(node)  # gone meanwhile, or already upgraded by someone else
            return True
        in_place = self._in_place(spec)
        replacement = (
            node if in_place else naming.new_node_name(self._pool, workflow.random(), self._taken())
        )
        kind = GrantKind.SURGE if self._surge(spec) else GrantKind.DISRUPT
        decision = await self._ask(node, kind, replacement)
        if not decision.granted:
            s.waiting_for = decision.why
            return False
        s.waiting_for = ""
        s.replaced_by[node] = replacement
        s.in_flight[node] = "starting"
        self._tasks[node] = asyncio.ensure_future(self._replace(node, view, replacement, kind))
        return True

    async def _replace(self, node: str, view: NodeView, new: str, kind: GrantKind) -> None:
        s, spec = self._s, self._spec
        assert spec is not None
        try:
            if kind == GrantKind.SURGE:
                s.in_flight[node] = f"adding {new}"
                await self._onboard(new, view, spec)
                await self._wait_for_grant(node, new)
                s.in_flight[node] = "draining"
                await self._decommission(view, spec, in_place=False)
            elif self._in_place(spec):
                s.in_flight[node] = "draining and deconfiguring"
                await self._decommission(view, spec, in_place=True)
                s.in_flight[node] = "configuring again"
                await self._onboard(node, view, spec)
            else:
                s.in_flight[node] = "draining"
                await self._decommission(view, spec, in_place=False)
                s.in_flight[node] = f"onboarding {new}"
                await self._onboard(new, view, spec)
            s.done.append(node)
            s.canary_done = True
        except Halt as why:
            s.halted = s.halted or str(why)
            workflow.logger.warning("pool %s: rollout halted: %s", self._pool, why)
        except GeneratorExit:
            raise  # evicted from the worker's cache, not ended: a replay resumes the run
        except BaseException:
            await self._finish(node)
            raise
        await self._finish(node)

    async def _finish(self, node: str) -> None:
        s = self._s
        await pool_link.release(self._pool, node)
        s.in_flight.pop(node, None)
        self._tasks.pop(node, None)
        self._kick = True

    async def _wait_for_grant(self, node: str, new: str) -> None:
        """Surge: once the replacement serves, wait for leave to take the old node down."""
        while True:
            decision = await self._ask(node, GrantKind.DISRUPT, new)
            if decision.granted:
                return
            self._s.in_flight[node] = f"waiting for the budget ({decision.why})"
            await workflow.sleep(policies.ROLLOUT_RETRY)

    async def _decommission(self, view: NodeView, spec: PoolSpec, *, in_place: bool) -> None:
        dec = machines.decommission_input(
            spec,
            machines.host_of(spec, view, self._hosts),
            f"rolling upgrade to {self._s.target}",
            in_place=in_place,
        )
        try:
            await workflow.execute_child_workflow(
                DecommissionWindowsNode.run,
                dec,
                id=ids.decommission(self._pool, view.name),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except ChildWorkflowError as err:
            raise Halt(f"taking {view.name} down failed: {describe(err)}") from err

    async def _onboard(self, name: str, old: NodeView, spec: PoolSpec) -> None:
        """Onboard `name` at the target version; halt if it fails or is not Ready in time."""
        host = ByohHostSpec(old.address, machines.username(spec, old.address, self._hosts))
        inp = machines.onboard_input(spec, name, self._s.target, host)
        handle = await workflow.start_child_workflow(
            OnboardWindowsNode.run,
            inp,
            id=ids.onboard(self._pool, name),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        limit = timedelta(seconds=spec.upgrade.node_startup_timeout_s)
        if not await steps.wait(handle.done, limit):
            handle.cancel()
            try:
                await handle
            except (ChildWorkflowError, asyncio.CancelledError):
                pass
            raise Halt(
                f"replacement {name} was not Ready within nodeStartupTimeout "
                f"({spec.upgrade.node_startup_timeout_s}s); it was cancelled and cleaned up"
            ) from None
        try:
            await handle
        except ChildWorkflowError as err:
            raise Halt(f"replacement {name} failed: {describe(err)}") from err

    # --- talking to the pool -----------------------------------------------------------------
    async def _ask(self, node: str, kind: GrantKind, replacement: str) -> DisruptionDecision:
        req = DisruptionRequest(
            pool=self._pool,
            holder=workflow.info().workflow_id,
            node=node,
            reason=f"rolling upgrade to {self._s.target}",
            kind=kind,
            replacement=replacement,
            pool_workflow_id=ids.pool(self._pool),
        )
        return await steps.run(request_disruption, req, policies.KUBE_CALL_STEP)

    async def _report(self) -> None:
        s = self._s
        report = RolloutReport(
            target_version=s.target,
            state=self._state_name(),
            done=len(s.done),
            in_flight=tuple(sorted(s.in_flight)),
            remaining=len(self._remaining()),
            waiting_for=s.waiting_for,
            started_at=s.started_at,
            message=s.halted,
        )
        if report == self._reported:
            return
        pool = workflow.get_external_workflow_handle(ids.pool(self._pool))
        try:
            await pool.signal("rollout_update", report)
            self._reported = report
        except ApplicationError as err:
            workflow.logger.warning("pool %s: status not reported: %s", self._pool, err)

    async def _observe(self) -> None:
        spec = self._spec
        assert spec is not None
        obs = await steps.run(
            observe_pool,
            ObserveInput(self._pool, spec.platform, spec.byoh_hosts),
            policies.KUBE_CALL_STEP,
        )
        self._nodes = {n.name: n for n in obs.nodes}
        self._hosts = obs.byoh_hosts

    # --- small helpers -------------------------------------------------------------------------
    def _remaining(self) -> tuple[str, ...]:
        s = self._s
        return tuple(n for n in s.order if n not in s.done and n not in s.in_flight)

    def _state_name(self) -> str:
        s = self._s
        if s.halted:
            return "Halted" if not s.in_flight else "Halting"
        if not self._remaining() and not s.in_flight and s.order is not None and s.target:
            return "Completed" if s.state != "Planning" else "Planning"
        if s.paused:
            return "Paused"
        if s.waiting_for and not s.in_flight:
            return "Waiting"
        return "Progressing"

    def _history_full(self) -> bool:
        """Time to continue as new (the plan carried): nothing new starts until then."""
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > policies.HISTORY_EVENTS_LIMIT
        )

    def _taken(self) -> set[str]:
        return set(self._nodes) | set(self._s.replaced_by.values()) | set(self._s.in_flight)

    def _in_place(self, spec: PoolSpec) -> bool:
        return spec.platform == Platform.BYOH or spec.upgrade.strategy == UpgradeStrategy.IN_PLACE

    def _surge(self, spec: PoolSpec) -> bool:
        return not self._in_place(spec) and spec.upgrade.max_surge > 0

    def _carry(self) -> RolloutCarry:
        s = self._s
        return RolloutCarry(
            target=s.target,
            order=s.order,
            done=tuple(s.done),
            replaced_by=tuple(sorted(s.replaced_by.items())),
            paused=s.paused,
            canary_done=s.canary_done,
            started_at=s.started_at,
        )


def _int_or_str(text: str) -> int | str:
    return int(text) if text.isdigit() else text
