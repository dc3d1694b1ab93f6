"""SIMULATED cloud API faults: make the next N matching requests fail like the real service.

`CloudFaults.add(operation, status, code, message, count)` arms a fault; a request whose
operation matches (AWS: the Query API `Action`, e.g. `RunInstances`; Azure: `"<METHOD> <path
substring>"`, e.g. `"PUT virtualMachines"`) takes one and gets the error instead of the service.
Used by `AwsTwin.faults` (through a WSGI wrapper around moto) and `AzureTwin.faults`, so the
product's retry and error translation can be tested. Thread-safe: moto serves from threads.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Fault:
    operation: str
    status: int
    code: str
    message: str
    remaining: int


class CloudFaults:
    """Armed faults, consumed in the order they were added."""

    def __init__(self, matches: Callable[[str, str], bool]) -> None:
        self._matches = matches  # (armed operation, request operation) -> bool
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.taken: list[Fault] = []  # what was served, for assertions

    def add(
        self,
        operation: str,
        status: int = 500,
        code: str = "InternalError",
        message: str = "An internal error has occurred (SIMULATED fault).",
        count: int = 1,
    ) -> None:
        with self._lock:
            self._faults.append(Fault(operation, status, code, message, count))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def armed(self) -> bool:
        return bool(self._faults)

    def take(self, operation: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if self._matches(fault.operation, operation):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    self.taken.append(fault)
                    return fault
        return None


def aws_faults() -> CloudFaults:
    return CloudFaults(lambda armed, action: armed.lower() == action.lower())


def azure_faults() -> CloudFaults:
    def matches(armed: str, request: str) -> bool:
        method, _, fragment = armed.partition(" ")
        req_method, _, path = request.partition(" ")
        return method.upper() == req_method.upper() and fragment.lower() in path.lower()

    return CloudFaults(matches)


class FaultyWsgi:
    """WSGI wrapper for moto: serve an armed fault as an EC2 Query API error response."""

    def __init__(self, app: Any, faults: CloudFaults) -> None:
        self.app, self.faults = app, faults

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self.faults.armed and environ.get("REQUEST_METHOD") == "POST":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(size)
            environ["wsgi.input"] = io.BytesIO(body)
            action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
            fault = self.faults.take(action)
            if fault is not None:
                xml = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                    f"<Code>{fault.code}</Code><Message>{fault.message}</Message>"
                    f"</Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
                ).encode()
                start_response(
                    f"{fault.status} Fault",
                    [("Content-Type", "text/xml"), ("Content-Length", str(len(xml)))],
                )
                return [xml]
        result: Iterable[bytes] = self.app(environ, start_response)
        return result
