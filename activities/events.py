"""Kubernetes Events that tell cluster users what winfleet did to a node, machine or CSR.

`record_event` creates one core/v1 Event in winfleet's namespace (source component `winfleet`).
Called by the node and CSR activities (`MachineSetup`, `MachineSetupFailure`, `CSRRefused`) and
by the instance activities (`InstanceSetup`, `InstanceSetupFailure`). Passing `name` makes the
call idempotent: an Event of that name that already exists is left as it is. Best effort: an
Event the API refuses (RBAC, missing namespace) is logged, not raised.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal, TypedDict

from kubernetes.client import CoreV1Event

from activities import kube
from activities.config import settings
from activities.errors import InvalidRequest

log = logging.getLogger(__name__)

COMPONENT = "winfleet"
MAX_MESSAGE = 1024

MACHINE_SETUP = "MachineSetup"
MACHINE_SETUP_FAILURE = "MachineSetupFailure"
CSR_REFUSED = "CSRRefused"
INSTANCE_SETUP = "InstanceSetup"
INSTANCE_SETUP_FAILURE = "InstanceSetupFailure"

EventType = Literal["Normal", "Warning"]


class InvolvedObject(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    namespace: str
    uid: str


async def record_event(
    *,
    reason: str,
    message: str,
    involved: InvolvedObject,
    type_: EventType = "Normal",
    name: str | None = None,
) -> None:
    """Create the Event; with `name`, a second call for the same name does nothing."""
    now = datetime.now(UTC)
    namespace = settings().namespace
    meta: dict[str, str] = {"namespace": namespace}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{involved.get('name', 'winfleet')}."
    body = CoreV1Event.from_dict(
        {
            "metadata": meta,
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "type": type_,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
    )
    try:
        await kube.call_json(  # the reply is not needed; skip the typed model
            f"create event {reason} for {involved.get('kind')}/{involved.get('name')}",
            kube.core().create_namespaced_event,
            namespace,
            body,
        )
    except kube.Conflict:
        if not name:
            raise
    except (kube.NotFound, InvalidRequest) as exc:
        # Events inform; a missing namespace or RBAC gap must not fail the step that records
        # them. Transient API failures still propagate, so the (idempotent) activity retries.
        log.warning("event %s not recorded: %s", reason, exc.message)
