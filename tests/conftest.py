"""Which tests may run side by side (`make test` runs three pytest-xdist workers).

Simulated hosts listen on fixed loopback addresses (127.x.y.z:22), so two tests that use the same
range must not run at once. Each group below keeps its own ranges and its own Temporal dev server
and twins; one worker runs a whole group, one test after another, as a serial run would:

- rollouts: tests/workflows/test_fleet_rollouts.py (its twin on 127.18-22);
- workflows: the rest of tests/workflows (the shared world on 127.8/9/12);
- tiers: unit, activities and twin tests (127.2-7, 127.10-11, 127.20-21, 127.251), and the pool
  tests (their twin on 127.28-32), which would otherwise leave this group idle half the run.

The groups are given to xdist as scopes of its own scheduler (`--dist loadscope` with the scope
of a test being its group), since `xdist_group` marks do not reach the scheduler under pytest 9.
"""

from __future__ import annotations

from typing import Any

import pytest

# Test files that run outside their directory's group, to even out the groups' run times.
MOVED = {
    "tests/workflows/test_fleet_rollouts.py": "rollouts",
    "tests/workflows/test_fleet_pools.py": "tiers",
}


def group_of(nodeid: str) -> str:
    """The group of a test, from its node ID (`tests/<dir>/<file>.py::<name>`)."""
    path = nodeid.split("::", 1)[0]
    if path in MOVED:
        return MOVED[path]
    return "workflows" if path.startswith("tests/workflows/") else "tiers"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return ByGroup(config, log)
