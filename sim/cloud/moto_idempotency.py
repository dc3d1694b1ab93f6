"""SIMULATED: make moto's RunInstances honour `ClientToken`, as real EC2 does.

moto 5 records the token on the instance but launches a new reservation on every call. Real EC2
returns the original reservation when the same token is sent again, which is what makes a
retried "create VM" activity safe. `install()` wraps moto's backend method once per process;
`sim.cloud.aws.AwsTwin` calls it before starting its server.
"""

from __future__ import annotations

import threading
from typing import Any

_installed = False
_lock = threading.Lock()
_MOTO_DEFAULT_TOKEN = "ABCDE"  # what moto's response layer passes when no token was sent


def install() -> None:
    """Patch `moto.ec2.models.instances.InstanceBackend.run_instances` (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        from moto.ec2.models.instances import InstanceBackend

        original = InstanceBackend.run_instances

        def run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
            token = kwargs.get("client_token")
            if not token or token == _MOTO_DEFAULT_TOKEN:
                return original(self, *args, **kwargs)
            with _lock:
                for reservation in self.reservations.values():
                    if any(i.client_token == token for i in reservation.instances):
                        return reservation
                return original(self, *args, **kwargs)

        InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]
        _installed = True
