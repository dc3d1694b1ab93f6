"""The SIMULATED kubelet of a Windows host (runs while the `kubelet` service runs).

Bootstraps like the real one: with the bootstrap kubeconfig's token it sends a client CSR
(`kubernetes.io/kube-apiserver-client-kubelet`, named `node-csr-<digest>`, its key kept in
`<cert-dir>\\kubelet-client.key.tmp` until the certificate is issued and reused by a restart
before that), waits for the certificate, writes
`C:\\k\\kubeconfig` (embedded client cert/key; key material also under the --cert-dir), then, with
its client certificate (mTLS), registers the Node (labels from --node-labels plus the Windows
ones, taints from --register-with-taints, addresses, node info with the version read from the
kubelet.exe stand-in), sends a serving CSR (`kubernetes.io/kubelet-serving`, SANs: IP and
hostname), then renews its node Lease and posts node status (`nodestatus.py`).
Ready needs: kubelet running + CNI flags + the HNS overlay network + kube-proxy running.
When the service stops, nothing more is posted: the cluster's node lifecycle controller turns
the Node Unknown once its grace period passes, as on a real cluster. Cheap: one asyncio task
and one small HTTP session per host, ~1 s polling.
Spawned by `components.py`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from pathlib import Path
from typing import Any

from sim.windows import certs, cmdline, paths
from sim.windows.components import binary_name
from sim.windows.kubeapi import (
    KubeClient,
    KubeConfigError,
    KubeUnreachable,
    client_kubeconfig,
    read_kubeconfig,
)
from sim.windows.nodestatus import NodeReporter, Timings, kubelet_conditions

log = logging.getLogger(__name__)
OVERLAY_NETWORK = "OVNKubernetesHybridOverlayNetwork"
BOOTSTRAP_KEY_FILE = "kubelet-client.key.tmp"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(host: Any, win_path: str) -> Path:
    return paths.to_local(host.root, win_path)


def kubelet_version(host: Any, exe: str) -> str:
    try:
        with _local(host, exe).open("rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except (OSError, paths.PathError):
        return "v0.0.0-unknown"
    for line in head.splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip()
    return "v0.0.0-unknown"


def _labels(flags: dict[str, str], node: str, build: str) -> dict[str, str]:
    labels = {
        "kubernetes.io/os": "windows",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "windows",
        "beta.kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": node,
        "node.kubernetes.io/windows-build": ".".join(build.split(".")[:3]),
    }
    for item in filter(None, flags.get("node-labels", "").split(",")):
        key, _, value = item.partition("=")
        labels[key] = value
    return labels


def _taints(flags: dict[str, str]) -> list[dict[str, str]]:
    taints = []
    for item in filter(None, flags.get("register-with-taints", "").split(",")):
        key_value, _, effect = item.partition(":")
        key, _, value = key_value.partition("=")
        taints.append({"key": key, "value": value, "effect": effect})
    return taints


def readiness(host: Any, flags: dict[str, str]) -> tuple[bool, str]:
    """(ready, message) from what runs on the host right now."""
    if flags.get("network-plugin") != "cni":
        return False, "network plugin is not ready: cni config uninitialized"
    if host.hns.network_named(OVERLAY_NETWORK) is None:
        return False, f"network plugin is not ready: HNS network {OVERLAY_NETWORK} not found"
    proxy_running = any(
        s.status == "Running" and binary_name(s.bin_path) == "kube-proxy.exe"
        for s in host.scm.all()
    )
    if not proxy_running:
        return False, "kube-proxy is not running"
    return True, "kubelet is posting ready status"


async def _bootstrap(host: Any, flags: dict[str, str], node: str, pki: Path) -> dict[str, Any]:
    """Client certificate via the bootstrap token; returns the client kubeconfig."""
    kubeconfig = _local(host, flags.get("kubeconfig", "C:\\k\\kubeconfig"))
    if kubeconfig.is_file():
        try:
            config = read_kubeconfig(kubeconfig, host.kube_ca_pem)
            if config["cert_pem"] and config["key_pem"]:
                return config
        except KubeConfigError:
            pass
    boot = read_kubeconfig(_local(host, flags["bootstrap-kubeconfig"]), host.kube_ca_pem)
    # As the real kubelet: the key waits in kubelet-client.key.tmp until the certificate is
    # issued (a restart reuses it), then goes with the certificate into -current.pem.
    # Small local files on the host's disk, written inline (as the twin does everywhere).
    bootstrap_key = pki / BOOTSTRAP_KEY_FILE
    key_pem = certs.load_or_generate_key(bootstrap_key)
    csr_pem = certs.csr_for(key_pem, node)
    client = KubeClient(boot)
    try:
        cert_pem = await certs.request_certificate(
            client,
            csr_pem,
            certs.CLIENT_SIGNER,
            certs.CLIENT_USAGES,
            host.tick_seconds,
            name=certs.digested_name(key_pem, node, certs.CLIENT_USAGES),
        )
    finally:
        await client.close()
    (pki / "kubelet-client-current.pem").write_bytes(cert_pem + key_pem)
    bootstrap_key.unlink(missing_ok=True)
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(client_kubeconfig(boot["server"], boot["ca_pem"], cert_pem, key_pem))
    return read_kubeconfig(kubeconfig, host.kube_ca_pem)


async def _register(
    client: KubeClient, host: Any, flags: dict[str, str], node: str, ip: str, exe: str
) -> None:
    while True:
        try:
            status, _ = await client.get(f"/api/v1/nodes/{node}")
            if status == 200:
                return
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node,
                    "labels": _labels(flags, node, host.os_build),
                    "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
                },
                "spec": {"taints": _taints(flags)},
                "status": _node_status(
                    host,
                    node,
                    ip,
                    exe,
                    "False",
                    "KubeletNotReady",
                    "container runtime network not ready",
                    _now(),
                ),
            }
            status, obj = await client.post("/api/v1/nodes", body)
            if status in (200, 201, 409):
                return
            log.warning("node %s registration answered %s: %s", node, status, str(obj)[:200])
        except KubeUnreachable:
            pass
        await asyncio.sleep(host.tick_seconds)


def _node_status(
    host: Any, node: str, ip: str, exe: str, ready: str, reason: str, message: str, since: str
) -> dict[str, Any]:
    return {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": node}],
        "nodeInfo": {
            "kubeletVersion": kubelet_version(host, exe),
            "kubeProxyVersion": kubelet_version(host, exe),
            "osImage": "Windows Server 2019 Datacenter",
            "kernelVersion": host.os_build,
            "operatingSystem": "windows",
            "architecture": "amd64",
            "containerRuntimeVersion": "docker://19.3.14",
            "machineID": host.hostname,
            "systemUUID": host.address,
            "bootID": "",
        },
        "capacity": {"cpu": "2", "memory": "8388608Ki", "pods": "110"},
        "allocatable": {"cpu": "1500m", "memory": "7340032Ki", "pods": "110"},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "conditions": kubelet_conditions(ready == "True", message, []),
    }


async def _serving_cert(
    client: KubeClient, node: str, ip: str, pki: Path, poll_seconds: float
) -> None:
    target = pki / "kubelet-server-current.pem"
    if target.is_file():
        return
    key_pem, csr_pem = certs.new_key_and_csr(node, dns_names=(node,), ips=(ip,))
    cert_pem = await certs.request_certificate(
        client, csr_pem, certs.SERVING_SIGNER, certs.SERVING_USAGES, poll_seconds
    )
    target.write_bytes(cert_pem + key_pem)


async def run_kubelet(host: Any, flags: dict[str, str]) -> None:
    node = flags.get("hostname-override") or host.hostname.lower()
    ip = flags.get("node-ip") or host.address
    svc = host.scm.find("kubelet")
    argv = cmdline.split(svc.bin_path) if svc is not None else []
    exe = argv[0] if argv else "C:\\k\\kubelet.exe"
    pki = _local(host, flags.get("cert-dir", "C:\\var\\lib\\kubelet\\pki"))
    try:
        config = await _bootstrap(host, flags, node, pki)
    except (KubeConfigError, certs.CsrDenied, OSError) as exc:
        log.warning("kubelet on %s cannot bootstrap: %s", host.address, exc)
        return  # the service crashes
    pki.mkdir(parents=True, exist_ok=True)
    cert_file = pki / "kubelet-client-current.pem"
    cert_file.write_bytes(config["cert_pem"] + config["key_pem"])
    client = KubeClient(config, cert_file=cert_file)
    serving: asyncio.Task[None] | None = None
    timings = Timings.read(_local(host, flags.get("config", "C:\\k\\kubelet.conf")))
    reporter = NodeReporter(client, node, timings)
    try:
        await _register(client, host, flags, node, ip, exe)
        serving = asyncio.create_task(_serving_cert(client, node, ip, pki, host.tick_seconds))
        loop = asyncio.get_running_loop()
        while True:
            if not await reporter.tick(loop.time(), readiness(host, flags)):
                await _register(client, host, flags, node, ip, exe)  # the Node was deleted
            await asyncio.sleep(host.tick_seconds)
    finally:
        if serving is not None:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
        await client.close()
