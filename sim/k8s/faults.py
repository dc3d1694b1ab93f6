"""Fault injection for the SIMULATED Kubernetes API server (`KubeTwin.faults`).

Tests arm failures that happen before a request touches the store, so state is unchanged:
`add(verb, resource, status=500, count=N)` fails the next N matching requests with that status
(429 carries Retry-After: 1), `latency(verb, resource, seconds)` delays every matching request,
`clear()` removes everything. verb is get/list/watch/create/update/patch/delete (or "*"),
resource a plural such as "certificatesigningrequests" (or "*"). Consulted by `sim.k8s.handlers`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"}
)


@dataclass
class _Failure:
    verb: str
    resource: str
    status: int
    remaining: int


def _matches(rule_verb: str, rule_resource: str, verb: str, resource: str) -> bool:
    return rule_verb in ("*", verb) and rule_resource in ("*", resource)


class Faults:
    """Armed failures and latencies; thread-safe so tests can arm them from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._latencies: list[tuple[str, str, float]] = []

    def add(self, verb: str, resource: str, status: int = 500, count: int = 1) -> None:
        if verb not in VERBS:
            raise ValueError(f"unknown verb {verb!r}; expected one of {sorted(VERBS)}")
        with self._lock:
            self._failures.append(_Failure(verb, resource, status, count))

    def latency(self, verb: str, resource: str, seconds: float) -> None:
        if verb not in VERBS:
            raise ValueError(f"unknown verb {verb!r}; expected one of {sorted(VERBS)}")
        with self._lock:
            self._latencies.append((verb, resource, seconds))

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._latencies.clear()

    def delay_for(self, verb: str, resource: str) -> float:
        with self._lock:
            return sum(s for v, r, s in self._latencies if _matches(v, r, verb, resource))

    def take(self, verb: str, resource: str) -> int | None:
        """The status to fail this request with (consuming one count), or None."""
        with self._lock:
            for f in self._failures:
                if f.remaining > 0 and _matches(f.verb, f.resource, verb, resource):
                    f.remaining -= 1
                    if f.remaining == 0:
                        self._failures.remove(f)
                    return f.status
            return None
