"""Which tests may run side by side (`make test` runs three pytest-xdist workers).

Simulated hosts listen on fixed loopback addresses (127.x.y.z:22), so two tests that use the same
range must not run at once. Each group below keeps its own ranges and its own Temporal dev server
and twins; one worker runs a whole group, one test after another, as a serial run would:

- workflows: tests/workflows (their module's twin on 127.8/9/12);
- rollouts: tests/workflows/test_fleet_rollouts.py (its own twin on 127.18-22), and the files
  moved there by MOVED (their module's twin on 127.40/41/44);
- tiers: unit, activities and twin tests (127.2-7, 127.10-11, 127.20-21, 127.251), the pool
  tests (their own twin on 127.28-32) and the files moved there (module twin on 127.50/51/54).

A file may move to another group (MOVED, to even out the groups' run times) when it names no
address of its own: its module's twin (tests/workflows/conftest.py) takes its group's ranges.

The groups are given to xdist as scopes of its own scheduler (`--dist loadscope` with the scope
of a test being its group), since `xdist_group` marks do not reach the scheduler under pytest 9.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Test files that run outside their directory's group, to even out the groups' run times.
MOVED = {
    "tests/workflows/test_fleet_rollouts.py": "rollouts",
    "tests/workflows/test_fleet_cli.py": "rollouts",
    "tests/workflows/test_fleet_pools.py": "tiers",
    "tests/workflows/test_fleet_upgrade.py": "tiers",
    "tests/workflows/test_reconcile_byoh.py": "tiers",
    "tests/workflows/test_reconcile_cloud.py": "tiers",
    "tests/workflows/test_reconcile_schedule.py": "tiers",
}

# The first octet after 127 of the module twin's ranges in each group: AWS, +1 Azure, +4 BYOH.
TWIN_BASE = {"workflows": 8, "rollouts": 40, "tiers": 50}


def group_of(nodeid: str) -> str:
    """The group of a test, from its node ID (`tests/<dir>/<file>.py::<name>`)."""
    path = nodeid.split("::", 1)[0]
    if path in MOVED:
        return MOVED[path]
    return "workflows" if path.startswith("tests/workflows/") else "tiers"


def twin_base(test_file: Path) -> int:
    """Where the module twin of a test file puts its hosts (see TWIN_BASE)."""
    nodeid = test_file.resolve().relative_to(ROOT).as_posix()
    return TWIN_BASE[group_of(nodeid)]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return ByGroup(config, log)
