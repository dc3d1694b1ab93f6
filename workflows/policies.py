"""Every timeout and retry policy of the workflows, named, each with its reason.

Call sites use these constants only; no inline numbers (WMCO keeps the same in pkg/retry).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Error types that no retry can fix (mirrors activities.errors.NON_RETRYABLE_TYPES; the
# activities also mark them non_retryable, this is belt and braces for the workflow side).
PERMANENT_ERRORS = [
    "InvalidRequest",
    "SshAuthenticationFailed",
    "HostKeyMismatch",
    "UnsupportedWindowsBuild",
    "CsrRejected",
    "CloudRequestRejected",
    "PayloadInvalid",
]

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
