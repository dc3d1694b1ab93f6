"""Checks before an onboarding touches anything: the node name, the key, the version.

The `preflight_node` activity (read-only) runs right after the run has claimed the node name
(activities/claims.py) and before any VM or host is touched. It refuses a name that belongs to a
non-Windows Node (a Linux worker is never renamed, cordoned, annotated or deleted), a key Secret
that is missing or unreadable, and a version the worker has no payload for, each naming the
object and what to do. It reports the Node as it was, so the workflow knows what it must never
undo (a Node that already existed is not this run's to delete).
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from activities.config import settings
from activities.contracts import NodeBefore, PreflightResult
from activities.errors import InvalidRequest, boundary
from activities.keys import load_private_key
from activities.node import OS_LABEL, get_node, node_before


@dataclass(frozen=True)
class PreflightInput:
    node_name: str
    private_key_secret: str
    version: str = ""  # empty: the worker's default version


@activity.defn(name="preflight_node")
@boundary
async def preflight_node(inp: PreflightInput) -> PreflightResult:
    """The Node as found (refusing a non-Windows one), after checking key and version. Read
    from the API, not the worker's cache: what is found here decides what compensation may
    undo, so a Node registered a moment ago must not be taken for absent."""
    node = await get_node(inp.node_name, fresh=True)
    if node is not None:
        labels = node["metadata"].get("labels") or {}
        if labels.get(OS_LABEL) != "windows":
            raise InvalidRequest(
                f"a Node named {inp.node_name} already exists and is not a Windows node "
                f"({OS_LABEL}={labels.get(OS_LABEL)!r}); winfleet never touches it: choose "
                "another node name"
            )
    before = node_before(node) if node is not None else NodeBefore()
    await load_private_key(inp.private_key_secret)  # names the Secret if it is unusable
    version = inp.version or settings().version
    settings().payload_dir_for(version)  # InvalidRequest naming the versions the worker has
    activity.logger.info(
        "preflight %s: node %s, version %s",
        inp.node_name,
        "exists" if before.exists else "absent",
        version,
    )
    return PreflightResult(node=before, version=version)
