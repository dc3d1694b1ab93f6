"""`OnboardWindowsNode`: one durable workflow per Windows node, from VM to Ready node.

Reads as the ordered list of phases it is (VM create → wait for SSH → payload → kubelet →
CSRs → hybrid-overlay → CNI → kube-proxy → Ready). Each phase is one or more idempotent
activities with a named policy (workflows/policies.py). When a phase fails for good the workflow
compensates — deconfigures the host, deletes a half-registered Node, terminates a VM it created
(never a BYOH host), records `MachineSetupFailure` — and fails with an error naming the phase,
the host and what to do. No I/O here; started by `winfleet onboard`, `temporal workflow start`
or the Web UI with plain JSON (see README).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.cloud.vm import (
        CreateVmInput,
        create_vm,
        release_vm,
        terminate_vm,
        validate_create_vm_input,
    )
    from activities.contracts import (
        HostRef,
        NodeName,
        OnboardNodeInput,
        OnboardNodeResult,
        Phase,
        Platform,
        Progress,
    )
    from activities.csr import ApproveCsrsInput, approve_node_csrs
    from activities.deconfigure import DeconfigureInput, deconfigure_host
    from activities.errors import InvalidRequest
    from activities.host import WaitForSshInput, wait_for_ssh
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
        DeleteNodeInput,
        FinalizeNodeInput,
        SetupFailureInput,
        WaitNodeAnnotationInput,
        WaitNodeInput,
        delete_node,
        finalize_node,
        record_setup_failure,
        wait_node_annotation,
        wait_node_ready,
    )
    from activities.payload import CopyPayloadInput, copy_payload
    from workflows import policies, search_attributes

# Added after histories existed: compensation of a failed vm-create releases a VM found by tags.
RELEASE_VM_PATCH = "release-vm-after-failed-create"
# Added after histories existed: approve a serving CSR a restarted kubelet sent again.
LATE_SERVING_CSR_PATCH = "approve-late-serving-csr"

NODE_SUBNET_ANNOTATION = "k8s.ovn.org/hybrid-overlay-node-subnet"
GATEWAY_MAC_ANNOTATION = "k8s.ovn.org/hybrid-overlay-distributed-router-gateway-mac"

# What an admin should do, by the error type that stopped the onboarding.
ADVICE = {
    "InvalidRequest": "fix the input and start again",
    "SshAuthenticationFailed": "re-provision the VM with winfleet's public key "
    "(secret cloud-private-key) in administrators_authorized_keys",
    "HostKeyMismatch": "verify the host is the one you expect; if it was legitimately "
    "reinstalled, remove its entry from ConfigMap windows-ssh-host-keys",
    "UnsupportedWindowsBuild": "use a Windows Server 2019 (10.0.17763) or 2022 (10.0.20348) "
    "image, or extend WINFLEET_SUPPORTED_BUILDS",
    "CsrRejected": "inspect the CSRRefused events; a forged or misconfigured kubelet asked",
    "CloudRequestRejected": "check the image, subnet, quota and permissions in the machine spec",
    "PayloadInvalid": "the worker's payload does not match its sha256sum manifest: reinstall it",
}


@dataclass
class OnboardState:
    """The workflow's one mutable state; `progress` shows it."""

    node_name: str = ""
    phase: Phase | None = None
    completed: list[Phase] = field(default_factory=list)
    status: str = "running"
    detail: str = ""
    host: HostRef | None = None
    kubelet_started: bool = False
    bytes_copied: int = 0


@workflow.defn(name="OnboardWindowsNode")
class OnboardWindowsNode:
    def __init__(self) -> None:
        self._state = OnboardState()

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
        vm_input = CreateVmInput(
            pool=inp.pool,
            node_name=inp.node_name,
            platform=inp.platform,
            aws=inp.aws,
            azure=inp.azure,
            byoh=inp.byoh,
            private_key_secret=inp.private_key_secret,
        )
        # Pure and deterministic, so it runs here and refuses bad input before any activity;
        # tightening these rules later changes replay, so it needs workflow.patched.
        try:
            validate_create_vm_input(vm_input)
        except InvalidRequest as exc:
            self._state.status = "failed"
            self._state.detail = exc.message
            raise ApplicationError(
                f"refused before anything was created: {exc.message}",
                type="InvalidRequest",
                non_retryable=True,
            ) from None
        workflow.upsert_search_attributes(
            [
                search_attributes.NODE.value_set(inp.node_name),
                search_attributes.POOL.value_set(inp.pool),
            ]
        )
        try:
            return await self._onboard(inp, vm_input)
        except (ActivityError, CancelledError, asyncio.CancelledError) as err:
            await self._compensate(inp, vm_input, reason=_describe(err))
            if isinstance(err, ActivityError):
                raise self._failure(inp, err) from err
            raise

    async def _onboard(self, inp: OnboardNodeInput, vm_input: CreateVmInput) -> OnboardNodeResult:
        node = inp.node_name

        self._enter(Phase.VM_CREATE)
        host = await workflow.execute_activity(
            create_vm,
            vm_input,
            start_to_close_timeout=policies.VM_CREATE_TIMEOUT,
            heartbeat_timeout=policies.HEARTBEAT_TIMEOUT,
            retry_policy=policies.VM_CREATE_RETRY,
        )
        self._state.host = host
        # Every host-side step names the same host and key (a secret's name, never the key).
        on_host = {
            "node_name": node,
            "address": host.address,
            "username": host.username,
            "private_key_secret": inp.private_key_secret,
        }

        self._enter(Phase.WAIT_SSH)
        facts = await self._step(
            wait_for_ssh,
            WaitForSshInput(
                **on_host,
                supported_builds=(),
                timeout_s=policies.WAIT_SSH_BUDGET.total_seconds(),
            ),
            policies.WAIT_SSH_TIMEOUT,
        )

        self._enter(Phase.COPY_PAYLOAD)
        copied = await self._step(
            copy_payload,
            CopyPayloadInput(**on_host),
            policies.COPY_PAYLOAD_TIMEOUT,
        )
        self._state.bytes_copied = copied.bytes_copied

        self._enter(Phase.CONFIGURE_KUBELET)
        self._state.kubelet_started = True
        await self._step(
            configure_kubelet,
            ConfigureKubeletInput(
                **on_host,
                node_ip=host.ip or host.address,
            ),
            policies.REMOTE_STEP_TIMEOUT,
        )

        self._enter(Phase.APPROVE_CSRS)
        csr_input = ApproveCsrsInput(
            addresses=(host.ip or host.address,),
            dns_names=(node, facts.hostname),
            timeout_s=policies.CSR_BUDGET.total_seconds(),
            **on_host,
        )
        await self._step(approve_node_csrs, csr_input, policies.CSR_TIMEOUT)

        self._enter(Phase.HYBRID_OVERLAY)
        annotations = await self._step(
            wait_node_annotation,
            WaitNodeAnnotationInput(
                node_name=node,
                keys=(NODE_SUBNET_ANNOTATION,),
                timeout_s=policies.NETWORK_BUDGET.total_seconds(),
            ),
            policies.NETWORK_TIMEOUT,
        )
        node_subnet = annotations[NODE_SUBNET_ANNOTATION]
        await self._step(
            start_hybrid_overlay,
            HybridOverlayInput(
                **on_host,
                timeout_s=policies.NETWORK_BUDGET.total_seconds(),
            ),
            policies.NETWORK_TIMEOUT,
        )
        await self._step(
            wait_node_annotation,
            WaitNodeAnnotationInput(
                node_name=node,
                keys=(GATEWAY_MAC_ANNOTATION,),
                timeout_s=policies.NETWORK_BUDGET.total_seconds(),
            ),
            policies.NETWORK_TIMEOUT,
        )

        self._enter(Phase.CNI)
        await self._step(
            configure_cni,
            ConfigureCniInput(
                **on_host,
                node_subnet=node_subnet,
            ),
            policies.REMOTE_STEP_TIMEOUT,
        )

        self._enter(Phase.KUBE_PROXY)
        await self._step(
            start_kube_proxy,
            KubeProxyInput(
                **on_host,
                node_subnet=node_subnet,
                timeout_s=policies.NETWORK_BUDGET.total_seconds(),
            ),
            policies.NETWORK_TIMEOUT,
        )

        self._enter(Phase.NODE_READY)
        await self._step(
            wait_node_ready,
            WaitNodeInput(node_name=node, timeout_s=policies.NODE_READY_BUDGET.total_seconds()),
            policies.NODE_READY_TIMEOUT,
        )
        if workflow.patched(LATE_SERVING_CSR_PATCH):
            # configure-cni restarts kubelet; one that restarted before it had stored its
            # serving certificate asks again. Approve that (valid) request too.
            await self._step(approve_node_csrs, csr_input, policies.CSR_TIMEOUT)
        version = await self._step(
            finalize_node,
            FinalizeNodeInput(
                node_name=node,
                version=inp.version,
                private_key_secret=inp.private_key_secret,
            ),
            policies.KUBE_CALL_TIMEOUT,
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
    def _enter(self, phase: Phase) -> None:
        if self._state.phase is not None and self._state.phase not in self._state.completed:
            self._state.completed.append(self._state.phase)
        self._state.phase = phase
        self._state.detail = ""
        workflow.upsert_search_attributes([search_attributes.PHASE.value_set(phase.value)])
        workflow.logger.info("node %s: phase %s", self._state.node_name, phase.value)

    async def _step(self, activity: Any, arg: Any, budget: timedelta) -> Any:
        return await workflow.execute_activity(
            activity,
            arg,
            start_to_close_timeout=budget,
            heartbeat_timeout=policies.HEARTBEAT_TIMEOUT,
            retry_policy=policies.STEP_RETRY,
        )

    async def _compensate(
        self, inp: OnboardNodeInput, vm_input: CreateVmInput, *, reason: str
    ) -> None:
        """Undo what this run started, in reverse order; every step is idempotent."""
        s = self._state
        s.status = "compensating"
        failed_phase = s.phase.value if s.phase else "start"
        host = s.host
        undo: list[tuple[Any, Any]] = []
        if host is not None and s.kubelet_started:
            undo.append(
                (
                    deconfigure_host,
                    DeconfigureInput(
                        node_name=inp.node_name,
                        address=host.address,
                        username=host.username,
                        private_key_secret=inp.private_key_secret,
                    ),
                )
            )
            undo.append((delete_node, DeleteNodeInput(node_name=inp.node_name)))
        if host is not None and host.created_by_us:
            undo.append((terminate_vm, host))
        elif (
            host is None
            and s.phase == Phase.VM_CREATE
            and inp.platform != Platform.BYOH
            and workflow.patched(RELEASE_VM_PATCH)
        ):
            # create_vm failed for good after it may have launched a VM: find it by tags.
            undo.append((release_vm, vm_input))
        undo.append(
            (
                record_setup_failure,
                SetupFailureInput(
                    node_name=inp.node_name,
                    phase=failed_phase,
                    reason=reason,
                ),
            )
        )
        for activity, arg in undo:
            try:
                await workflow.execute_activity(
                    activity,
                    arg,
                    start_to_close_timeout=policies.COMPENSATION_TIMEOUT,
                    heartbeat_timeout=policies.HEARTBEAT_TIMEOUT,
                    retry_policy=_compensation_retry(activity),
                )
            except ActivityError as err:
                # A host that cannot be reached cannot be deconfigured; deleting the VM and the
                # Node still matters, so go on and report what was left behind.
                workflow.logger.warning("compensation step failed: %s", _describe(err))
                s.detail += f" compensation left: {_describe(err)};"
        s.status = "failed"

    def _failure(self, inp: OnboardNodeInput, err: ActivityError) -> ApplicationError:
        s = self._state
        cause_type, message = _cause(err)
        phase = s.phase.value if s.phase else "start"
        where = f"host {s.host.address}" if s.host else "no host yet"
        advice = ADVICE.get(cause_type, "see the workflow history and `winfleet trace`")
        text = (
            f"onboarding node {inp.node_name} failed in phase {phase} ({where}): "
            f"{message}. What to do: {advice}."
        )
        s.detail = text + s.detail
        return ApplicationError(text, type=cause_type or "OnboardingFailed", non_retryable=True)


def _compensation_retry(activity: Any) -> RetryPolicy:
    # Deconfiguring a host that refuses our key cannot succeed; don't spend 10 minutes on it.
    if activity is deconfigure_host:
        return replace(policies.COMPENSATION_RETRY, maximum_attempts=3)
    return policies.COMPENSATION_RETRY


def _cause(err: BaseException) -> tuple[str, str]:
    """Type and message of the activity's own error: the outermost application error.

    (Deeper causes are library exceptions the activity translated, e.g. asyncssh's.)
    """
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.type or "", cause.message
        cause = cause.__cause__
    return "", str(err)


def _describe(err: BaseException) -> str:
    cause_type, message = _cause(err)
    if isinstance(err, CancelledError | asyncio.CancelledError):
        return "cancelled"
    return f"{cause_type}: {message}" if cause_type else message
