"""Starting onboardings from the CLI: one `OnboardWindowsNode` per node, started or joined.

The workflow ID is `onboard-<pool>-<node>` (workflows/ids.py), so a second `winfleet onboard`
of the same node attaches to the running one; the pool and node go into search attributes at
start, so `temporal workflow list --query "WinfleetPool='demo'"` finds them at once. Used by
`winfleet onboard` (worker/cli.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)

from activities.contracts import OnboardNodeInput
from worker.temporal import task_queue
from workflows import ids, search_attributes


async def start_onboarding(
    client: Client, inputs: Sequence[OnboardNodeInput]
) -> list[WorkflowHandle[object, object]]:
    handles = []
    for inp in inputs:
        handle = await client.start_workflow(
            "OnboardWindowsNode",
            inp,
            id=ids.onboard(inp.pool, inp.node_name),
            task_queue=task_queue(),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search_attributes.NODE, inp.node_name),
                    SearchAttributePair(search_attributes.POOL, inp.pool),
                ]
            ),
        )
        handles.append(handle)
    return handles
