"""Request counting for the SIMULATED Kubernetes API server (`KubeTwin.requests`).

What kube-apiserver's `apiserver_request_total` metric counts, kept in memory per client: every
request that authenticated, by user, verb (get, list, watch, create, update, patch, delete,
deletecollection), resource and subresource; non-resource requests (discovery, /version) count
as resource "" with their path as subresource. A watch counts once, when it starts. Counted
before authorization and fault injection, so refused and failed requests count too. The bench
(`bench/onboard.py`) reads it to report the worker's requests per onboarded node; tests read it
to prove a wait made no requests. Consulted by `sim.k8s.handlers`.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import NamedTuple


class RequestKey(NamedTuple):
    user: str
    verb: str
    resource: str
    subresource: str


class RequestCounts:
    """Thread-safe counters of the requests served, by user, verb and resource."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[RequestKey] = Counter()

    def count(self, user: str, verb: str, resource: str, subresource: str = "") -> None:
        with self._lock:
            self._counts[RequestKey(user, verb, resource, subresource)] += 1

    def snapshot(self, user: str | None = None) -> Counter[RequestKey]:
        """A copy of the counters (only `user`'s when given)."""
        with self._lock:
            return Counter(
                {k: n for k, n in self._counts.items() if user is None or k.user == user}
            )

    def total(self, user: str | None = None, verb: str | None = None) -> int:
        """How many requests `user` (everyone: None) made, of `verb` (any: None)."""
        return sum(n for k, n in self.snapshot(user).items() if verb is None or k.verb == verb)
