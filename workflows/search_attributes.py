"""Custom search attributes: `temporal workflow list --query "WinfleetPool='pool-a'"`.

Registered on the namespace by `winfleet worker` at start-up (idempotent) and by the local dev
server's `--search-attribute` flags.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

NODE = SearchAttributeKey.for_keyword("WinfleetNode")
POOL = SearchAttributeKey.for_keyword("WinfleetPool")
PHASE = SearchAttributeKey.for_keyword("WinfleetPhase")

ALL = (NODE, POOL, PHASE)
