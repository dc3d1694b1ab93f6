"""The worker's Prometheus metrics: the Temporal SDK's runtime metrics, winfleet's own series
(activities/metrics.py), the facts of onboardings recorded as their activities run, and the
pools' state read from the cluster at scrape time.

- `install_sdk_runtime(address)` makes the SDK export its metrics (workflow/activity task
  latencies, poll and slot counts, sticky cache, ...) in Prometheus format on `address`
  (loopback), before any client connects. `render()` serves them together with winfleet's on
  one `/metrics` (worker/health.py).
- `OnboardingMetrics`, an activity interceptor: per onboarding phase, the time its activities
  take (every attempt); an onboarding completed (`finalize_node` succeeded) or failed
  (`record_setup_failure` ran), with its platform and total duration. The platform and start
  time come from the workflow's first history event (one call per run, cached): activity inputs
  do not all carry them. Workflows themselves never touch metrics (they are replayed).
- `PoolCollector`: nodes per pool by version and readiness, replicas, rollout progress and the
  disruption budget in use, read from the Nodes and WindowsMachinePools at every scrape, so
  every worker replica reports the same, current values (take `max by` across replicas).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter as Tally
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import aiohttp
from kubernetes import client as k8s
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities import kube
from activities import metrics as m
from activities.config import settings
from activities.pool_contracts import (
    POOL_GROUP,
    POOL_LABEL,
    POOL_PLURAL,
    POOL_VERSION,
    VERSION_ANNOTATION,
)
from worker.telemetry import ONBOARDING, PHASES

log = logging.getLogger(__name__)

SDK_SCRAPE_SECONDS = 5.0
RUNS_REMEMBERED = 4096


# --- the SDK's runtime metrics -----------------------------------------------------------------
def install_sdk_runtime(address: str) -> None:
    """Make this process's Temporal runtime export Prometheus metrics on `address`.

    Must run before the first client connects (the runtime is fixed per connection).
    """
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=address, counters_total_suffix=True, durations_as_seconds=True
            )
        )
    )
    Runtime.set_default(runtime, error_if_already_set=True)


async def render(sdk_address: str | None) -> bytes:
    """winfleet's series (incl. the pools', read now) and, when exported, the SDK's."""
    own = await asyncio.to_thread(generate_latest, m.REGISTRY)
    if not sdk_address:
        return own
    timeout = aiohttp.ClientTimeout(total=SDK_SCRAPE_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"http://{sdk_address}/metrics") as reply,
        ):
            sdk = await reply.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("Temporal SDK metrics unavailable at %s (%s)", sdk_address, exc)
        return own
    return own + b"\n" + sdk


# --- onboardings, from their activities ----------------------------------------------------------
class OnboardingMetrics(Interceptor):
    """Worker interceptor recording onboarding phases, completions and failures."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._runs: OrderedDict[str, tuple[str, float]] = OrderedDict()  # run -> platform, start
        self._ended: OrderedDict[str, None] = OrderedDict()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self)

    async def run_facts(self, workflow_id: str, run_id: str) -> tuple[str, float]:
        """(platform, start time) of an onboarding run, from its first history event."""
        known = self._runs.get(run_id)
        if known is not None:
            return known
        facts = ("unknown", 0.0)
        try:
            reply = await self._client.workflow_service.get_workflow_execution_history(
                GetWorkflowExecutionHistoryRequest(
                    namespace=self._client.namespace,
                    execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                    maximum_page_size=1,
                )
            )
            first = reply.history.events[0]
            payloads = first.workflow_execution_started_event_attributes.input.payloads
            started = first.event_time.ToDatetime().timestamp()
            platform = str(json.loads(payloads[0].data).get("platform") or "unknown")
            facts = (platform if platform.isidentifier() else "unknown", started)
        except Exception as exc:  # metrics must never fail an activity
            log.debug("no start facts for %s: %s", workflow_id, exc)
            return facts
        self._runs[run_id] = facts
        while len(self._runs) > RUNS_REMEMBERED:
            self._runs.popitem(last=False)
        return facts

    def first_end(self, run_id: str) -> bool:
        """True the first time a run's end is recorded in this process (retries count once)."""
        if run_id in self._ended:
            return False
        self._ended[run_id] = None
        while len(self._ended) > RUNS_REMEMBERED:
            self._ended.popitem(last=False)
        return True


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, root: OnboardingMetrics) -> None:
        super().__init__(next)
        self._root = root

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.workflow_type != ONBOARDING:
            return await super().execute_activity(input)
        kind = info.activity_type
        begun = time.monotonic()
        outcome = "failed"
        try:
            result = await super().execute_activity(input)
            outcome = "completed"
            return result
        finally:
            platform, started = await self._root.run_facts(
                info.workflow_id or "", info.workflow_run_id or ""
            )
            if kind in PHASES:
                m.PHASE_DURATION.labels(PHASES[kind], platform, outcome).observe(
                    time.monotonic() - begun
                )
            run = info.workflow_run_id or ""
            if kind == "finalize_node" and outcome == "completed" and self._root.first_end(run):
                m.ONBOARDINGS.labels(platform, "completed").inc()
                if started:
                    m.ONBOARDING_DURATION.labels(platform).observe(max(0.0, time.time() - started))
            if kind == "record_setup_failure" and self._root.first_end(run):
                failure = input.args[0] if input.args else None
                phase = str(getattr(failure, "phase", "") or "unknown")
                reason = m.failure_reason(str(getattr(failure, "reason", "")))
                m.ONBOARDINGS.labels(platform, "failed").inc()
                m.FAILURES.labels(platform, phase, reason).inc()


# --- pools, read at scrape time ----------------------------------------------------------------
class PoolCollector(Collector):
    """Pools and their nodes as the cluster shows them now (blocking reads, in the scrape's
    thread; the HTTP server runs `render` off the event loop)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "winfleet_pool_metrics_up", "1 if the pools and their nodes could be read"
        )
        try:
            pools, nodes = self._read()
        except Exception as exc:
            log.warning("pool metrics: cannot read pools or nodes (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _node_families(nodes)
        yield from _pool_families(pools)

    @staticmethod
    def _read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        api = kube.api_client()
        pools: Any = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
            POOL_GROUP, POOL_VERSION, settings().namespace, POOL_PLURAL
        )
        # raw JSON: the typed models reject Nodes with a partial status
        listing: Any = k8s.CoreV1Api(api).list_node(
            label_selector=POOL_LABEL, _preload_content=False
        )
        try:
            nodes: dict[str, Any] = json.loads(listing.read())
        finally:
            listing.release_conn()
        return list(pools.get("items") or ()), list(nodes.get("items") or ())


def _ready(node: dict[str, Any]) -> str:
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return str(condition.get("status", "Unknown"))
    return "Unknown"


def _node_families(nodes: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    family = GaugeMetricFamily(
        "winfleet_pool_nodes",
        "Windows nodes of each pool by winfleet version and Ready condition",
        labels=("pool", "version", "ready"),
    )
    tally: Tally[tuple[str, str, str]] = Tally()
    for node in nodes:
        meta = node.get("metadata") or {}
        pool = (meta.get("labels") or {}).get(POOL_LABEL, "")
        version = (meta.get("annotations") or {}).get(VERSION_ANNOTATION, "")
        tally[(pool, version, _ready(node))] += 1
    for labels, count in sorted(tally.items()):
        family.add_metric(list(labels), count)
    yield family


def _pool_families(pools: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    replicas = GaugeMetricFamily(
        "winfleet_pool_replicas",
        "Replicas of each pool: desired (spec), current, ready, updated, unavailable (status)",
        labels=("pool", "state"),
    )
    rollout = GaugeMetricFamily(
        "winfleet_pool_rollout_nodes",
        "Nodes of the pool's rollout: done, in flight, remaining (0s when none runs)",
        labels=("pool", "target_version", "state"),
    )
    budget = GaugeMetricFamily(
        "winfleet_pool_disruption_budget",
        "The pool's disruption budget: max (maxUnhealthy resolved) and in use (grants held)",
        labels=("pool", "state"),
    )
    for pool in pools:
        name = str((pool.get("metadata") or {}).get("name", ""))
        spec, status = pool.get("spec") or {}, pool.get("status") or {}
        replicas.add_metric([name, "desired"], float(spec.get("replicas") or 0))
        for state, key in (
            ("current", "replicas"),
            ("ready", "readyReplicas"),
            ("updated", "updatedReplicas"),
            ("unavailable", "unavailableReplicas"),
        ):
            replicas.add_metric([name, state], float(status.get(key) or 0))
        run = status.get("rollout") or {}
        target = str(run.get("targetVersion") or "")
        for state, key in (("done", "done"), ("in_flight", "inFlight"), ("remaining", "remaining")):
            rollout.add_metric([name, target, state], float(run.get(key) or 0))
        held = status.get("budget") or {}
        budget.add_metric([name, "max"], float(held.get("maxUnavailable") or 0))
        budget.add_metric([name, "in_use"], float(held.get("inUse") or 0))
    yield replicas
    yield rollout
    yield budget


_pool_collector: list[PoolCollector] = []


def register_pool_collector() -> None:
    """Add the pool collector to winfleet's registry (once per process)."""
    if not _pool_collector:
        _pool_collector.append(PoolCollector())
        m.REGISTRY.register(_pool_collector[0])
