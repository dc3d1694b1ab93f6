"""Phase 4, configure-kubelet: give the host the worker ignition and let WMCB set up kubelet.

Called by the onboarding workflow after the payload is on the host. Fetches the worker ignition
from the cluster's Machine Config Server inside the activity (it carries a bootstrap token, so it
never travels through workflow history, logs or spans), copies it to `C:\\k\\worker.ign` when the
host's copy differs, and runs `wmcb.exe initialize-kubelet` unless the kubelet service already
runs from this very ignition. Once kubelet runs it sends the node's client CSR by itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TypeVar

from temporalio import activity

from activities import blocking, kube, lockdown
from activities.config import on_settings_change, settings
from activities.errors import (
    InvalidRequest,
    KubernetesUnavailable,
    boundary,
)
from activities.polling import heartbeating
from activities.reuse import Reused
from activities.ssh import HostSession, session_for
from activities.tracing import span
from activities.windows import paths, powershell, wmcb
from activities.windows.services import (
    KUBELET_SERVICE,
    KUBELET_STATE_DIR,
    parse_service_state,
    query_service_command,
)

T = TypeVar("T")

IGNITION_ACCEPT = "application/vnd.coreos.ignition+json;version=3.2.0"
MCS_PORT = 22623
MCS_TIMEOUT_SECONDS = 30.0
IGNITION_REUSE_S = 30.0  # a fetched worker ignition serves the onboardings of the next 30 s

_ignitions: Reused[tuple[str, str | None], bytes] = Reused(IGNITION_REUSE_S)  # by (url, CA)

APPLIED_MARKER = paths.WindowsPath(paths.IGNITION + ".applied")
"""Holds the SHA256 of the ignition WMCB last applied successfully (written after success)."""

CNI_APPLIED_MARKER = paths.win_join(paths.K_DIR, "cni.conf.applied")
"""Written by configure-cni; initialize-kubelet drops kubelet's CNI flags, so it removes it."""


@dataclass(frozen=True)
class ConfigureKubeletInput:
    node_name: str
    address: str
    username: str
    private_key_secret: str
    node_ip: str = ""  # empty: kubelet picks the host's address


@activity.defn(name="configure_kubelet")
@boundary
async def configure_kubelet(inp: ConfigureKubeletInput) -> None:
    """Ensure kubelet runs from the cluster's current worker ignition (WMCB initialize-kubelet)."""
    ignition = await fetch_worker_ignition()
    digest = hashlib.sha256(ignition).hexdigest()
    activity.heartbeat("ignition fetched")
    async with session_for(inp) as host:
        with span("ensure worker ignition", node=inp.node_name, phase="configure-kubelet"):
            # It carries a bootstrap token: C:\k is closed to all but admins before it lands.
            await lockdown.restrict(host, paths.K_DIR)
            if not same_hash(await host.remote_sha256(paths.IGNITION), digest):
                await host.put_bytes(ignition, paths.IGNITION)
        activity.heartbeat("ignition on host")
        if await _kubelet_current(host, digest):
            await lockdown.restrict(host, KUBELET_STATE_DIR)
            activity.logger.info("kubelet already configured from this ignition; nothing to do")
            return
        with span("wmcb initialize-kubelet", node=inp.node_name, phase="configure-kubelet"):
            await _remove_if_present(host, APPLIED_MARKER)
            await _remove_if_present(host, CNI_APPLIED_MARKER)
            cmd = wmcb.initialize_kubelet(node_ip=inp.node_ip or None)
            await heartbeating(host.run(cmd))
            await host.put_bytes(digest.encode(), APPLIED_MARKER)
            await lockdown.restrict(host, KUBELET_STATE_DIR)  # kubelet's keys go here
        activity.logger.info("kubelet configured by WMCB on %s", inp.node_name)


async def _kubelet_current(host: HostSession, digest: str) -> bool:
    """True when kubelet runs and the last successful WMCB run applied this ignition."""
    expected = hashlib.sha256(digest.encode()).hexdigest()
    if not same_hash(await host.remote_sha256(APPLIED_MARKER), expected):
        return False
    r = await host.run(query_service_command(KUBELET_SERVICE), check=False)
    state = parse_service_state(KUBELET_SERVICE, r.exit_status, r.stdout, r.stderr)
    return state is not None and state.running


def same_hash(remote: str | None, local_hex: str) -> bool:
    """Whether a remote SHA256 (Get-FileHash prints uppercase; None: no file) is `local_hex`."""
    return remote is not None and remote.lower() == local_hex.lower()


async def _remove_if_present(host: HostSession, path: paths.WindowsPath) -> None:
    if await host.remote_size(path) is not None:
        await host.run(powershell.powershell(powershell.remove_item(path), display=f"rm {path}"))


# --- the Machine Config Server ------------------------------------------------------------------
def mcs_endpoint() -> tuple[str, str | None]:
    """The worker-ignition URL and CA bundle path (None: the kubeconfig's CA data)."""
    s = settings()
    if s.mcs_url:
        return s.mcs_url, s.mcs_ca_bundle or kube.api_client().configuration.ssl_ca_cert
    cfg = kube.api_client().configuration
    host = urllib.parse.urlsplit(cfg.host).hostname
    if not host:
        raise InvalidRequest("cannot derive the Machine Config Server URL: set WINFLEET_MCS_URL")
    netloc = f"[{host}]" if ":" in host else host
    return f"https://{netloc}:{MCS_PORT}/config/worker", s.mcs_ca_bundle or cfg.ssl_ca_cert


async def fetch_worker_ignition() -> bytes:
    """The worker ignition (Ignition v3 JSON) as served; it holds a token: never log it.

    Onboardings that start together share one fetch, and a fetched ignition serves the
    activities of the next IGNITION_REUSE_S seconds (in memory only): a fleet of nodes costs
    the Machine Config Server one request, not one TLS handshake and download per node.
    """
    url, ca_file = mcs_endpoint()
    return await _ignitions.get((url, ca_file), lambda: _fetch_ignition(url, ca_file))


async def _fetch_ignition(url: str, ca_file: str | None) -> bytes:
    with span("mcs get worker ignition"):
        body = await blocking.run(_get, url, ca_file)
    try:
        doc = json.loads(body)
        version = doc["ignition"]["version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"{url} did not serve an Ignition config") from exc
    if not str(version).startswith("3."):
        raise InvalidRequest(f"{url} served Ignition {version}; WMCB needs version 3")
    return body


def _forget_ignitions() -> None:
    _ignitions.clear()
    _tls_context.cache_clear()


@functools.lru_cache(maxsize=4)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def _get(url: str, ca_file: str | None) -> bytes:
    """One blocking GET; urllib errors become winfleet errors here and only here."""
    context = _tls_context(ca_file)
    request = urllib.request.Request(url, headers={"Accept": IGNITION_ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=MCS_TIMEOUT_SECONDS, context=context) as r:
            body: bytes = r.read()
            return body
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response, and with it the TLS socket
        if exc.code >= 500 or exc.code == 429:
            raise KubernetesUnavailable(
                f"Machine Config Server {url} answered {exc.code}; retrying"
            ) from exc
        raise InvalidRequest(
            f"Machine Config Server {url} refused the worker ignition ({exc.code})"
        ) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise InvalidRequest(
                f"Machine Config Server {url} certificate not trusted; check WINFLEET_MCS_CA_BUNDLE"
            ) from exc
        raise KubernetesUnavailable(
            f"Machine Config Server {url} unreachable ({type(exc.reason).__name__})"
        ) from exc
    except (TimeoutError, OSError) as exc:
        raise KubernetesUnavailable(
            f"Machine Config Server {url} unreachable ({type(exc).__name__})"
        ) from exc


on_settings_change(_forget_ignitions)
