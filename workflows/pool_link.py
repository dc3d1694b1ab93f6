"""Workflow code that talks to a pool's `WindowsPool` workflow (`pool-<name>`) from another one.

A workflow cannot send another an update, so a disruption grant is asked for and given back
through activities (activities/pool_client.py: `request_disruption`, `release_disruption`); a
signal goes straight to the pool (`spec_changed` wakes it, `reconcile_update` carries a drift
run's summary); `start_rollout` starts or joins the pool's `UpgradeWindowsPool`. Used by
`ReconcileWindowsPool`, and by `UpgradeWindowsPool` for `release` and `signal` (it asks for
grants itself: a pool that does not answer fails its step instead of counting as a refusal).
Deterministic: only `steps.run` and workflow APIs.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.pool_client import (
        StartOnce,
        release_disruption,
        request_disruption,
        start_workflow_once,
    )
    from activities.pool_contracts import (
        DisruptionDecision,
        DisruptionRelease,
        DisruptionRequest,
        GrantKind,
    )
    from workflows import ids, policies, steps
    from workflows.failures import describe


async def ask(
    pool: str,
    node: str,
    reason: str,
    *,
    kind: GrantKind = GrantKind.DISRUPT,
    replacement: str = "",
) -> DisruptionDecision:
    """Leave (or not) to take `node` down, held by this workflow; a pool that does not answer
    is a refusal, with the reason."""
    req = DisruptionRequest(
        pool=pool,
        holder=workflow.info().workflow_id,
        node=node,
        reason=reason,
        kind=kind,
        replacement=replacement,
        pool_workflow_id=ids.pool(pool),
    )
    try:
        return await steps.run(request_disruption, req, policies.KUBE_CALL_STEP)
    except ActivityError as err:
        return DisruptionDecision(False, f"the pool did not answer: {describe(err)}")


async def release(pool: str, node: str) -> None:
    """Give this workflow's grant on `node` back (the pool drops those of closed holders)."""
    rel = DisruptionRelease(
        pool=pool,
        holder=workflow.info().workflow_id,
        node=node,
        pool_workflow_id=ids.pool(pool),
    )
    try:
        await steps.run(release_disruption, rel, policies.KUBE_CALL_STEP)
    except ActivityError as err:
        workflow.logger.warning("pool %s: releasing %s: %s", pool, node, describe(err))


async def signal(pool: str, name: str, arg: Any) -> bool:
    """Signal the pool's workflow; False (and a warning) when it does not run."""
    handle = workflow.get_external_workflow_handle(ids.pool(pool))
    try:
        await handle.signal(name, arg)
    except ApplicationError as err:
        workflow.logger.warning("pool %s: signal %s not delivered: %s", pool, name, err)
        return False
    return True


async def start_rollout(pool: str) -> None:
    """Start the pool's `UpgradeWindowsPool`, or join the one running (ActivityError if
    Temporal refuses)."""
    await steps.run(
        start_workflow_once,
        StartOnce(
            workflow="UpgradeWindowsPool",
            workflow_id=ids.upgrade(pool),
            arg={"pool": pool},
            task_queue=workflow.info().task_queue,
        ),
        policies.KUBE_CALL_STEP,
    )
