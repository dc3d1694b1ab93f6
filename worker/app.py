"""`winfleet worker`: the Temporal worker that runs onboarding workflows and activities.

Configuration comes from the environment (see README "Configure"): Temporal connection
(`TEMPORAL_*` or the CLI profile file), `KUBECONFIG`, cloud endpoints, payload dir. The twin's
`env` file is enough for local use. Also wired here: `/metrics`, `/healthz`, `/readyz`
(`WINFLEET_HTTP_ADDRESS`, worker/health.py), the metrics and log-context interceptors, and
worker versioning (`WINFLEET_DEPLOYMENT_NAME` + `WINFLEET_BUILD_ID`: README "Shipping a
workflow change").
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Interceptor, Worker, WorkerDeploymentConfig

from activities import versioning
from activities.claims import claim_node, release_node
from activities.cloud.vm import create_vm, release_vm, retire_vm, terminate_vm
from activities.config import Settings, use_settings
from activities.contracts import TASK_QUEUE
from activities.csr import approve_node_csrs
from activities.deconfigure import deconfigure_host
from activities.drain import cordon_node, drain_node, uncordon_node
from activities.drift_check import check_nodes
from activities.drift_observe import observe_drift
from activities.drift_repair import record_repair, retire_orphan_vm, service_control
from activities.host import wait_for_ssh
from activities.hostkeys import forget_host_key
from activities.kubelet import configure_kubelet
from activities.network import configure_cni, start_hybrid_overlay, start_kube_proxy
from activities.node import (
    delete_node,
    finalize_node,
    record_setup_failure,
    wait_node_annotation,
    wait_node_ready,
)
from activities.payload import copy_payload
from activities.pool_client import (
    release_disruption,
    request_disruption,
    running_workflows,
    start_workflow_once,
)
from activities.pool_state import (
    observe_pool,
    pool_availability,
    pool_finalizer,
    read_pool,
    read_pool_node,
    record_pool_event,
    set_pool_spec,
    write_pool_status,
)
from activities.preflight import preflight_node
from activities.schedules import delete_reconcile_schedule, ensure_reconcile_schedule
from worker import metrics
from worker.health import HealthServer, split_address
from worker.pool_watcher import PoolWatcher
from worker.telemetry import LogContext
from worker.temporal import task_queue
from workflows.decoding import data_converter
from workflows.decommission import DecommissionWindowsNode
from workflows.onboard import OnboardWindowsNode
from workflows.pool import WindowsPool
from workflows.reconcile import ReconcileWindowsPool
from workflows.upgrade import UpgradeWindowsPool

log = logging.getLogger(__name__)

ACTIVITIES: Sequence[Callable[..., Any]] = (
    create_vm,
    release_vm,
    terminate_vm,
    wait_for_ssh,
    copy_payload,
    configure_kubelet,
    approve_node_csrs,
    wait_node_annotation,
    start_hybrid_overlay,
    configure_cni,
    start_kube_proxy,
    wait_node_ready,
    finalize_node,
    delete_node,
    record_setup_failure,
    deconfigure_host,
    claim_node,
    release_node,
    preflight_node,
    cordon_node,
    uncordon_node,
    drain_node,
    forget_host_key,
    retire_vm,
    read_pool,
    read_pool_node,
    record_pool_event,
    observe_pool,
    pool_availability,
    write_pool_status,
    set_pool_spec,
    pool_finalizer,
    request_disruption,
    release_disruption,
    running_workflows,
    start_workflow_once,
    observe_drift,
    check_nodes,
    service_control,
    record_repair,
    retire_orphan_vm,
    ensure_reconcile_schedule,
    delete_reconcile_schedule,
)
WORKFLOWS = (
    OnboardWindowsNode,
    DecommissionWindowsNode,
    WindowsPool,
    UpgradeWindowsPool,
    ReconcileWindowsPool,
)

# Many nodes onboard in parallel; activities are I/O-bound coroutines.
MAX_CONCURRENT_ACTIVITIES = 500


class ConfigError(Exception):
    """The worker's environment is inconsistent (says what to set)."""


def deployment_config(env: Mapping[str, str] | None = None) -> WorkerDeploymentConfig | None:
    """Worker versioning from `WINFLEET_DEPLOYMENT_NAME` + `WINFLEET_BUILD_ID` (both, or
    neither: an unversioned worker, as the local dev setup runs)."""
    if env is None:  # the values the workflow definitions were imported with
        name, build = versioning.DEPLOYMENT_NAME, versioning.BUILD_ID
    else:
        name, build = env.get("WINFLEET_DEPLOYMENT_NAME", ""), env.get("WINFLEET_BUILD_ID", "")
    if not name and not build:
        return None
    if not name or not build:
        raise ConfigError(
            "worker versioning needs both WINFLEET_DEPLOYMENT_NAME and WINFLEET_BUILD_ID "
            "(or neither, for an unversioned worker)"
        )
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=name, build_id=build),
        use_worker_versioning=True,
    )


def sdk_metrics_address(env: Mapping[str, str] | None = None) -> str | None:
    """Where the Temporal SDK exports its metrics (loopback): `WINFLEET_SDK_METRICS_ADDRESS`,
    else the port after `WINFLEET_HTTP_ADDRESS`'s; None when the worker serves no /metrics."""
    e = os.environ if env is None else env
    if e.get("WINFLEET_SDK_METRICS_ADDRESS"):
        return e["WINFLEET_SDK_METRICS_ADDRESS"]
    if not e.get("WINFLEET_HTTP_ADDRESS"):
        return None
    _, port = split_address(e["WINFLEET_HTTP_ADDRESS"])
    return f"127.0.0.1:{port + 1}"


def prepare_process() -> None:
    """What must happen before the worker's client connects: the SDK's metrics exporter."""
    address = sdk_metrics_address()
    if address:
        metrics.install_sdk_runtime(address)


def build_worker(
    client: Client,
    *,
    task_queue: str = TASK_QUEUE,
    deployment: WorkerDeploymentConfig | None = None,
    interceptors: Sequence[Interceptor] = (),
    workflows: Sequence[type] = WORKFLOWS,
    activities: Sequence[Callable[..., Any]] = ACTIVITIES,
) -> Worker:
    """A worker for every winfleet workflow and activity (or those given: the benchmark's SDK
    floor runs its own on the same configuration), decoding input strictly (a start with a
    misspelt or mistyped field fails at once, naming it: workflows/decoding.py)."""
    config = client.config()
    config["data_converter"] = data_converter()
    return Worker(
        Client(**config),
        task_queue=task_queue,
        workflows=list(workflows),
        activities=list(activities),
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        interceptors=[LogContext(), *interceptors],
        deployment_config=deployment,
    )


async def run_worker(client: Client, settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then drain gracefully."""
    use_settings(settings)
    deployment = deployment_config()
    worker = build_worker(
        client,
        task_queue=task_queue(),
        deployment=deployment,
        interceptors=[metrics.OnboardingMetrics(client)],
    )
    http_address = os.environ.get("WINFLEET_HTTP_ADDRESS", "")
    health = (
        HealthServer(http_address, client, worker, sdk_metrics_address()) if http_address else None
    )
    metrics.register_pool_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker on task queue %s, namespace %s, kubeconfig %s, %s",
        task_queue(),
        client.namespace,
        settings.kubeconfig or "in-cluster",
        f"deployment {deployment.version.deployment_name} build {deployment.version.build_id}"
        if deployment
        else "unversioned",
    )
    watcher = asyncio.create_task(PoolWatcher(client, task_queue()).run(), name="pool-watcher")
    try:
        async with worker:
            if health is not None:
                await health.start()
            await stop.wait()
            log.info("stopping worker")
    finally:
        watcher.cancel()
        if health is not None:
            await health.stop()
