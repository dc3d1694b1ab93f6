"""The worker's HTTP endpoint (`WINFLEET_HTTP_ADDRESS`, e.g. `0.0.0.0:9090`): `/metrics` for
Prometheus, `/healthz` and `/readyz` for the Deployment's probes.

- `/healthz`: 200 while the process's event loop answers (liveness; a wedged loop fails it).
- `/readyz`: 200 when the worker is polling its task queue and the Temporal frontend answers
  its health check within 3 s; otherwise 503 saying which is not.
- `/metrics`: worker/metrics.py's `render` (winfleet's series and the Temporal SDK's).

Started and stopped by worker/app.py around the worker's run.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from temporalio.client import Client
from temporalio.worker import Worker

from worker import metrics

log = logging.getLogger(__name__)

TEMPORAL_CHECK_SECONDS = 3.0


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::]:9090`) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"WINFLEET_HTTP_ADDRESS {address!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


class HealthServer:
    """aiohttp server for /metrics, /healthz, /readyz."""

    def __init__(
        self, address: str, client: Client, worker: Worker, sdk_metrics: str | None
    ) -> None:
        self._host, self._port = split_address(address)
        self._client = client
        self._worker = worker
        self._sdk_metrics = sdk_metrics
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        log.info("serving /metrics, /healthz, /readyz on %s:%d", self._host, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if not self._worker.is_running:
            return web.Response(status=503, text="worker not polling\n")
        try:
            healthy = await asyncio.wait_for(
                self._client.service_client.check_health(), TEMPORAL_CHECK_SECONDS
            )
        except Exception as exc:  # unreachable, TLS, auth: not ready, whatever it is
            return web.Response(status=503, text=f"Temporal unreachable ({type(exc).__name__})\n")
        if not healthy:
            return web.Response(status=503, text="Temporal frontend not serving\n")
        return web.Response(text="ok\n")

    async def _metrics(self, _: web.Request) -> web.Response:
        body = await metrics.render(self._sdk_metrics)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
