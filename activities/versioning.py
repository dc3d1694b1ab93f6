"""Worker versioning: which Worker Deployment Version this process is, and the versioning
behavior each kind of workflow declares.

`WINFLEET_DEPLOYMENT_NAME` + `WINFLEET_BUILD_ID` make the worker a versioned one (worker/app.py);
without them it is unversioned, as the local dev setup runs. The Temporal server refuses a
versioning behavior from an unversioned worker, so the behaviors are UNSPECIFIED then.
Short-lived workflows (onboarding, decommission) are PINNED: a run finishes on the code it
started with. Long-running ones (WindowsPool, UpgradeWindowsPool) AUTO_UPGRADE: they move to
each new current version at their next task, so every change to them needs `workflow.patched`
and a saved-history replay test (README "Shipping a workflow change").

Read once per process, at import, outside the workflow sandbox (the workflows import it
passed through), so every replay in a process sees the same value.
"""

from __future__ import annotations

import os

from temporalio.common import VersioningBehavior

DEPLOYMENT_NAME = os.environ.get("WINFLEET_DEPLOYMENT_NAME", "")
BUILD_ID = os.environ.get("WINFLEET_BUILD_ID", "")
VERSIONED = bool(DEPLOYMENT_NAME and BUILD_ID)

SHORT_LIVED = VersioningBehavior.PINNED if VERSIONED else VersioningBehavior.UNSPECIFIED
LONG_RUNNING = VersioningBehavior.AUTO_UPGRADE if VERSIONED else VersioningBehavior.UNSPECIFIED
