"""Every timeout and retry policy of the workflows, named, each with its reason.

Call sites use these constants only; no inline numbers (WMCO keeps the same in pkg/retry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import errors

# Error types that no retry can fix: the activities' permanent errors (activities/errors.py
# marks them non_retryable too; naming them here is belt and braces for the workflow side).
PERMANENT_ERRORS = list(errors.NON_RETRYABLE_TYPES)
# What an admin should do, by the error type that stopped a workflow.
ADVICE = dict(errors.ADVICE)

# A cloud API call plus waiting for the instance to run: AWS/Azure take 1-3 min.
VM_CREATE_TIMEOUT = timedelta(minutes=15)
# A booting Windows VM refuses SSH for minutes; WMCO dials for up to 10 min.
WAIT_SSH_TIMEOUT = timedelta(minutes=20)
# Inside wait-ssh, how long the activity itself keeps dialing before giving up.
WAIT_SSH_BUDGET = timedelta(minutes=15)
# Copying ~200 MB of binaries over a slow link, resumable per file.
COPY_PAYLOAD_TIMEOUT = timedelta(minutes=20)
# Remote commands (WMCB, services) finish in well under a minute each.
REMOTE_STEP_TIMEOUT = timedelta(minutes=5)
# kubelet sends its CSRs within a minute of starting; allow for a slow API server.
CSR_TIMEOUT = timedelta(minutes=10)
# Inside approve-csrs, how long the activity waits for CSRs before giving up.
CSR_BUDGET = timedelta(minutes=8)
# hybrid-overlay needs the OVN master's subnet annotation, then creates HNS networks.
NETWORK_TIMEOUT = timedelta(minutes=10)
NETWORK_BUDGET = timedelta(minutes=8)
# The node turns Ready seconds after kube-proxy runs; WMCO waits up to 10 min.
NODE_READY_TIMEOUT = timedelta(minutes=10)
NODE_READY_BUDGET = timedelta(minutes=8)
# Kubernetes bookkeeping (annotate, events, delete node): single API calls.
KUBE_CALL_TIMEOUT = timedelta(minutes=2)
# Compensation must not give up easily but must not hang the workflow forever either.
COMPENSATION_TIMEOUT = timedelta(minutes=10)

# A dead worker is noticed within this. One SSH connection attempt alone can take 40 s
# (10 s connect + 30 s login) between two heartbeats, so it must be longer than that.
HEARTBEAT_TIMEOUT = timedelta(seconds=60)

# Transient failures: 15 s like WMCO, backing off, for about 10 minutes in total.
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
    maximum_attempts=40,
    non_retryable_error_types=PERMANENT_ERRORS,
)
# Cloud create: a few attempts only; each one is idempotent (client token / PUT).
VM_CREATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=6,
    non_retryable_error_types=PERMANENT_ERRORS,
)
# Compensation retries harder: leaving a VM behind costs money.
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
)
# Deconfiguring a host that refuses our key cannot succeed: a few attempts, not 20.
DECONFIGURE_COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
)
# Claims and preflight reads: quick API calls; a refusal (NodeNameClaimed) is permanent.
CLAIM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=10,
    non_retryable_error_types=PERMANENT_ERRORS,
)


@dataclass(frozen=True)
class Step:
    """How one activity of a phase runs: per attempt, in total, and how it retries.

    `total` (schedule_to_close) bounds the phase, retries included, so a stuck phase ends and
    compensates within a known time (README "Time bounds"). Cancellation waits until the running
    attempt has really stopped, so compensation never races the step it undoes.
    """

    attempt: timedelta
    total: timedelta
    retry: RetryPolicy = field(default_factory=lambda: STEP_RETRY)
    heartbeat: timedelta = HEARTBEAT_TIMEOUT


# The hardened onboarding's phases (README "Time bounds" lists these totals).
CLAIM_STEP = Step(attempt=timedelta(minutes=1), total=timedelta(minutes=3), retry=CLAIM_RETRY)
PREFLIGHT_STEP = Step(attempt=timedelta(minutes=1), total=timedelta(minutes=3), retry=CLAIM_RETRY)
VM_CREATE_STEP = Step(VM_CREATE_TIMEOUT, timedelta(minutes=30), VM_CREATE_RETRY)
WAIT_SSH_STEP = Step(WAIT_SSH_TIMEOUT, timedelta(minutes=25))
COPY_PAYLOAD_STEP = Step(COPY_PAYLOAD_TIMEOUT, timedelta(minutes=40))
REMOTE_STEP = Step(REMOTE_STEP_TIMEOUT, timedelta(minutes=15))
CSR_STEP = Step(CSR_TIMEOUT, timedelta(minutes=15))
NETWORK_STEP = Step(NETWORK_TIMEOUT, timedelta(minutes=15))
NODE_READY_STEP = Step(NODE_READY_TIMEOUT, timedelta(minutes=15))
KUBE_CALL_STEP = Step(KUBE_CALL_TIMEOUT, timedelta(minutes=5))
# Each undo step of a decommission/compensation: retried hard (a VM left behind costs money),
# but bounded, so a failed onboarding always ends.
UNDO_STEP = Step(COMPENSATION_TIMEOUT, timedelta(minutes=30), COMPENSATION_RETRY)
DECONFIGURE_UNDO_STEP = Step(
    COMPENSATION_TIMEOUT, timedelta(minutes=15), DECONFIGURE_COMPENSATION_RETRY
)
# A drain runs as long as its own timeout (the pool's drainTimeout) plus this margin.
DRAIN_MARGIN = timedelta(minutes=2)
# A whole decommission: a long drain plus every undo step at its bound; a safety net only.
DECOMMISSION_TIMEOUT = timedelta(hours=4)

# --- fleet ------------------------------------------------------------------------------------
# A pool looks at its nodes at least this often (signals wake it sooner).
POOL_RESYNC = timedelta(seconds=30)
# After a failed onboarding the pool waits before the next try: doubling, capped.
POOL_RETRY_FIRST = timedelta(seconds=30)
POOL_RETRY_MAX = timedelta(minutes=10)
# A rollout asks again this soon after the pool refused a grant (budget in use).
ROLLOUT_RETRY = timedelta(seconds=5)
# A paused (or out-of-window, or canary-waiting) rollout looks again at least this often.
ROLLOUT_IDLE = timedelta(minutes=1)
# Long-running fleet workflows continue as new past this many history events (or when the
# server suggests it), carrying their state: a run's history stays small however big the pool.
HISTORY_EVENTS_LIMIT = 4000

# --- drift reconciliation ---------------------------------------------------------------------
# One batch of node checks: up to 100 nodes, 16 at a time, each bounded by its own timeout.
CHECK_NODES_STEP = Step(attempt=timedelta(minutes=10), total=timedelta(minutes=20))
NODES_PER_CHECK_BATCH = 100
# A repair step gives up sooner than onboarding: a node it cannot put right is replaced instead.
REPAIR_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
    maximum_attempts=3,
    non_retryable_error_types=PERMANENT_ERRORS,
)
REPAIR_STEP = Step(attempt=timedelta(minutes=5), total=timedelta(minutes=10), retry=REPAIR_RETRY)
# How long a repaired node's network and readiness may take to come back.
REPAIR_NETWORK_BUDGET = timedelta(minutes=2)
REPAIR_READY_BUDGET = timedelta(minutes=3)
REPAIR_CSR_BUDGET = timedelta(minutes=1)
