"""`DecommissionWindowsNode`: take a Windows node out, step by step, undoing only what is asked.

One child workflow for everything that removes a node: a failed onboarding's compensation, the
rolling upgrade (Replace: drain and delete; InPlace: drain and deconfigure), scale-down and drift
repair. Steps, in order and each opt-in (`DecommissionInput`): cordon → drain (Eviction API,
PodDisruptionBudgets honoured) → deconfigure the host → delete the Node (UID precondition) →
terminate the VM → forget the host-key pin. Callers ask only for what they own, so nothing
winfleet did not create is ever torn down.

Best effort (compensation): every step is tried and what failed is reported in the result.
Otherwise the first failure stops it; a drain that fails lifts winfleet's cordon again so the
node keeps serving, and the error goes to the caller (an upgrade halts on it).

The node name is claimed for the run (activities/claims.py) unless the caller holds the claim.
No I/O here; the `progress` query shows the step in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities import versioning
    from activities.claims import ClaimInput, claim_node, release_node
    from activities.cloud.vm import retire_vm, terminate_vm
    from activities.contracts import (
        DecommissionInput,
        DecommissionResult,
        DecommissionStep,
        Platform,
    )
    from activities.deconfigure import DeconfigureInput, deconfigure_host
    from activities.drain import CordonInput, DrainInput, cordon_node, drain_node, uncordon_node
    from activities.hostkeys import ForgetPinInput, forget_host_key
    from activities.node import DeleteNodeInput, delete_node
    from workflows import policies, steps
    from workflows.failures import describe

Step = DecommissionStep


@dataclass
class DecommissionState:
    node_name: str = ""
    step: str = ""
    done: list[Step] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    status: str = "running"


@workflow.defn(name="DecommissionWindowsNode", versioning_behavior=versioning.SHORT_LIVED)
class DecommissionWindowsNode:
    def __init__(self) -> None:
        self._state = DecommissionState()

    @workflow.query(name="progress")
    def progress(self) -> dict[str, object]:
        s = self._state
        return {
            "node_name": s.node_name,
            "step": s.step,
            "done": [d.value for d in s.done],
            "left": list(s.left),
            "status": s.status,
        }

    @workflow.run
    async def run(self, inp: DecommissionInput) -> DecommissionResult:
        self._state.node_name = inp.node_name
        info = workflow.info()
        holder = inp.claimed_by or f"{info.workflow_id} {info.run_id}"
        claim = ClaimInput(node_name=inp.node_name, holder=holder, purpose="decommission")
        if not inp.claimed_by:
            await steps.run(claim_node, claim, policies.CLAIM_STEP)
        try:
            await self._steps(inp, holder)
        except GeneratorExit:
            raise  # evicted from the worker's cache, not ended: a replay resumes the run
        except BaseException:
            if not inp.claimed_by:
                await steps.run(release_node, claim, policies.CLAIM_STEP)
            raise
        if not inp.claimed_by:
            await steps.run(release_node, claim, policies.CLAIM_STEP)
        self._state.status = "completed" if not self._state.left else "completed with leftovers"
        return DecommissionResult(done=tuple(self._state.done), left=tuple(self._state.left))

    async def _steps(self, inp: DecommissionInput, holder: str) -> None:
        host = inp.host
        node = inp.node_name
        cordon = CordonInput(node_name=node, holder=holder)
        if inp.drain:
            await self._do(
                Step.CORDON, inp, lambda: steps.run(cordon_node, cordon, policies.KUBE_CALL_STEP)
            )
            drain_step = steps.bounded(
                policies.KUBE_CALL_STEP,
                timedelta(seconds=inp.drain_timeout_s),
                policies.DRAIN_MARGIN,
            )
            drain = DrainInput(node, timeout_s=inp.drain_timeout_s, force=inp.force_drain)
            drained = await self._do(
                Step.DRAIN,
                inp,
                lambda: steps.run(drain_node, drain, drain_step),
                undo_on_failure=lambda: steps.run(uncordon_node, cordon, policies.KUBE_CALL_STEP),
            )
            if not drained:
                return
        if inp.deconfigure and host is not None:
            await self._do(
                Step.DECONFIGURE,
                inp,
                lambda: steps.run(
                    deconfigure_host,
                    DeconfigureInput(
                        node_name=node,
                        address=host.address,
                        username=host.username,
                        private_key_secret=inp.private_key_secret,
                    ),
                    policies.DECONFIGURE_UNDO_STEP,
                ),
            )
        if inp.delete_node:
            await self._do(
                Step.DELETE_NODE,
                inp,
                lambda: steps.run(
                    delete_node,
                    DeleteNodeInput(
                        node_name=node, uid=inp.node_uid, created_after=inp.node_created_after
                    ),
                    policies.UNDO_STEP,
                ),
            )
        if inp.terminate_vm and host is not None and host.platform != Platform.BYOH:
            vm = host
            await self._do(
                Step.TERMINATE_VM, inp, lambda: steps.run(terminate_vm, vm, policies.UNDO_STEP)
            )
        elif inp.retire_vm is not None and inp.retire_vm.platform != Platform.BYOH:
            pool_vm = inp.retire_vm
            await self._do(
                Step.TERMINATE_VM, inp, lambda: steps.run(retire_vm, pool_vm, policies.UNDO_STEP)
            )
        if inp.forget_pin and host is not None:
            await self._do(
                Step.FORGET_PIN,
                inp,
                lambda: steps.run(
                    forget_host_key,
                    ForgetPinInput(address=host.address, node_name=node),
                    policies.UNDO_STEP,
                ),
            )

    async def _do(
        self,
        step: Step,
        inp: DecommissionInput,
        action: Callable[[], Awaitable[object]],
        *,
        undo_on_failure: Callable[[], Awaitable[object]] | None = None,
    ) -> bool:
        """Await one step; True when it succeeded. Failures: recorded (best effort) or raised."""
        s = self._state
        s.step = step.value
        workflow.logger.info("decommission %s: %s (%s)", inp.node_name, step.value, inp.reason)
        try:
            await action()
        except ActivityError as err:
            why = describe(err)
            if undo_on_failure is not None:
                await undo_on_failure()
            if not inp.best_effort:
                s.status = "failed"
                s.left.append(f"{step.value}: {why}")
                raise
            workflow.logger.warning("decommission %s: %s failed: %s", inp.node_name, step, why)
            s.left.append(f"{step.value}: {why}")
            return False
        except (CancelledError, asyncio.CancelledError):
            s.status = "cancelled"
            raise
        s.done.append(step)
        return True
