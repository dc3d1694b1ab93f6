"""Which tests may run side by side (`make test` runs three pytest-xdist workers).

Simulated hosts listen on fixed loopback addresses (127.x.y.z:22), so two tests that use the same
range must not run at once. Each group below keeps its own ranges and its own Temporal dev server
and twins; tests inside one group run one after another, as before:

- rollouts: tests/workflows/test_fleet_rollouts.py (its twin on 127.18-22);
- workflows: the rest of tests/workflows (the shared world on 127.8/9/12);
- tiers: unit, activities and twin tests (127.2-7, 127.10, 127.20, 127.251), and the pool tests
  (their twin on 127.28-32), which would otherwise leave this group idle half the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


# Test files that run outside their directory's group, to even out the groups' run times.
MOVED = {
    "workflows/test_fleet_rollouts.py": "rollouts",
    "workflows/test_fleet_pools.py": "tiers",
}


def group_of(path: Path) -> str:
    relative = path.relative_to(HERE).as_posix()
    if relative in MOVED:
        return MOVED[relative]
    return "workflows" if relative.startswith("workflows/") else "tiers"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of(item.path)))
