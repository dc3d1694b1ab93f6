"""`ReconcileWindowsPool`: put a pool back to what it declares, within its disruption budget.

Run by the pool's Temporal Schedule `reconcile-<pool>` (activities/schedules.py; every
`spec.reconcile.interval`, at once when the spec changes), by `winfleet reconcile`, `temporal
workflow start` or the Web UI with `{"pool": "<name>"}`. One run:
1. **observes** (read-only activities): the pool's nodes, hosts and VMs (`observe_drift`), then
   every node over SSH in parallel batches (`check_nodes`: only drifted nodes come back, so a
   clean 500-node pool leaves a few small events in history);
2. **plans** (workflows/fleet/drift.py, pure): who acts on each finding, and the
   MachineHealthCheck-style short-circuit (more unhealthy nodes than `maxUnhealthy`: nothing
   is repaired, the pool shows Degraded);
3. **acts**, unless `dry_run`: wakes the pool for its replicas and BYOH hosts, starts or joins
   the rollout for stale versions, terminates orphan VMs (under the node name's claim),
   repairs nodes in place with the onboarding activities, or replaces (cloud) / reconfigures
   (BYOH) them through `DecommissionWindowsNode` (and `OnboardWindowsNode`). Everything that
   touches a node holds a grant of the pool's ledger first (`request_disruption`), so repairs
   and the rollout together stay within `maxUnhealthy`; a refused grant is deferred to the next
   run. A repaired node is checked again; one still broken is replaced/reconfigured under the
   grant it holds. Each repair is recorded as an Event on the Node (and spans in the trace).
4. **reports**: the result is a JSON report (per node: found, done or deferred, and why); the
   pool workflow gets a summary (`reconcile_update`) for `status.lastReconcile` and Degraded.
No I/O here; `progress` shows the stage and what is in flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import desired_state, versioning
    from activities.claims import ClaimInput, claim_node, release_node
    from activities.contracts import ByohHostSpec, Platform
    from activities.csr import ApproveCsrsInput, approve_node_csrs
    from activities.drift_check import check_nodes
    from activities.drift_contracts import (
        CheckNodesInput,
        CheckNodesResult,
        ClusterObservation,
        Finding,
        NodeDrift,
        NodeReport,
        OrphanVm,
        OrphanVmInput,
        Outcome,
        ReconcileInput,
        ReconcileReport,
        ReconcileSummary,
        RepairRecord,
        ServiceControlInput,
    )
    from activities.drift_observe import ObserveDriftInput, observe_drift
    from activities.drift_repair import record_repair, retire_orphan_vm, service_control
    from activities.kubelet import ConfigureKubeletInput, configure_kubelet
    from activities.network import (
        ConfigureCniInput,
        HybridOverlayInput,
        KubeProxyInput,
        configure_cni,
        start_hybrid_overlay,
        start_kube_proxy,
    )
    from activities.node import WaitNodeInput, wait_node_ready
    from activities.payload import CopyPayloadInput, copy_payload
    from activities.pool_contracts import NodeView, PoolSignal, PoolSpec
    from activities.pool_state import PoolRef, read_pool
    from activities.windows import services
    from workflows import ids, policies, pool_link, search_attributes, steps
    from workflows.decommission import DecommissionWindowsNode
    from workflows.failures import describe
    from workflows.fleet import drift, machines
    from workflows.fleet.drift import Item, NodePlan, Plan, PoolFacts, Remedy
    from workflows.onboard import OnboardWindowsNode

DONE, DELEGATED, DEFERRED, FAILED = "done", "delegated", "deferred", "failed"
PLANNED, REPORTED = "planned", "reported"


@dataclass
class RunState:
    stage: str = "starting"
    in_flight: dict[str, str] = field(default_factory=dict)  # node -> what is being done
    results: dict[str, tuple[str, str]] = field(default_factory=dict)  # node -> (result, why)
    pool_results: dict[str, tuple[str, str]] = field(default_factory=dict)  # item key -> ...
    rollout: tuple[str, str] | None = None


@workflow.defn(name="ReconcileWindowsPool", versioning_behavior=versioning.SHORT_LIVED)
class ReconcileWindowsPool:
    def __init__(self) -> None:
        self._s = RunState()
        self._pool = ""
        self._checked = 0
        self._obs = ClusterObservation(found=False)

    @workflow.query(name="progress")
    def progress(self) -> dict[str, object]:
        return {
            "pool": self._pool,
            "stage": self._s.stage,
            "checked": self._checked,
            "in_flight": dict(sorted(self._s.in_flight.items())),
            "done": sorted(n for n, r in self._s.results.items() if r[0] == DONE),
        }

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileReport:
        self._pool = inp.pool
        workflow.upsert_search_attributes([search_attributes.POOL.value_set(inp.pool)])
        read = await steps.run(read_pool, PoolRef(inp.pool), policies.KUBE_CALL_STEP)
        if read.spec is None:
            why = read.problem or ("it is being deleted" if read.deleting else "it does not exist")
            return self._skipped(inp, f"pool {inp.pool}: {why}")
        spec = read.spec
        observed_at = workflow.now()
        self._s.stage = "observing"
        obs = await steps.run(observe_drift, self._observe_input(spec), policies.KUBE_CALL_STEP)
        if not obs.found:
            return self._skipped(inp, f"pool {inp.pool} is gone or being deleted")
        self._obs = obs
        self._s.stage = "checking nodes"
        drifted = await self._check(spec, obs)
        facts = PoolFacts(
            platform=spec.platform,
            desired=obs.listed_hosts if spec.platform == Platform.BYOH else spec.replicas,
            max_unhealthy=spec.max_unhealthy,
            version=spec.version or read.default_version,
            unhealthy_timeout_s=spec.reconcile.unhealthy_timeout_s,
            node_startup_timeout_s=spec.upgrade.node_startup_timeout_s,
        )
        plan = drift.plan(facts, obs, drifted, workflow.now())
        if not inp.dry_run:
            self._s.stage = "acting"
            await self._act(spec, plan)
        self._s.stage = "done"
        report = self._report(inp, plan, observed_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        if not inp.dry_run:
            await pool_link.signal(self._pool, "reconcile_update", report.summary)
        return report

    # --- observe ------------------------------------------------------------------------------
    def _observe_input(self, spec: PoolSpec) -> ObserveDriftInput:
        return ObserveDriftInput(
            pool=self._pool,
            platform=spec.platform,
            byoh_hosts=spec.byoh_hosts,
            region=spec.aws.region if spec.aws else "",
            resource_group=spec.azure.resource_group if spec.azure else "",
        )

    def _check_input(
        self,
        spec: PoolSpec,
        *,
        shard: int = 0,
        shards: int = 1,
        skip: tuple[str, ...] = (),
        only: tuple[str, ...] = (),
    ) -> CheckNodesInput:
        return CheckNodesInput(
            pool=self._pool,
            platform=spec.platform,
            shard=shard,
            shards=shards,
            skip=skip,
            private_key_secret=spec.private_key_secret,
            pool_version=spec.version,
            machine_hash=desired_state.machine_hash(spec.platform, spec.aws, spec.azure),
            only=only,
        )

    async def _check(self, spec: PoolSpec, obs: ClusterObservation) -> tuple[NodeDrift, ...]:
        """Every node not being changed, gone or whose VM is gone, in parallel batches."""
        skip = tuple(sorted({n.name for n in obs.nodes if n.busy} | set(obs.vm_gone)))
        count = len(obs.nodes)
        shards = max(1, -(-count // policies.NODES_PER_CHECK_BATCH))
        batches = [
            steps.run(
                check_nodes,
                self._check_input(spec, shard=i, shards=shards, skip=skip),
                policies.CHECK_NODES_STEP,
            )
            for i in range(shards if count else 0)
        ]
        results: list[CheckNodesResult] = list(await asyncio.gather(*batches))
        self._checked = sum(r.checked for r in results)
        return tuple(d for r in results for d in r.drifted)

    # --- act ----------------------------------------------------------------------------------
    async def _act(self, spec: PoolSpec, plan: Plan) -> None:
        if plan.short_circuit:
            workflow.logger.warning("pool %s: %s", self._pool, plan.short_circuit)
            return
        if plan.start_rollout:
            self._s.rollout = await self._start_rollout()
        for vm in plan.terminate:
            self._s.pool_results[vm.vm_id] = await self._terminate(spec, vm)
        tasks = [self._remedy(spec, n) for n in plan.nodes if n.remedy in drift.DISRUPTIVE]
        await asyncio.gather(*tasks)
        replaced = any(
            n.remedy == Remedy.REPLACE and self._s.results.get(n.node, ("",))[0] == DONE
            for n in plan.nodes
        )
        if plan.wake_pool or replaced:
            await pool_link.signal(self._pool, "spec_changed", PoolSignal())

    async def _start_rollout(self) -> tuple[str, str]:
        try:
            await pool_link.start_rollout(self._pool)
        except ActivityError as err:
            return FAILED, f"could not start the rollout: {describe(err)}"
        return DELEGATED, f"UpgradeWindowsPool {ids.upgrade(self._pool)} started or joined"

    async def _terminate(self, spec: PoolSpec, vm: OrphanVm) -> tuple[str, str]:
        """Delete an orphan VM while holding its node name's claim (no onboarding meanwhile)."""
        claim = ClaimInput(vm.node, self._holder(), "drift: orphan VM")
        try:
            await steps.run(claim_node, claim, policies.CLAIM_STEP)
        except ActivityError as err:
            return DEFERRED, describe(err)
        try:
            gone = await steps.run(
                retire_orphan_vm,
                OrphanVmInput(
                    pool=self._pool,
                    platform=spec.platform,
                    node_name=vm.node,
                    region=spec.aws.region if spec.aws else "",
                    resource_group=spec.azure.resource_group if spec.azure else "",
                ),
                policies.UNDO_STEP,
            )
        except GeneratorExit:
            raise  # evicted from the worker's cache, not ended: a replay resumes the run
        except BaseException as err:
            await steps.run(release_node, claim, policies.CLAIM_STEP)
            if isinstance(err, ActivityError):
                return FAILED, describe(err)
            raise
        await steps.run(release_node, claim, policies.CLAIM_STEP)
        if not gone:
            return DEFERRED, f"node {vm.node} registered meanwhile: the VM is no orphan"
        return DONE, f"VM {vm.vm_id} terminated"

    async def _remedy(self, spec: PoolSpec, node: NodePlan) -> None:
        """One node's repair or replacement, under a grant of the pool's ledger."""
        kinds = sorted({i.finding.check.value for i in node.items if i.remedy == node.remedy})
        in_place = node.node if node.remedy == Remedy.RECONFIGURE else ""
        reason = f"drift ({', '.join(kinds)}): {node.remedy}"
        decision = await pool_link.ask(self._pool, node.node, reason, replacement=in_place)
        if not decision.granted:
            self._s.results[node.node] = (DEFERRED, decision.why)
            return
        try:
            if node.remedy == Remedy.REPAIR:
                result = await self._repair(spec, node)
            else:
                result = await self._replace(spec, node, node.remedy)
            self._s.results[node.node] = result
        except GeneratorExit:
            raise  # evicted from the worker's cache, not ended: a replay resumes the run
        except BaseException:
            await self._let_go(node.node)
            raise
        await self._let_go(node.node)

    async def _let_go(self, node: str) -> None:
        self._s.in_flight.pop(node, None)
        await pool_link.release(self._pool, node)

    async def _repair(self, spec: PoolSpec, node: NodePlan) -> tuple[str, str]:
        d = node.drift
        assert d is not None  # a repair is planned only for what a node check found
        todo = drift.repair_steps(d.findings)
        claim = ClaimInput(d.node, self._holder(), "drift repair")
        try:
            await steps.run(claim_node, claim, policies.CLAIM_STEP)
        except ActivityError as err:
            return DEFERRED, describe(err)
        failure = ""
        try:
            self._s.in_flight[d.node] = "repairing: " + ", ".join(todo.repairs)
            try:
                await self._apply(spec, d, todo)
                self._s.in_flight[d.node] = "checking again"
                broken = drift.still_broken(await self._recheck(spec, d.node))
                if not broken:
                    await steps.run(
                        wait_node_ready,
                        WaitNodeInput(d.node, policies.REPAIR_READY_BUDGET.total_seconds()),
                        policies.REPAIR_STEP,
                    )
            except ActivityError as err:
                failure = describe(err)
                broken = ()
        except GeneratorExit:
            raise  # evicted from the worker's cache, not ended: a replay resumes the run
        except BaseException:
            await steps.run(release_node, claim, policies.CLAIM_STEP)
            raise
        await steps.run(release_node, claim, policies.CLAIM_STEP)
        left = [drift.label(f) for f in broken] + ([failure] if failure else [])
        await self._record(spec, d, todo.repairs, tuple(left))
        if not left:
            return DONE, "put right: " + ", ".join(todo.repairs)
        worse = Remedy.RECONFIGURE if spec.platform == Platform.BYOH else Remedy.REPLACE
        why = "; ".join(left)
        workflow.logger.warning("pool %s: %s still broken (%s): %s", self._pool, d.node, why, worse)
        result, how = await self._replace(spec, node, worse)
        return (result, f"still broken after repair ({why}); {worse}: {how}")

    async def _apply(self, spec: PoolSpec, d: NodeDrift, todo: drift.RepairSteps) -> None:
        """The onboarding activities (and service_control) the findings call for, in order."""
        host = {
            "node_name": d.node,
            "address": d.address,
            "username": d.username,
            "private_key_secret": spec.private_key_secret,
        }
        step = policies.REPAIR_STEP
        network = policies.REPAIR_NETWORK_BUDGET.total_seconds()
        control = ServiceControlInput(d.node, d.address, d.username, spec.private_key_secret)
        if todo.forget or todo.stop or todo.automatic:
            prepare = replace(control, forget=todo.forget, stop=todo.stop, automatic=todo.automatic)
            await steps.run(service_control, prepare, step)
        if todo.copy_payload:
            await steps.run(copy_payload, CopyPayloadInput(**host, version=d.version), step)
        if todo.configure_kubelet:
            kubelet = ConfigureKubeletInput(**host, node_ip=d.node_ip)
            await steps.run(configure_kubelet, kubelet, step)
        elif todo.start_kubelet:
            start = replace(control, start=(services.KUBELET_SERVICE,))
            await steps.run(service_control, start, step)
        if todo.hybrid_overlay:
            hybrid = HybridOverlayInput(**host, timeout_s=network)
            await steps.run(start_hybrid_overlay, hybrid, step)
        if todo.cni:
            cni = ConfigureCniInput(**host, node_subnet=d.node_subnet)
            await steps.run(configure_cni, cni, step)
        if todo.kube_proxy:
            proxy = KubeProxyInput(**host, node_subnet=d.node_subnet, timeout_s=network)
            await steps.run(start_kube_proxy, proxy, step)
        if todo.exporter:
            await steps.run(service_control, replace(control, exporter=True), step)
        if todo.approve_csrs:
            csrs = ApproveCsrsInput(
                node_name=d.node,
                addresses=(d.node_ip,),
                dns_names=(d.node,),
                timeout_s=policies.REPAIR_CSR_BUDGET.total_seconds(),
                address=d.address,
                username=d.username,
                private_key_secret=spec.private_key_secret,
            )
            await steps.run(approve_node_csrs, csrs, step)

    async def _recheck(self, spec: PoolSpec, node: str) -> tuple[Finding, ...]:
        again = await steps.run(
            check_nodes, self._check_input(spec, only=(node,)), policies.CHECK_NODES_STEP
        )
        return tuple(f for d in again.drifted for f in d.findings)

    async def _record(
        self, spec: PoolSpec, d: NodeDrift, repaired: tuple[str, ...], left: tuple[str, ...]
    ) -> None:
        machine = desired_state.machine_hash(spec.platform, spec.aws, spec.azure)
        if spec.platform == Platform.BYOH:
            byoh = ByohHostSpec(address=d.address, username=d.username)
            machine = desired_state.machine_hash(Platform.BYOH, byoh=byoh)
        record = RepairRecord(
            node_name=d.node,
            repaired=repaired,
            run=workflow.info().run_id,
            still_broken=left,
            version=d.version,
            node_subnet=d.node_subnet,
            machine_hash=machine,
        )
        try:
            await steps.run(record_repair, record, policies.KUBE_CALL_STEP)
        except ActivityError as err:  # the repair stands; only its record is missing
            workflow.logger.warning("pool %s: recording %s: %s", self._pool, d.node, describe(err))

    async def _replace(self, spec: PoolSpec, node: NodePlan, how: Remedy) -> tuple[str, str]:
        """Cloud: drain (if it still serves), delete the Node and its VM; the pool onboards a
        successor. BYOH: drain, deconfigure, delete the Node, onboard the same host again."""
        state = next((n for n in self._obs.nodes if n.name == node.node), None)
        address = state.address if state else (node.drift.address if node.drift else "")
        username = node.drift.username if node.drift else ""
        byoh = spec.platform == Platform.BYOH
        view = NodeView(name=node.node, address=address)  # type: ignore[arg-type]
        host = machines.host_of(spec, view)
        if username:
            host = replace(host, username=username)
        serving = state is not None and state.ready == "True" and node.node not in self._obs.vm_gone
        self._s.in_flight[node.node] = "draining and removing" if serving else "removing"
        plan = machines.decommission_input(
            spec, host, f"drift reconciliation: {how}", drain=serving
        )
        try:
            await workflow.execute_child_workflow(
                DecommissionWindowsNode.run,
                plan,
                id=ids.decommission(self._pool, node.node),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            return DEFERRED, f"{ids.decommission(self._pool, node.node)} runs already"
        except ChildWorkflowError as err:
            return FAILED, f"taking {node.node} out failed: {describe(err)}"
        if not byoh:
            return DONE, "taken out; the pool onboards its successor"
        self._s.in_flight[node.node] = "configuring again"
        version = (state.version if state else "") or spec.version
        again = machines.onboard_input(
            spec, node.node, version, ByohHostSpec(address, host.username)
        )
        try:
            await workflow.execute_child_workflow(
                OnboardWindowsNode.run,
                again,
                id=ids.onboard(self._pool, node.node),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except (ChildWorkflowError, WorkflowAlreadyStartedError) as err:
            return FAILED, f"configuring {node.node} again failed: {describe(err)}"
        return DONE, "deconfigured and configured again on the same host"

    def _holder(self) -> str:
        info = workflow.info()
        return f"{info.workflow_id} {info.run_id}"

    # --- the report ---------------------------------------------------------------------------
    def _pool_result(self, item: Item, dry_run: bool) -> tuple[str, str]:
        if item.remedy == Remedy.WAIT:
            return DEFERRED, item.why
        if dry_run:
            return PLANNED, item.why
        if item.remedy == Remedy.POOL:
            return DELEGATED, f"{item.why}; the pool workflow was woken"
        return self._s.pool_results.get(item.finding.subject, (FAILED, "not attempted"))

    def _node_result(self, node: NodePlan, item: Item, dry_run: bool) -> tuple[str, str]:
        if item.remedy == Remedy.WAIT:
            return DEFERRED, item.why
        if item.remedy == Remedy.NONE:
            return REPORTED, item.why
        if dry_run:
            return PLANNED, item.why
        if item.remedy == Remedy.ROLLOUT:
            return self._s.rollout or (FAILED, "not attempted")
        return self._s.results.get(node.node, (FAILED, "not attempted"))

    def _report(self, inp: ReconcileInput, plan: Plan, observed_at: str) -> ReconcileReport:
        def outcome(item: Item, result: tuple[str, str]) -> Outcome:
            f = item.finding
            return Outcome(f.check.value, f.subject, f.detail, item.remedy.value, *result)

        pool = tuple(outcome(i, self._pool_result(i, inp.dry_run)) for i in plan.pool_items)
        nodes = tuple(
            NodeReport(
                n.node, tuple(outcome(i, self._node_result(n, i, inp.dry_run)) for i in n.items)
            )
            for n in plan.nodes
        )
        every = [*pool, *(o for n in nodes for o in n.outcomes)]
        repaired = sum(1 for o in every if o.result in (DONE, DELEGATED))
        deferred = sum(1 for o in every if o.result in (DEFERRED, FAILED))
        if plan.short_circuit:
            state = "Degraded"
        elif inp.dry_run:
            state = "Planned"
        elif not every:
            state = "Clean"
        else:
            state = "Deferred" if deferred else "Repaired"
        summary = ReconcileSummary(
            time=observed_at,
            found=len(every),
            repaired=repaired,
            deferred=deferred,
            degraded=plan.short_circuit,
            dry_run=inp.dry_run,
        )
        return ReconcileReport(
            pool=self._pool,
            state=state,
            summary=summary,
            nodes_checked=self._checked,
            unhealthy=plan.unhealthy,
            max_unhealthy=plan.max_unhealthy,
            pool_outcomes=pool,
            nodes=nodes,
            message="; ".join(m for m in (plan.short_circuit, self._obs.vm_problem) if m),
        )

    def _skipped(self, inp: ReconcileInput, why: str) -> ReconcileReport:
        self._s.stage = "done"
        now = workflow.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        summary = ReconcileSummary(time=now, dry_run=inp.dry_run)
        return ReconcileReport(pool=inp.pool, state="Skipped", summary=summary, message=why)
