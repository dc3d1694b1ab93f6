"""How waits poll: promptly at first, then at a gentle steady pace.

A wait usually ends within a second (a CSR, an annotation, an HNS network), so the first
probes come quickly; a long wait (a booting VM) settles at one probe a second, which keeps the
load of many parallel onboardings on the API server and hosts small. Used by every wait loop
(activities/node.py, activities/network.py, activities/host.py).
"""

from __future__ import annotations

from collections.abc import Iterator

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 1.0


def delays(first: float = FIRST_DELAY_S, maximum: float = MAX_DELAY_S) -> Iterator[float]:
    """0.1, 0.2, 0.4, 0.8, 1.0, 1.0, ... seconds."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, maximum)
