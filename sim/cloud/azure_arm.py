"""SIMULATED Azure Resource Manager plumbing: error bodies and long-running operations.

Shared by `azure_network` and `azure_compute` (the resource providers) and `azure` (the
server). What the real ARM does and the SDK relies on:
- errors are `{"error": {"code": ..., "message": ...}}` with the HTTP status the SDK maps
  (404 -> ResourceNotFoundError, 409 -> ResourceExistsError, 401 -> ClientAuthenticationError);
- a PUT that provisions answers 201 with `Azure-AsyncOperation` (an operation status URL that
  reports InProgress, then Succeeded) and the resource in `provisioningState` Creating;
- a DELETE answers 202 with `Location` (an operation result URL that keeps answering 202 until
  the resource is gone, then 204).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

RETRY_AFTER_MS = 200  # sent as `retry-after-ms`: the SDK poller waits this long between polls


class ArmError(Exception):
    """An ARM error answer; raised by providers, rendered by `error_response`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}},
        status=status,
        headers={"x-ms-failure-cause": "gateway", **(headers or {})},
    )


def not_found(resource_type: str, name: str, group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def invalid(message: str, code: str = "InvalidParameter") -> ArmError:
    return ArmError(400, code, message)


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise invalid(
            f"The request content was invalid and could not be deserialized: {exc}",
            "InvalidRequestContent",
        ) from exc
    if not isinstance(body, dict):
        raise invalid("The request content must be a JSON object.", "InvalidRequestContent")
    return body


@dataclass
class Operation:
    id: str
    namespace: str  # e.g. Microsoft.Compute
    location: str
    started: str = field(default_factory=now_iso)
    status: str = "InProgress"  # InProgress | Succeeded | Failed
    ended: str | None = None
    error: dict[str, str] | None = None

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.id, "status": self.status, "startTime": self.started}
        if self.ended:
            body["endTime"] = self.ended
        if self.error:
            body["error"] = self.error
        return body


class Operations:
    """Tracks long-running operations and renders their status/result URLs."""

    def __init__(
        self, base_url: Callable[[], str], subscription_id: str, api_version: str = "2026-04-01"
    ) -> None:
        self._base_url = base_url
        self._subscription_id = subscription_id
        self._api_version = api_version
        self._ops: dict[str, Operation] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _url(self, op: Operation, kind: str) -> str:
        return (
            f"{self._base_url()}/subscriptions/{self._subscription_id}/providers/"
            f"{op.namespace}/locations/{op.location}/{kind}/{op.id}"
            f"?api-version={self._api_version}"
        )

    def start(
        self, namespace: str, location: str, delay: float, work: Callable[[], Awaitable[None]]
    ) -> Operation:
        """Begin an operation that runs `work` after `delay` seconds (simulated provisioning)."""
        op = Operation(id=str(uuid.uuid4()), namespace=namespace, location=location)
        self._ops[op.id] = op

        async def run() -> None:
            await asyncio.sleep(delay)
            try:
                await work()
                op.status = "Succeeded"
            except ArmError as exc:
                op.status, op.error = "Failed", {"code": exc.code, "message": exc.message}
            op.ended = now_iso()

        task = asyncio.create_task(run(), name=f"arm-op-{op.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return op

    def created(self, op: Operation, body: dict[str, Any], status: int = 201) -> web.Response:
        """The answer to a provisioning PUT: `Azure-AsyncOperation` points at the status URL."""
        return web.json_response(
            body,
            status=status,
            headers={
                "Azure-AsyncOperation": self._url(op, "operations"),
                "retry-after-ms": str(RETRY_AFTER_MS),
            },
        )

    def posted(self, op: Operation) -> web.Response:
        """The answer to an action POST (powerOff, start, ...): 202 with both polling URLs."""
        return web.Response(
            status=202,
            headers={
                "Azure-AsyncOperation": self._url(op, "operations"),
                "Location": self._url(op, "operationResults"),
                "retry-after-ms": str(RETRY_AFTER_MS),
            },
        )

    def accepted(self, op: Operation) -> web.Response:
        """The answer to a DELETE: 202 and a `Location` to poll."""
        return web.Response(
            status=202,
            headers={
                "Location": self._url(op, "operationResults"),
                "retry-after-ms": str(RETRY_AFTER_MS),
            },
        )

    def status(self, op_id: str) -> web.Response:
        op = self._ops.get(op_id)
        if op is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
        headers = {"retry-after-ms": str(RETRY_AFTER_MS)} if op.status == "InProgress" else {}
        return web.json_response(op.status_body(), headers=headers)

    def result(self, op_id: str) -> web.Response:
        op = self._ops.get(op_id)
        if op is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
        if op.status == "InProgress":
            return self.accepted(op)
        if op.status == "Failed" and op.error:
            return error_response(500, op.error["code"], op.error["message"])
        return web.Response(status=204)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
