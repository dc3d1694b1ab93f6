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


class SearchAttributesMissing(Exception):
    """winfleet's search attributes are not registered and could not be registered."""


async def ensure_search_attributes(client: Client) -> None:
    """Register winfleet's search attributes on the namespace if missing (idempotent).

    Workflows set them on every run, and an unregistered one would fail their workflow tasks,
    so a worker that can neither find nor register them refuses to start
    (`SearchAttributesMissing`, with the command an admin runs).
    """
    wanted = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in search_attributes.ALL
    }
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as exc:
        raise SearchAttributesMissing(_missing_message(client, sorted(wanted), exc)) from None
    missing = {k: v for k, v in wanted.items() if k not in existing.custom_attributes}
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    except RPCError as exc:
        raise SearchAttributesMissing(_missing_message(client, sorted(missing), exc)) from None
    log.info("registered search attributes %s", sorted(missing))


def _missing_message(client: Client, names: list[str], exc: RPCError) -> str:
    commands = "; ".join(
        f"temporal operator search-attribute create --namespace {client.namespace} "
        f"--name {name} --type Keyword"
        for name in names
    )
    return (
        f"search attributes {', '.join(names)} are not registered on namespace "
        f"{client.namespace} and winfleet may not register them ({exc.message}). Register them "
        f"once (Temporal Cloud: in the namespace settings), then start the worker again: "
        f"{commands}"
    )
