"""`OnboardWindowsNode`: one durable workflow per Windows node, from VM to Ready node.

Reads as the ordered list of phases it is (VM create → wait for SSH → payload → kubelet →
CSRs → hybrid-overlay → CNI → kube-proxy → Ready), each one or more idempotent activities under
a named, time-bounded step policy (workflows/policies.py). Before touching anything it refuses
bad input, claims the node name (one run per node at a time) and checks the name, key and
version (`preflight_node`); it remembers what exists already.

When a phase fails for good, or the run is cancelled, it compensates through the
`DecommissionWindowsNode` child — and undoes only what this very run did: a VM it launched, a
Node that registered during the run, a host it configured, a host key it pinned first. A VM
found by its tags, a Node that existed before, a host that was already configured are left as
they were (re-onboarding a Ready node is a re-configure that converges; if it fails, the node
keeps running). Then it records `MachineSetupFailure` and fails with an error naming the phase,
the host, what was left alone and what to do. No I/O here; started by `winfleet onboard`,
`temporal workflow start` or the Web UI with plain JSON (see README).

Runs started before this flow existed replay through `workflows/onboard_legacy.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities import desired_state, versioning
    from activities.claims import ClaimInput, claim_node, release_node
    from activities.cloud.vm import create_vm, release_vm
    from activities.contracts import (
        DecommissionInput,
        HostRef,
        NodeName,
        OnboardNodeInput,
        OnboardNodeResult,
        Phase,
        Platform,
        PreflightResult,
        Progress,
    )
    from activities.csr import ApproveCsrsInput, approve_node_csrs
    from activities.host import HostFacts, WaitForSshInput, wait_for_ssh
    from activities.kubelet import ConfigureKubeletInput, configure_kubelet
    from activities.network import (
        ConfigureCniInput,
        HybridOverlayInput,
        KubeProxyInput,
        configure_cni,
        start_hybrid_overlay,
        start_kube_proxy,
    )
    from activities.node import (
        FinalizeNodeInput,
        SetupFailureInput,
        WaitNodeAnnotationInput,
        WaitNodeInput,
        finalize_node,
        record_setup_failure,
        wait_node_annotation,
        wait_node_ready,
    )
    from activities.payload import CopyPayloadInput, copy_payload
    from activities.preflight import PreflightInput, preflight_node
    from workflows import ids, policies, search_attributes, steps, validation
    from workflows.decommission import DecommissionWindowsNode
    from workflows.failures import advice, cause, describe
    from workflows.onboard_legacy import LegacyOnboarding
    from workflows.onboard_state import OnboardState
    from workflows.policies import Step

I = TypeVar("I")  # noqa: E741 - a step's input
O = TypeVar("O")  # noqa: E741 - a step's output

# Claims, preflight, ownership-aware compensation through DecommissionWindowsNode, time bounds.
HARDENED_PATCH = "hardened-onboarding"
# Claim, preflight, finalize and release as local activities (steps.local): a few Kubernetes
# calls each, no wait; four activity tasks fewer per node through the server.
LOCAL_STEPS_PATCH = "local-short-steps"

NODE_SUBNET_ANNOTATION = "k8s.ovn.org/hybrid-overlay-node-subnet"
GATEWAY_MAC_ANNOTATION = "k8s.ovn.org/hybrid-overlay-distributed-router-gateway-mac"


@dataclass
class Owned:
    """What this run created or changed, and so may undo (nothing else is ever undone)."""

    vm: bool = False  # this run launched the VM
    pin: bool = False  # this run pinned the host key (first contact)
    configured: bool = False  # this run configured a host that was not configured before
    node_registered: bool = False  # the Node did not exist when the run began


@workflow.defn(name="OnboardWindowsNode", versioning_behavior=versioning.SHORT_LIVED)
class OnboardWindowsNode:
    def __init__(self) -> None:
        self._state = OnboardState()
        self._owned = Owned()
        self._facts: HostFacts | None = None
        self._local_steps = False

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        s = self._state
        return Progress(
            node_name=s.node_name,
            phase=s.phase.value if s.phase else "",
            completed=tuple(p.value for p in s.completed),
            status=s.status,
            detail=s.detail,
            host=s.host.address if s.host else "",
        )

    @workflow.run
    async def run(self, inp: OnboardNodeInput) -> OnboardNodeResult:
        self._state.node_name = inp.node_name
        if not workflow.patched(HARDENED_PATCH):
            return await LegacyOnboarding(self._state).run(inp)
        problems = validation.onboard_input_problems(inp)
        if problems:
            raise self._refused(f"node {inp.node_name!r}: " + "; ".join(problems))
        self._local_steps = workflow.patched(LOCAL_STEPS_PATCH)
        workflow.upsert_search_attributes(
            [
                search_attributes.NODE.value_set(inp.node_name),
                search_attributes.POOL.value_set(inp.pool),
            ]
        )
        info = workflow.info()
        claim = ClaimInput(inp.node_name, f"{info.workflow_id} {info.run_id}", "onboard")
        try:
            await self._short(claim_node, claim, policies.CLAIM_STEP)
        except ActivityError as err:
            raise self._refused(cause(err)[1], cause(err)[0]) from err
        try:
            result = await self._claimed(inp, claim)
        except GeneratorExit:
            raise  # evicted from the worker's cache, not ended: a replay resumes the run
        except BaseException:
            await self._short(release_node, claim, policies.CLAIM_STEP)
            raise
        await self._short(release_node, claim, policies.CLAIM_STEP)
        return result

    async def _claimed(self, inp: OnboardNodeInput, claim: ClaimInput) -> OnboardNodeResult:
        try:
            pre = await self._short(
                preflight_node,
                PreflightInput(inp.node_name, inp.private_key_secret, inp.version),
                policies.PREFLIGHT_STEP,
            )
        except ActivityError as err:
            raise self._refused(cause(err)[1], cause(err)[0]) from err
        self._owned.node_registered = not pre.node.exists
        try:
            return await self._onboard(inp, pre)
        except (ActivityError, CancelledError, asyncio.CancelledError) as err:
            cancelled = is_cancelled_exception(err)
            await self._compensate(
                inp, pre, claim, reason="cancelled" if cancelled else describe(err)
            )
            if isinstance(err, ActivityError) and not cancelled:
                raise self._failure(inp, pre, err) from err
            raise  # a cancellation stays one: the run ends CANCELED

    async def _onboard(self, inp: OnboardNodeInput, pre: PreflightResult) -> OnboardNodeResult:
        node = inp.node_name

        self._enter(Phase.VM_CREATE)
        host = await steps.run(create_vm, validation.vm_input(inp), policies.VM_CREATE_STEP)
        self._state.host = host
        self._owned.vm = host.created_by_us
        # Every host-side step names the same host and key (a secret's name, never the key).
        on_host = {
            "node_name": node,
            "address": host.address,
            "username": host.username,
            "private_key_secret": inp.private_key_secret,
        }

        self._enter(Phase.WAIT_SSH)
        facts = await steps.run(
            wait_for_ssh,
            WaitForSshInput(
                **on_host,
                supported_builds=(),
                timeout_s=policies.WAIT_SSH_BUDGET.total_seconds(),
            ),
            policies.WAIT_SSH_STEP,
        )
        self._facts = facts
        self._owned.pin = facts.pinned_now

        self._enter(Phase.COPY_PAYLOAD)
        copied = await steps.run(
            copy_payload,
            CopyPayloadInput(**on_host, version=inp.version),
            policies.COPY_PAYLOAD_STEP,
        )
        self._state.bytes_copied = copied.bytes_copied

        self._enter(Phase.CONFIGURE_KUBELET)
        self._state.kubelet_started = True
        self._owned.configured = not (facts.kubelet_installed or pre.node.exists)
        await steps.run(
            configure_kubelet,
            ConfigureKubeletInput(**on_host, node_ip=host.ip or host.address),
            policies.REMOTE_STEP,
        )

        self._enter(Phase.APPROVE_CSRS)
        csr_input = ApproveCsrsInput(
            addresses=(host.ip or host.address,),
            dns_names=(node, facts.hostname),
            timeout_s=policies.CSR_BUDGET.total_seconds(),
            **on_host,
        )
        await steps.run(approve_node_csrs, csr_input, policies.CSR_STEP)

        self._enter(Phase.HYBRID_OVERLAY)
        network_budget = policies.NETWORK_BUDGET.total_seconds()
        annotations = await steps.run(
            wait_node_annotation,
            WaitNodeAnnotationInput(node, (NODE_SUBNET_ANNOTATION,), network_budget),
            policies.NETWORK_STEP,
        )
        node_subnet = annotations[NODE_SUBNET_ANNOTATION]
        await steps.run(
            start_hybrid_overlay,
            HybridOverlayInput(**on_host, timeout_s=network_budget),
            policies.NETWORK_STEP,
        )
        await steps.run(
            wait_node_annotation,
            WaitNodeAnnotationInput(node, (GATEWAY_MAC_ANNOTATION,), network_budget),
            policies.NETWORK_STEP,
        )

        self._enter(Phase.CNI)
        await steps.run(
            configure_cni,
            ConfigureCniInput(**on_host, node_subnet=node_subnet),
            policies.REMOTE_STEP,
        )

        self._enter(Phase.KUBE_PROXY)
        await steps.run(
            start_kube_proxy,
            KubeProxyInput(**on_host, node_subnet=node_subnet, timeout_s=network_budget),
            policies.NETWORK_STEP,
        )

        self._enter(Phase.NODE_READY)
        await steps.run(
            wait_node_ready,
            WaitNodeInput(node, policies.NODE_READY_BUDGET.total_seconds()),
            policies.NODE_READY_STEP,
        )
        # configure-cni restarts kubelet; one that restarted before it had stored its serving
        # certificate asks again. Approve that (valid) request too.
        await steps.run(approve_node_csrs, csr_input, policies.CSR_STEP)
        version = await self._short(
            finalize_node,
            FinalizeNodeInput(
                node_name=node,
                version=pre.version,
                private_key_secret=inp.private_key_secret,
                pool=inp.pool,
                host=host.address,
                node_subnet=node_subnet,
                machine_hash=desired_state.machine_hash(inp.platform, inp.aws, inp.azure, inp.byoh),
            ),
            policies.KUBE_CALL_STEP,
        )
        self._state.completed.append(Phase.NODE_READY)
        self._state.status = "completed"
        self._state.detail = "node Ready and annotated"
        return OnboardNodeResult(
            node_name=NodeName(node),
            host=host,
            version=version,
            phases_completed=tuple(self._state.completed),
            bytes_copied=self._state.bytes_copied,
        )

    # --- helpers ---------------------------------------------------------------------------
    async def _short(self, activity: Callable[[I], Awaitable[O]], arg: I, step: Step) -> O:
        """A short Kubernetes-only step: a local activity on runs started since
        LOCAL_STEPS_PATCH, an activity task on the runs before it (their histories)."""
        if self._local_steps:
            return await steps.local(activity, arg, step)
        return await steps.run(activity, arg, step)

    def _enter(self, phase: Phase) -> None:
        if self._state.phase is not None and self._state.phase not in self._state.completed:
            self._state.completed.append(self._state.phase)
        self._state.phase = phase
        self._state.detail = ""
        workflow.upsert_search_attributes([search_attributes.PHASE.value_set(phase.value)])
        workflow.logger.info("node %s: phase %s", self._state.node_name, phase.value)

    def _refused(self, message: str, cause_type: str = "InvalidRequest") -> ApplicationError:
        """A refusal before anything was created or changed."""
        self._state.status = "failed"
        self._state.detail = message
        return ApplicationError(
            f"refused before anything was created: {message}",
            type=cause_type or "InvalidRequest",
            non_retryable=True,
        )

    async def _compensate(
        self, inp: OnboardNodeInput, pre: PreflightResult, claim: ClaimInput, *, reason: str
    ) -> None:
        """Undo what this run did, through DecommissionWindowsNode; every step is idempotent."""
        s = self._state
        s.status = "compensating"
        failed_phase = s.phase.value if s.phase else "start"
        host = s.host
        if host is None and s.phase == Phase.VM_CREATE and inp.platform != Platform.BYOH:
            # create_vm failed for good after it may have launched a VM (this run's only).
            try:
                await steps.run(release_vm, validation.vm_input(inp), policies.UNDO_STEP)
            except ActivityError as err:
                s.detail += f" compensation left: release VM: {describe(err)};"
        if host is not None:
            await self._decommission(inp, host, pre, claim, reason)
        kept = self._kept(pre, host)
        if kept:
            s.detail += f" left as they were (not this run's): {', '.join(kept)};"
        try:
            await steps.run(
                record_setup_failure,
                SetupFailureInput(
                    node_name=inp.node_name,
                    phase=failed_phase,
                    reason=reason,
                    key=workflow.info().run_id,
                ),
                policies.UNDO_STEP,
            )
        except ActivityError as err:
            s.detail += f" compensation left: event: {describe(err)};"
        s.status = "failed"

    async def _decommission(
        self,
        inp: OnboardNodeInput,
        host: HostRef,
        pre: PreflightResult,
        claim: ClaimInput,
        reason: str,
    ) -> None:
        s, own = self._state, self._owned
        plan = DecommissionInput(
            node_name=inp.node_name,
            pool=inp.pool,
            reason=f"onboarding failed in phase {s.phase.value if s.phase else 'start'}: {reason}",
            host=host,
            private_key_secret=inp.private_key_secret,
            deconfigure=s.kubelet_started and own.configured,
            delete_node=s.kubelet_started and own.node_registered,
            node_created_after=workflow.info().start_time.isoformat(),
            terminate_vm=own.vm,
            forget_pin=own.pin,
            best_effort=True,
            claimed_by=claim.holder,
        )
        if not (plan.deconfigure or plan.delete_node or plan.terminate_vm or plan.forget_pin):
            return
        try:
            result = await workflow.execute_child_workflow(
                DecommissionWindowsNode.run,
                plan,
                id=f"{ids.decommission(inp.pool, inp.node_name)}-{workflow.info().run_id[:8]}",
                execution_timeout=policies.DECOMMISSION_TIMEOUT,
            )
        except ChildWorkflowError as err:
            s.detail += f" compensation left: {describe(err)};"
            return
        for left in result.left:
            s.detail += f" compensation left: {left};"

    def _kept(self, pre: PreflightResult, host: HostRef | None) -> list[str]:
        """What a failure leaves alone because this run did not create it."""
        kept = []
        if host is not None and host.platform != Platform.BYOH and not self._owned.vm:
            kept.append(f"VM {host.instance_id or host.address} (found by its tags)")
        if host is not None and host.platform == Platform.BYOH:
            kept.append(f"BYOH host {host.address}")
        if pre.node.exists:
            kept.append(f"Node {self._state.node_name} (existed before)")
        elif self._facts is not None and self._facts.kubelet_installed:
            kept.append("the host's existing kubelet configuration")
        return kept

    def _failure(
        self, inp: OnboardNodeInput, pre: PreflightResult, err: ActivityError
    ) -> ApplicationError:
        s = self._state
        cause_type, message = cause(err)
        phase = s.phase.value if s.phase else "start"
        where = f"host {s.host.address}" if s.host else "no host yet"
        text = (
            f"onboarding node {inp.node_name} failed in phase {phase} ({where}): "
            f"{message}. What to do: {advice(cause_type)}.{s.detail}"
        )
        s.detail = text
        return ApplicationError(text, type=cause_type or "OnboardingFailed", non_retryable=True)
