"""A minimal Kubernetes REST client for the SIMULATED node components (aiohttp, real HTTPS).

Reads kubeconfigs as the Windows binaries would (server URL, CA data, bearer token or embedded
client certificate/key), and offers JSON `get/post/patch` returning `(status, body)`. Transport
errors raise `KubeUnreachable` so callers can retry. Used by `kubelet.py` and `overlay.py`; one
small session per running component, closed when the component stops.
"""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import yaml


class KubeUnreachable(Exception):
    """The API server could not be reached (connection refused, TLS failure, timeout)."""


class KubeConfigError(Exception):
    """A kubeconfig the component cannot use."""


def read_kubeconfig(path: Path, fallback_ca: bytes | None = None) -> dict[str, Any]:
    """`{server, ca_pem, token, cert_pem, key_pem}` from the current context of a kubeconfig."""
    try:
        doc = yaml.safe_load(path.read_text())
        cluster = doc["clusters"][0]["cluster"]
        user = doc["users"][0]["user"]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        raise KubeConfigError(f"cannot load kubeconfig {path}: {exc}") from exc
    ca = cluster.get("certificate-authority-data")
    ca_pem = base64.b64decode(ca) if ca else fallback_ca
    cert = user.get("client-certificate-data")
    key = user.get("client-key-data")
    return {
        "server": cluster["server"].rstrip("/"),
        "ca_pem": ca_pem,
        "token": user.get("token"),
        "cert_pem": base64.b64decode(cert) if cert else None,
        "key_pem": base64.b64decode(key) if key else None,
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def client_kubeconfig(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> str:
    """A kubeconfig with embedded client certificate auth (what kubelet writes after bootstrap)."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "default-cluster",
                    "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
                }
            ],
            "users": [
                {
                    "name": "default-auth",
                    "user": {
                        "client-certificate-data": _b64(cert_pem),
                        "client-key-data": _b64(key_pem),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "default-context",
                    "context": {"cluster": "default-cluster", "user": "default-auth"},
                }
            ],
            "current-context": "default-context",
        },
        sort_keys=False,
    )


class KubeClient:
    def __init__(self, config: dict[str, Any], cert_file: Path | None = None) -> None:
        """`cert_file`: a PEM holding the client certificate and key (mTLS); else the token."""
        # Only the cluster CA: loading the system trust store costs ~30 ms of CPU per client.
        if config["ca_pem"]:
            ctx = ssl.create_default_context(cadata=config["ca_pem"].decode())
        else:
            ctx = ssl.create_default_context()
        headers = {"Accept": "application/json", "User-Agent": "kubelet/simulated (windows)"}
        if cert_file is not None:
            ctx.load_cert_chain(str(cert_file))
        elif config.get("token"):
            headers["Authorization"] = f"Bearer {config['token']}"
        self.server = config["server"]
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=ctx, limit=2),
            timeout=aiohttp.ClientTimeout(total=10),
        )

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        try:
            async with self._session.request(
                method, self.server + path, data=data, headers=headers
            ) as resp:
                text = await resp.text()
                try:
                    return resp.status, json.loads(text) if text else None
                except ValueError:
                    return resp.status, text
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise KubeUnreachable(f"{method} {path}: {exc}") from exc

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.request("GET", path)

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.request("POST", path, body)

    async def patch(self, path: str, body: Any, strategic: bool = True) -> tuple[int, Any]:
        kind = "strategic-merge-patch" if strategic else "merge-patch"
        return await self.request("PATCH", path, body, f"application/{kind}+json")

    async def close(self) -> None:
        await self._session.close()
