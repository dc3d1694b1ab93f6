"""winfleet's own Prometheus metrics: what activities (and the worker's activity interceptor,
worker/metrics.py) count. Workflows never touch these: they are replayed.

Every series lives in one registry (`REGISTRY`), served on `/metrics` by worker/health.py next
to the Temporal SDK's runtime metrics. Label values are bounded: platforms, phases, error types
and the fixed CSR refusal reasons below, never node names or free text.

Callers: activities/csr.py (CSR decisions), worker/metrics.py (onboardings, phase durations,
failures: facts of the onboarding workflow, recorded when its activities run), the drift
reconciliation's `check_nodes` (findings per check) and `record_repair` (repairs per check and
outcome); a retried activity may count twice.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Onboarding phases take seconds (a CSR) to many minutes (a VM boot, a payload copy).
PHASE_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)
ONBOARDING_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200)

ONBOARDINGS = Counter(
    "winfleet_onboardings",
    "Onboardings that ended, by platform and outcome (completed, failed).",
    ("platform", "outcome"),
    registry=REGISTRY,
)
ONBOARDING_DURATION = Histogram(
    "winfleet_onboarding_duration_seconds",
    "Wall time of completed onboardings, workflow start to the node configured.",
    ("platform",),
    buckets=ONBOARDING_BUCKETS,
    registry=REGISTRY,
)
PHASE_DURATION = Histogram(
    "winfleet_onboarding_phase_duration_seconds",
    "Time spent in each onboarding phase's activities (every attempt), by platform.",
    ("phase", "platform", "outcome"),
    buckets=PHASE_BUCKETS,
    registry=REGISTRY,
)
FAILURES = Counter(
    "winfleet_onboarding_failures",
    "Failed onboardings by the phase that failed and the error type (reason).",
    ("platform", "phase", "reason"),
    registry=REGISTRY,
)
CSRS = Counter(
    "winfleet_csrs",
    "Certificate signing requests decided by winfleet: approved, or refused and why.",
    ("kind", "decision", "reason"),
    registry=REGISTRY,
)
RECONCILE_FINDINGS = Counter(
    "winfleet_reconcile_findings",
    "Drift found on Windows nodes by the reconciliation, by kind of finding.",
    ("kind",),
    registry=REGISTRY,
)
RECONCILE_REPAIRS = Counter(
    "winfleet_reconcile_repairs",
    "Repairs the reconciliation made, by kind of finding and outcome (repaired, failed).",
    ("kind", "outcome"),
    registry=REGISTRY,
)

# CSR refusal reasons, from the wording of activities/csr_rules.py's verdicts (first match).
_REFUSALS = (
    ("signer", re.compile(r"signerName")),
    ("already-decided", re.compile(r"already (approved|denied|failed)|is already")),
    ("unreadable", re.compile(r"cannot be (decoded|parsed|read)|not a PEM")),
    ("signature", re.compile(r"signature")),
    ("key", re.compile(r"\bkey\b")),
    ("usages", re.compile(r"usages")),
    ("subject", re.compile(r"subject|organization|\bCN\b")),
    ("requester", re.compile(r"request(er|ed by)|username|groups|bootstrap")),
    ("sans", re.compile(r"SAN|address|DNS|\bIP\b")),
)
_ERROR_TYPE = re.compile(r"^([A-Z][A-Za-z0-9]{2,60}):")


def refusal_reason(text: str) -> str:
    """A bounded label for why a CSR was refused."""
    for label, pattern in _REFUSALS:
        if pattern.search(text):
            return label
    return "other"


def failure_reason(text: str) -> str:
    """The error type of a failure description (`SshAuthenticationFailed: ...`), bounded."""
    if text.strip().lower() == "cancelled":
        return "Cancelled"
    found = _ERROR_TYPE.match(text.strip())
    return found.group(1) if found else "other"


def csr_approved(kind: str) -> None:
    CSRS.labels(kind=kind, decision="approved", reason="").inc()


def csr_refused(kind: str, why: str) -> None:
    CSRS.labels(kind=kind, decision="refused", reason=refusal_reason(why)).inc()


def reconcile_finding(kind: str) -> None:
    RECONCILE_FINDINGS.labels(kind=kind).inc()


def reconcile_repair(kind: str, ok: bool) -> None:
    RECONCILE_REPAIRS.labels(kind=kind, outcome="repaired" if ok else "failed").inc()
