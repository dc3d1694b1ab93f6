"""Machine Config Server twin: serves the worker Ignition config of the SIMULATED cluster.

A second HTTPS listener (same CA as the API server twin) answering
`GET /config/worker` with `Accept: application/vnd.coreos.ignition+json;version=3.2.0` (406
otherwise) with an Ignition v3.2 document whose storage.files carry the bootstrap kubeconfig
(/etc/kubernetes/kubeconfig: twin URL, CA, bootstrap token), the KubeletConfiguration
(/etc/kubernetes/kubelet.conf) and the kubelet CA (/etc/kubernetes/kubelet-ca.crt) as
`data:;base64,` URLs. Started by `sim.k8s.server.KubeTwin`; fetched by the product's payload
activity and parsed by the simulated WMCB on Windows hosts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from typing import Any

import yaml
from aiohttp import web

IGNITION_ACCEPT = "application/vnd.coreos.ignition+json;version=3.2.0"

KUBELET_CONFIG: dict[str, Any] = {
    "kind": "KubeletConfiguration",
    "apiVersion": "kubelet.config.k8s.io/v1beta1",
    "authentication": {
        "x509": {"clientCAFile": "/etc/kubernetes/kubelet-ca.crt"},
        "anonymous": {"enabled": False},
    },
    "clusterDomain": "cluster.local",
    "clusterDNS": ["172.30.0.10"],
    "cgroupDriver": "systemd",
    "rotateCertificates": True,
    "serverTLSBootstrap": True,
    "featureGates": {"RotateKubeletServerCertificate": True},
    "systemReserved": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1Gi"},
    "nodeStatusUpdateFrequency": "10s",
    "nodeStatusReportFrequency": "5m0s",
    "nodeLeaseDurationSeconds": 40,
}


def kubelet_timings(node_monitor_grace_seconds: float) -> dict[str, Any]:
    """KubeletConfiguration fields that fit a node-monitor grace period, the way OpenShift's
    worker latency profiles set the kubelet and the controller manager together (default:
    status every 10 s, a 40 s lease, for a 40 s grace period)."""
    if node_monitor_grace_seconds == 40:
        return {}
    update_ms = max(1, int(node_monitor_grace_seconds * 250))
    return {
        "nodeStatusUpdateFrequency": f"{update_ms}ms",
        "nodeLeaseDurationSeconds": max(1, int(node_monitor_grace_seconds)),
    }


def bootstrap_kubeconfig(server: str, ca_pem: bytes, token: str) -> str:
    """The kubeconfig a new node's kubelet uses to ask for its first certificate."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": server,
                        "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": "kubelet", "user": {"token": token}}],
            "contexts": [{"name": "kubelet", "context": {"cluster": "local", "user": "kubelet"}}],
            "current-context": "kubelet",
        },
        sort_keys=False,
    )


def _file(path: str, data: bytes, mode: int = 0o600) -> dict[str, Any]:
    return {
        "path": path,
        "mode": mode,
        "overwrite": True,
        "contents": {"source": "data:;base64," + base64.b64encode(data).decode()},
    }


def worker_ignition(
    server: str, ca_pem: bytes, bootstrap_token: str, kubelet: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The worker Ignition; `kubelet` overrides KubeletConfiguration fields."""
    return {
        "ignition": {"version": "3.2.0"},
        "passwd": {},
        "storage": {
            "files": [
                _file(
                    "/etc/kubernetes/kubeconfig",
                    bootstrap_kubeconfig(server, ca_pem, bootstrap_token).encode(),
                ),
                _file(
                    "/etc/kubernetes/kubelet.conf",
                    yaml.safe_dump({**KUBELET_CONFIG, **(kubelet or {})}, sort_keys=False).encode(),
                    0o644,
                ),
                _file("/etc/kubernetes/kubelet-ca.crt", ca_pem, 0o644),
            ]
        },
        "systemd": {"units": [{"name": "kubelet.service", "enabled": True}]},
    }


async def close_connections(runner: web.AppRunner) -> None:
    """Stop `runner`, aborting open (keep-alive, TLS) connections so no socket outlives it."""
    server = runner.server
    transports = [t for t in getattr(server, "_connections", {}).values() if t is not None]
    for transport in transports:
        transport.abort()
    await runner.cleanup()
    for _ in range(3):  # let the aborted transports run their connection_lost callbacks
        await asyncio.sleep(0)


class MachineConfigServer:
    """The HTTPS listener serving /config/worker."""

    def __init__(
        self, host: str, port: int, ssl_context: ssl.SSLContext, ignition: dict[str, Any]
    ) -> None:
        self._host, self._port, self._ssl = host, port, ssl_context
        self._body = json.dumps(ignition).encode()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _worker(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "").replace(" ", "")
        if IGNITION_ACCEPT not in accept.split(","):
            return web.Response(status=406, text=f"Accept header must be {IGNITION_ACCEPT}\n")
        return web.Response(body=self._body, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/config/worker", self._worker)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await close_connections(self._runner)
            self._runner = None
