"""Connect to Temporal the way the `temporal` CLI does, with tracing on.

Address, namespace, TLS and API key come from the CLI's profile file and `TEMPORAL_*`
environment variables (temporalio.envconfig); the default is the local dev server on
localhost:7233, namespace `default`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError

from activities.contracts import TASK_QUEUE
from workflows import search_attributes

log = logging.getLogger(__name__)


def task_queue() -> str:
    """`WINFLEET_TASK_QUEUE`, default `winfleet`: the queue workers poll and the CLI targets."""
    return os.environ.get("WINFLEET_TASK_QUEUE", TASK_QUEUE)


def connect_options(profile: str | None = None) -> dict[str, Any]:
    """The keyword arguments of `Client.connect`, from profile file + environment."""
    options: dict[str, Any] = dict(ClientConfig.load_client_connect_config(profile=profile))
    options.setdefault("target_host", "localhost:7233")
    options.setdefault("namespace", "default")
    return options


class TemporalUnreachable(Exception):
    """No Temporal server answered at the configured address."""


async def connect(profile: str | None = None) -> Client:
    options = connect_options(profile)
    target = options.pop("target_host")
    try:
        return await Client.connect(
            target,
            interceptors=[TracingInterceptor(always_create_workflow_spans=True)],
            **options,
        )
    except RuntimeError as exc:  # the SDK's bridge reports connection failures this way
        raise TemporalUnreachable(
            f"cannot reach Temporal at {target} (namespace {options.get('namespace')}): "
            f"{str(exc)[:200]}. Set TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (or a CLI profile), "
            "or start a local server with `make run`."
        ) from exc


async def ensure_search_attributes(client: Client) -> None:
    """Register winfleet's search attributes on the namespace if missing (idempotent)."""
    wanted = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in search_attributes.ALL
    }
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        missing = {k: v for k, v in wanted.items() if k not in existing.custom_attributes}
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
            )
            log.info("registered search attributes %s", sorted(missing))
    except RPCError as exc:
        # Cloud namespaces manage attributes elsewhere; the workflow still runs without them.
        log.warning("could not register search attributes (%s); register them by hand", exc)
