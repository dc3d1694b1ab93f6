"""`WindowsPool`: one long-lived workflow per WindowsMachinePool (workflow ID `pool-<name>`).

It keeps the pool at its declared size, is the one place that grants disruptions of the pool's
nodes, and writes the pool's status:
- **Replicas**: every pass it reads the pool (when its generation changed) and observes its
  nodes; missing replicas (cloud: `spec.replicas`; BYOH: the listed hosts) are onboarded in
  parallel as `OnboardWindowsNode` children with generated names (`<pool>-xxxxx`); extra nodes
  (unhealthy first, then oldest; BYOH: hosts no longer listed) are taken out by
  `DecommissionWindowsNode` children, each under a grant of its own ledger. A failed onboarding
  backs off before the next try and shows in the status (`Degraded`).
- **The disruption ledger**: every workflow that takes a node down (the rollout, scale-down,
  drift repair) asks first with the update `request_disruption`; a grant is given only while the
  live count of unavailable replicas (read at decision time), plus the grants not yet visible in
  it, stays within `maxUnhealthy`. `release_disruption` gives it back; a grant whose holder
  workflow no longer runs is dropped. Grants keep a replacement's name, so a node being replaced
  is never counted twice or replaced by scale-up as well.
- **Status**: counts, conditions (`Available`, `Progressing`, `Degraded`, `Paused`), the budget
  in use with its holders, and the rollout as `UpgradeWindowsPool` reports it (signal
  `rollout_update`): one writer, so nothing overwrites anything.
- **Lifecycle**: started (or woken) by the worker's pool watcher with the signal `spec_changed`;
  a version change starts `UpgradeWindowsPool` (or joins the running one); a deleted pool has
  all its nodes taken out, then winfleet's finalizer removed. History stays bounded: the run
  continues as new (ledger carried) when Temporal suggests it and no child is in flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import versioning
    from activities.contracts import (
        ByohHostSpec,
        OnboardNodeInput,
        Platform,
    )
    from activities.drift_contracts import ReconcileSummary
    from activities.pool_client import (
        StartOnce,
        WorkflowIdsInput,
        running_workflows,
        start_workflow_once,
    )
    from activities.pool_contracts import (
        Availability,
        DisruptionDecision,
        DisruptionRelease,
        DisruptionRequest,
        Grant,
        GrantKind,
        NodeView,
        PoolCarry,
        PoolObservation,
        PoolRun,
        PoolSignal,
        PoolSpec,
        RolloutReport,
    )
    from activities.pool_state import (
        AvailabilityInput,
        Condition,
        FinalizerInput,
        ObserveInput,
        PoolEventInput,
        PoolRef,
        PoolStatus,
        observe_pool,
        pool_availability,
        pool_finalizer,
        read_pool,
        record_pool_event,
        write_pool_status,
    )
    from activities.schedules import (
        ReconcileSchedule,
        ScheduleRef,
        delete_reconcile_schedule,
        ensure_reconcile_schedule,
    )
    from workflows import ids, policies, steps
    from workflows.decommission import DecommissionWindowsNode
    from workflows.failures import describe
    from workflows.fleet import machines, naming
    from workflows.fleet.budget import why_unavailable
    from workflows.onboard import OnboardWindowsNode

MAX_FAILURES_SHOWN = 3
RECONCILE_PATCH = "reconcile-schedule"  # the pool keeps its drift reconciliation's Schedule
GRANTED_HOSTS_PATCH = "byoh-granted-hosts"  # BYOH: a granted node's host is not onboarded again
WAKE_PATCH = "wake-before-pass"  # a message that arrives during a pass wakes the next one


@dataclass
class Child:
    """An onboarding or decommissioning this pool runs itself."""

    kind: str  # "onboard" | "remove"
    host: str = ""  # BYOH: the host it is for
    task: asyncio.Task[None] | None = None


@workflow.defn(name="WindowsPool", versioning_behavior=versioning.LONG_RUNNING)
class WindowsPool:
    @workflow.init
    def __init__(self, inp: PoolRun) -> None:
        self._pool = inp.pool
        self._hosts: tuple[ByohHostSpec, ...] = ()  # BYOH: the hosts last observed
        self._check_rollout = False
        self._spec: PoolSpec | None = None
        self._problem = ""  # why the spec cannot be used
        self._generation = -1  # of the spec we hold
        self._wanted = 0  # newest generation announced
        self._deleted = False
        self._wake = False
        self._ledger: dict[str, Grant] = {}
        self._lock = asyncio.Lock()
        self._children: dict[str, Child] = {}
        self._failures: list[str] = []
        self._retry_at: datetime | None = None
        self._backoff = policies.POOL_RETRY_FIRST
        self._rollout: RolloutReport | None = None
        self._nodes: tuple[NodeView, ...] = ()
        self._last_status: PoolStatus | None = None
        self._told: set[str] = set()  # keys of the Events already recorded
        self._read_once = False
        self._reconcile: ReconcileSummary | None = None  # the last drift reconciliation's
        self._hosts_of: dict[str, str] = {}  # BYOH: node -> host, of nodes seen or granted

    # --- messages ----------------------------------------------------------------------------
    @workflow.signal(name="spec_changed")
    def spec_changed(self, sig: PoolSignal) -> None:
        self._wanted = max(self._wanted, sig.generation)
        self._deleted = self._deleted or sig.deleted
        self._wake = True

    @workflow.signal(name="rollout_update")
    def rollout_update(self, report: RolloutReport) -> None:
        self._rollout = report
        self._wake = True

    @workflow.signal(name="reconcile_update")
    def reconcile_update(self, summary: ReconcileSummary) -> None:
        self._reconcile = summary
        self._wake = True

    @workflow.update(name="request_disruption")
    async def request_disruption(self, req: DisruptionRequest) -> DisruptionDecision:
        await workflow.wait_condition(lambda: self._read_once or self._deleted)
        async with self._lock:
            decision = await self._decide(req)
        self._wake = True
        return decision

    @request_disruption.validator
    def _check_request(self, req: DisruptionRequest) -> None:
        if req.pool != self._pool or not req.holder or not req.node:
            raise ValueError(
                f"a disruption request names the pool ({self._pool}), its holder and the node"
            )

    @workflow.update(name="release_disruption")
    async def release_disruption(self, rel: DisruptionRelease) -> bool:
        async with self._lock:
            grant = self._ledger.get(rel.node)
            if grant is None or grant.holder != rel.holder:
                return False
            del self._ledger[rel.node]
        self._wake = True
        return True

    @workflow.query(name="progress")
    def progress(self) -> dict[str, object]:
        spec = self._spec
        return {
            "pool": self._pool,
            "generation": self._generation,
            "problem": self._problem,
            "nodes": [n.name for n in self._nodes],
            "children": {name: c.kind for name, c in sorted(self._children.items())},
            "budget": self._budget_view(),
            "rollout": None if self._rollout is None else self._rollout.state,
            "failures": list(self._failures),
            "replicas": None if spec is None else self._desired(spec),
        }

    # --- the loop ----------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: PoolRun) -> str:
        if inp.carry is not None:
            self._ledger = {g.node: g for g in inp.carry.ledger}
            self._generation = -1
            self._wanted = inp.carry.generation
            self._rollout = inp.carry.rollout
            self._failures = list(inp.carry.failures)
        while True:
            if self._deleted:
                return await self._wind_down()
            early = workflow.patched(WAKE_PATCH)
            if early:
                self._wake = False  # not after the pass: that would drop what came during it
            try:
                stale = self._spec is None or self._generation < self._wanted
                if (stale and not await self._read()) or not await self._pass():
                    return await self._wind_down()
            except ActivityError as err:
                # The cluster or Temporal did not answer within the step's bounds: say so and
                # look again at the next pass; the pool's work must not end over it.
                workflow.logger.warning("pool %s: pass failed: %s", self._pool, describe(err))
                self._failures = [*self._failures, f"pass failed: {describe(err)}"][
                    -MAX_FAILURES_SHOWN:
                ]
            if not early:
                self._wake = False
            await steps.wait(lambda: self._wake, policies.POOL_RESYNC)
            info = workflow.info()
            full = (
                info.is_continue_as_new_suggested()
                or info.get_current_history_length() > policies.HISTORY_EVENTS_LIMIT
            )
            if full and not self._children and workflow.all_handlers_finished():
                workflow.continue_as_new(PoolRun(pool=self._pool, carry=self._carry()))

    async def _pass(self) -> bool:
        """Observe, scale, write status; False when the pool is gone."""
        children = dict(self._children)  # before observing: see `_scale`
        obs = await steps.run(observe_pool, self._observe_input(), policies.KUBE_CALL_STEP)
        if not obs.found:
            return False
        self._nodes, self._hosts = obs.nodes, obs.byoh_hosts
        if self._check_rollout and self._spec is not None:
            await self._ensure_rollout(self._spec)
        if obs.generation > self._generation:
            self._wanted = max(self._wanted, obs.generation)
        await self._clear_stale_grants()
        if self._spec is not None:
            await self._scale(self._spec, obs, children)
        await self._write_status(obs)
        await self._tell()
        return True

    async def _tell(self) -> None:
        """Events on the pool for what an admin must see: a halted rollout, failed work, a drift
        run that repaired nothing because too many nodes are unhealthy (once per such state)."""
        news: list[tuple[str, str, str]] = []
        r = self._rollout
        if r is not None and r.state == "Halted":
            news.append(("RolloutHalted", r.message, f"halt {r.started_at}"))
        d = self._reconcile
        if d is not None and d.degraded:
            news.append(("TooManyUnhealthy", d.degraded, f"short-circuit {d.degraded}"))
        news += [("PoolWorkFailed", f, f"failure {f}") for f in self._failures]
        for reason, message, key in news:
            if key in self._told:
                continue
            await steps.run(
                record_pool_event,
                PoolEventInput(self._pool, reason, message, key),
                policies.KUBE_CALL_STEP,
            )
            self._told.add(key)

    async def _read(self) -> bool:
        """Read the pool; False when it is gone or being deleted."""
        read = await steps.run(read_pool, PoolRef(self._pool), policies.KUBE_CALL_STEP)
        if not read.exists or read.deleting:
            self._deleted = True
            return False
        if not read.finalized:
            await steps.run(
                pool_finalizer, FinalizerInput(self._pool, True), policies.KUBE_CALL_STEP
            )
        self._generation = read.generation
        self._problem = read.problem
        old = self._spec
        if read.spec is not None:
            self._spec = read.spec
            self._check_rollout = old is None or old.version != read.spec.version
            if old is not None and self._rollout_running():
                await self._tell_rollout()
            if workflow.patched(RECONCILE_PATCH):
                await self._ensure_reconcile(read.spec, trigger=old is not None)
        self._read_once = True
        return True

    async def _ensure_reconcile(self, spec: PoolSpec, *, trigger: bool) -> None:
        """The pool's drift reconciliation Schedule, at the spec's interval; a run now when the
        spec changed."""
        schedule = ReconcileSchedule(
            self._pool,
            ids.reconcile(self._pool),
            spec.reconcile.interval_s,
            workflow.info().task_queue,
            trigger,
        )
        try:
            await steps.run(ensure_reconcile_schedule, schedule, policies.KUBE_CALL_STEP)
        except ActivityError as err:
            workflow.logger.warning("pool %s: reconcile schedule: %s", self._pool, describe(err))

    def _observe_input(self) -> ObserveInput:
        spec = self._spec
        if spec is None:
            return ObserveInput(self._pool, Platform.AWS)
        return ObserveInput(self._pool, spec.platform, spec.byoh_hosts)

    def _carry(self) -> PoolCarry:
        return PoolCarry(
            ledger=tuple(self._ledger.values()),
            generation=max(self._wanted, self._generation),
            rollout=self._rollout,
            failures=tuple(self._failures),
        )

    # --- replicas ----------------------------------------------------------------------------
    def _desired(self, spec: PoolSpec) -> int:
        if self._deleted:
            return 0  # the pool is going away: nothing needs to keep serving
        if spec.platform == Platform.BYOH:
            return len(self._hosts)
        return spec.replicas

    async def _scale(
        self, spec: PoolSpec, obs: PoolObservation, children: dict[str, Child]
    ) -> None:
        """Start onboardings for missing replicas and removals of extra ones."""
        mine = workflow.info().workflow_id
        in_ledger = {g.node for g in self._ledger.values()} | {
            g.replacement for g in self._ledger.values() if g.replacement
        }
        members = [
            n
            for n in obs.nodes
            if n.name not in in_ledger and n.name not in children and not n.deleting
        ]
        others = [g for g in self._ledger.values() if g.holder != mine]
        if spec.platform == Platform.BYOH:
            await self._scale_byoh(spec, obs, members, children)
            return
        onboarding = [name for name, c in children.items() if c.kind == "onboard"]
        slots = len(members) + len(others) + len(onboarding)
        missing = spec.replicas - slots
        if missing > 0:
            taken = {n.name for n in obs.nodes} | in_ledger | set(self._children)
            for _ in range(missing):
                if not self._may_try():
                    break
                name = naming.new_node_name(self._pool, workflow.random(), taken)
                taken.add(name)
                self._start_onboarding(spec, name, None)
        elif missing < 0:
            await self._remove(spec, _victims(members, -missing), "scale-down")

    async def _scale_byoh(
        self,
        spec: PoolSpec,
        obs: PoolObservation,
        members: list[NodeView],
        children: dict[str, Child],
    ) -> None:
        wanted = {h.address: h for h in obs.byoh_hosts}
        covered = {n.address for n in members}
        covered |= {g.replacement or g.node for g in self._ledger.values()}
        covered |= {c.host for c in children.values()}
        if workflow.patched(GRANTED_HOSTS_PATCH):
            covered |= self._granted_hosts(obs)
        taken = {n.name for n in obs.nodes} | set(self._ledger) | set(self._children)
        for address, host in sorted(wanted.items()):
            if address in covered or not self._may_try():
                continue
            name = naming.new_node_name(self._pool, workflow.random(), taken)
            taken.add(name)
            self._start_onboarding(spec, name, host)
        gone = [n for n in members if n.address not in wanted]
        await self._remove(spec, gone, "host removed from windows-instances")

    def _granted_hosts(self, obs: PoolObservation) -> set[str]:
        """Hosts of nodes someone holds a grant on (repaired, or deconfigured and onboarded
        again, even while their Node is gone): no second node is onboarded onto them."""
        granted = set(self._ledger) | {g.replacement for g in self._ledger.values()}
        seen = {n.name for n in obs.nodes}
        self._hosts_of.update({n.name: n.address for n in obs.nodes if n.address})
        self._hosts_of = {k: v for k, v in self._hosts_of.items() if k in granted | seen}
        return {v for k, v in self._hosts_of.items() if k in granted}

    def _may_try(self) -> bool:
        return self._retry_at is None or workflow.now() >= self._retry_at

    def _start_onboarding(self, spec: PoolSpec, name: str, host: ByohHostSpec | None) -> None:
        inp = machines.onboard_input(spec, name, spec.version, host)
        workflow.logger.info("pool %s: onboarding %s", self._pool, name)
        task = asyncio.ensure_future(self._onboard(name, inp))
        self._children[name] = Child("onboard", host.address if host else "", task)

    async def _onboard(self, name: str, inp: OnboardNodeInput) -> None:
        try:
            await workflow.execute_child_workflow(
                OnboardWindowsNode.run,
                inp,
                id=ids.onboard(self._pool, name),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
            self._backoff = policies.POOL_RETRY_FIRST
            self._retry_at = None
        except ChildWorkflowError as err:
            self._failed(f"onboarding of {name} failed: {describe(err)}")
        finally:
            self._children.pop(name, None)
            self._wake = True

    def _failed(self, message: str) -> None:
        workflow.logger.warning("pool %s: %s", self._pool, message)
        self._failures = [*self._failures, message][-MAX_FAILURES_SHOWN:]
        self._retry_at = workflow.now() + self._backoff
        self._backoff = min(self._backoff * 2, policies.POOL_RETRY_MAX)

    async def _remove(self, spec: PoolSpec, victims: list[NodeView], reason: str) -> None:
        """Take `victims` out, each under a grant of the pool's own (within the budget)."""
        mine = workflow.info().workflow_id
        for node in victims:
            if node.name in self._children or node.name in self._ledger:
                continue
            req = DisruptionRequest(self._pool, mine, node.name, reason)
            async with self._lock:
                decision = await self._decide(req)
            if not decision.granted:
                workflow.logger.info("pool %s: %s waits: %s", self._pool, node.name, decision.why)
                return
            task = asyncio.ensure_future(self._decommission(spec, node, reason))
            self._children[node.name] = Child("remove", node.address, task)

    async def _decommission(self, spec: PoolSpec, node: NodeView, reason: str) -> None:
        plan = machines.decommission_input(
            spec,
            machines.host_of(spec, node, self._hosts),
            reason,
            forget_pin=spec.platform == Platform.BYOH,
        )
        try:
            await workflow.execute_child_workflow(
                DecommissionWindowsNode.run,
                plan,
                id=ids.decommission(self._pool, node.name),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except ChildWorkflowError as err:
            self._failed(f"removing {node.name} failed: {describe(err)}")
        finally:
            self._ledger.pop(node.name, None)
            self._children.pop(node.name, None)
            self._wake = True

    # --- the budget --------------------------------------------------------------------------
    async def _decide(self, req: DisruptionRequest) -> DisruptionDecision:
        """Grant or refuse `req`; the caller holds the lock."""
        spec = self._spec
        if spec is None:
            return DisruptionDecision(
                False, f"pool {self._pool} has no usable spec: {self._problem}"
            )
        held = self._ledger.get(req.node)
        if held is not None and held.holder != req.holder:
            return DisruptionDecision(
                False, f"node {req.node} is being changed by {held.holder} ({held.reason})"
            )
        if held is not None and (held.kind == req.kind or req.kind == GrantKind.SURGE):
            return DisruptionDecision(True, "already granted")
        budget = spec.max_unhealthy.resolve(self._desired(spec))
        if req.kind == GrantKind.SURGE:
            self._grant(req)
            return DisruptionDecision(True, max_unavailable=budget)
        pending = [g.node for g in self._ledger.values() if g.kind == GrantKind.DISRUPT]
        avail: Availability = await steps.run(
            pool_availability,
            AvailabilityInput(self._pool, tuple(sorted({*pending, req.node}))),
            policies.KUBE_CALL_STEP,
        )
        desired = self._desired(spec)
        serving_now = avail.available - len(
            [n for n in pending if n in avail.available_nodes and n != req.node]
        )
        cost = 1 if req.node in avail.available_nodes else 0
        after = max(0, desired - (serving_now - cost))
        if after > budget:
            down = "; ".join(avail.unavailable) or "grants " + ", ".join(sorted(pending))
            return DisruptionDecision(
                False,
                f"budget: {max(0, desired - serving_now)} of {desired} replicas unavailable, "
                f"maxUnhealthy {spec.max_unhealthy} allows {budget} ({down})",
                max_unavailable=budget,
                unavailable=max(0, desired - serving_now),
            )
        self._grant(req)
        return DisruptionDecision(True, max_unavailable=budget, unavailable=after)

    def _grant(self, req: DisruptionRequest) -> None:
        self._ledger[req.node] = Grant(
            node=req.node,
            holder=req.holder,
            reason=req.reason,
            since=workflow.now().isoformat(),
            kind=req.kind,
            replacement=req.replacement,
        )

    async def _clear_stale_grants(self) -> None:
        mine = workflow.info().workflow_id
        holders = sorted({g.holder for g in self._ledger.values() if g.holder != mine})
        if not holders:
            return
        running = set(
            await steps.run(
                running_workflows, WorkflowIdsInput(tuple(holders)), policies.KUBE_CALL_STEP
            )
        )
        async with self._lock:
            for node, grant in list(self._ledger.items()):
                if grant.holder != mine and grant.holder not in running:
                    workflow.logger.warning(
                        "pool %s: dropping the grant on %s of %s, which no longer runs",
                        self._pool,
                        node,
                        grant.holder,
                    )
                    del self._ledger[node]

    def _budget_view(self) -> dict[str, object]:
        spec = self._spec
        budget = 0 if spec is None else spec.max_unhealthy.resolve(self._desired(spec))
        holders = [
            {"node": g.node, "holder": g.holder, "reason": g.reason, "since": g.since}
            for g in sorted(self._ledger.values(), key=lambda g: g.node)
            if g.kind == GrantKind.DISRUPT
        ]
        return {"maxUnavailable": budget, "inUse": len(holders), "holders": holders}

    # --- rollouts and status -----------------------------------------------------------------
    def _rollout_running(self) -> bool:
        r = self._rollout
        return r is not None and r.state not in ("Completed", "Halted")

    async def _tell_rollout(self) -> None:
        """A running rollout takes the pool's new settings (budget, window...) at once."""
        rollout = workflow.get_external_workflow_handle(ids.upgrade(self._pool))
        try:
            await rollout.signal("spec_changed")
        except ApplicationError as err:  # it ended meanwhile
            workflow.logger.info("pool %s: rollout not told: %s", self._pool, err)

    async def _ensure_rollout(self, spec: PoolSpec) -> None:
        """Start (or join) the pool's rollout when a node is not on `spec.version`."""
        self._check_rollout = False
        if not spec.version or all(n.version == spec.version for n in self._nodes):
            return
        await steps.run(
            start_workflow_once,
            StartOnce(
                workflow="UpgradeWindowsPool",
                workflow_id=ids.upgrade(self._pool),
                arg={"pool": self._pool},
                task_queue=workflow.info().task_queue,
            ),
            policies.KUBE_CALL_STEP,
        )

    async def _write_status(self, obs: PoolObservation) -> None:
        spec = self._spec
        desired = 0 if spec is None else self._desired(spec)
        nodes = obs.nodes
        ready = sum(1 for n in nodes if n.ready == "True")
        available = sum(1 for n in nodes if not why_unavailable(n))
        version = "" if spec is None else spec.version
        updated = sum(1 for n in nodes if version and n.version == version)
        unavailable = max(0, desired - available)
        budget = 0 if spec is None else spec.max_unhealthy.resolve(desired)
        status = PoolStatus(
            pool=self._pool,
            observed_generation=self._generation,
            replicas=len(nodes),
            ready_replicas=ready,
            updated_replicas=updated,
            unavailable_replicas=unavailable,
            phase=self._phase(desired, available),
            conditions=self._conditions(desired, available, unavailable, budget),
            rollout=_rollout_view(self._rollout),
            budget=self._budget_view(),
            last_reconcile=_reconcile_view(self._reconcile),
        )
        if status == self._last_status:
            return
        await steps.run(write_pool_status, status, policies.KUBE_CALL_STEP)
        self._last_status = status

    def _phase(self, desired: int, available: int) -> str:
        if self._problem:
            return "Invalid"
        if self._rollout is not None and self._rollout.state not in ("Completed", "Halted"):
            return "Upgrading"
        if any(c.kind == "onboard" for c in self._children.values()):
            return "ScalingUp"
        if any(c.kind == "remove" for c in self._children.values()):
            return "ScalingDown"
        return "Ready" if available >= desired else "Degraded"

    def _conditions(
        self, desired: int, available: int, unavailable: int, budget: int
    ) -> tuple[Condition, ...]:
        r = self._rollout
        available_ok = unavailable <= budget
        conditions = [
            Condition(
                "Available",
                "True" if available_ok else "False",
                "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                f"{available} of {desired} replicas available (maxUnhealthy allows {budget} down)",
            )
        ]
        rolling = r is not None and r.state not in ("Completed", "Halted")
        scaling = bool(self._children)
        conditions.append(
            Condition(
                "Progressing",
                "True" if rolling or scaling else "False",
                "RollingOut" if rolling else "Scaling" if scaling else "Idle",
                _rollout_sentence(r) if rolling and r is not None else "",
            )
        )
        degraded = self._problem or (r.message if r is not None and r.state == "Halted" else "")
        if not degraded and self._failures and self._retry_at is not None:
            degraded = self._failures[-1]
        short_circuit = self._reconcile.degraded if self._reconcile is not None else ""
        conditions.append(
            Condition(
                "Degraded",
                "True" if degraded or short_circuit else "False",
                "InvalidSpec"
                if self._problem
                else "RolloutHalted"
                if r and r.state == "Halted"
                else "OnboardingFailed"
                if degraded
                else "TooManyUnhealthy"
                if short_circuit
                else "AsExpected",
                degraded or short_circuit,
            )
        )
        paused = r is not None and r.state in ("Paused", "Waiting")
        conditions.append(
            Condition(
                "Paused",
                "True" if paused else "False",
                "RolloutPaused" if paused else "NotPaused",
                r.waiting_for if paused and r is not None else "",
            )
        )
        return tuple(conditions)

    # --- deletion ----------------------------------------------------------------------------
    async def _wind_down(self) -> str:
        """The pool is being deleted: take every node out, then let the pool go."""
        spec = self._spec
        while True:
            early = workflow.patched(WAKE_PATCH)
            if early:
                self._wake = False
            obs = await steps.run(observe_pool, self._observe_input(), policies.KUBE_CALL_STEP)
            left = [n for n in obs.nodes if n.name not in self._children]
            if spec is not None and left:
                await self._remove(spec, left, "pool deleted")
            if not obs.nodes and not self._children:
                break
            if not early:
                self._wake = False
            await steps.wait(lambda: self._wake, policies.POOL_RESYNC)
        if workflow.patched(RECONCILE_PATCH):
            schedule = ScheduleRef(ids.reconcile(self._pool))
            await steps.run(delete_reconcile_schedule, schedule, policies.KUBE_CALL_STEP)
        await steps.run(pool_finalizer, FinalizerInput(self._pool, False), policies.KUBE_CALL_STEP)
        return f"pool {self._pool} deleted; its nodes were taken out"


def _victims(members: list[NodeView], count: int) -> list[NodeView]:
    """Unhealthy first, then oldest."""
    ordered = sorted(members, key=lambda n: (0 if why_unavailable(n) else 1, n.created, n.name))
    return ordered[:count]


def _rollout_view(r: RolloutReport | None) -> dict[str, object]:
    if r is None:
        return {}
    return {
        "targetVersion": r.target_version,
        "state": r.state,
        "done": r.done,
        "inFlight": len(r.in_flight),
        "inFlightNodes": list(r.in_flight),
        "remaining": r.remaining,
        "waitingFor": r.waiting_for,
        "startedAt": r.started_at,
        "message": r.message,
    }


def _reconcile_view(r: ReconcileSummary | None) -> dict[str, object]:
    if r is None or r.dry_run:
        return {}
    return {"time": r.time, "found": r.found, "repaired": r.repaired, "deferred": r.deferred}


def _rollout_sentence(r: RolloutReport) -> str:
    text = f"rolling out {r.target_version}: {r.done} done, {len(r.in_flight)} in flight, "
    text += f"{r.remaining} remaining"
    return text + (f"; waiting for {r.waiting_for}" if r.waiting_for else "")
