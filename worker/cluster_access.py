"""The CLI's access to the cluster: the same kubeconfig and namespace the worker uses.

`use_cluster()` reads the settings from the environment (`KUBECONFIG`, `WINFLEET_NAMESPACE`,
see README "Configure"); where `KUBECONFIG` is unset, the CLI falls back to `~/.kube/config` as
`kubectl` does (the worker itself would use its in-cluster service account). The Kubernetes
calls are the pool activities' own (activities/pool_state.py), run in the CLI's process, so
the CLI and the workflows read and write pools the same way. Used by `winfleet upgrade`
(`--version`, `--dry-run`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.config import Settings, settings, use_settings
from activities.errors import WinfleetError
from activities.pool_state import PoolRead, PoolRef, SetPoolSpec, read_pool, set_pool_spec
from worker.errors import CommandFailed

KUBECTL_DEFAULT = Path.home() / ".kube" / "config"


def use_cluster() -> Settings:
    """The settings for this process; a missing kubeconfig is a clear error, not a traceback."""
    found = Settings.from_env()
    if found.kubeconfig is None and KUBECTL_DEFAULT.exists():
        found = replace(found, kubeconfig=str(KUBECTL_DEFAULT))
    if found.kubeconfig is None and "KUBERNETES_SERVICE_HOST" not in os.environ:
        raise CommandFailed(
            "no cluster to talk to: set KUBECONFIG (with `make run`: `. .state/env`)", code=2
        )
    use_settings(found)
    return found


async def read(pool: str) -> PoolRead:
    """The pool as the workflows read it; CommandFailed when it is missing or invalid."""
    try:
        got = await read_pool(PoolRef(pool))
    except (ApplicationError, WinfleetError) as exc:
        raise CommandFailed(f"reading pool {pool}: {_said(exc)}", code=2) from None
    where = f"{settings().namespace}/{pool}"
    if not got.exists:
        raise CommandFailed(
            f"pool {where} does not exist (`kubectl get wmp -n {settings().namespace}`)", code=2
        )
    if got.deleting:
        raise CommandFailed(f"pool {where} is being deleted", code=1)
    if got.spec is None:
        raise CommandFailed(f"pool {where} cannot be used: {got.problem}", code=2)
    return got


async def set_version(pool: str, version: str) -> int:
    """Set the pool's `spec.version` (a merge patch); the pool's generation after it."""
    try:
        return await set_pool_spec(SetPoolSpec(pool, version=version))
    except (ApplicationError, WinfleetError) as exc:
        raise CommandFailed(f"setting spec.version of pool {pool}: {_said(exc)}", code=2) from None


def _said(exc: ApplicationError | WinfleetError) -> str:
    return exc.message
