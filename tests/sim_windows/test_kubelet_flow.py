"""A simulated Windows host joins the simulated cluster the way WMCB + kubelet do on Windows."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh
import pytest
from cryptography import x509

from sim.k8s.mcs import worker_ignition
from sim.k8s.server import KubeTwin
from sim.windows.fleet import HostFleet, HostSpec
from tests.sim_windows.conftest import connect, install_payload, next_address

CSRS = ("certificates.k8s.io", "certificatesigningrequests")
NODES = ("", "nodes")
GRACE = 3.0
UNREACHABLE = "node.kubernetes.io/unreachable"
OS_TAINT = {("os", "NoSchedule")}


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[KubeTwin]:
    # a short node-monitor grace period: the node lifecycle controller turns a silent Node
    # Unknown after 3 s instead of 40 s
    twin = await KubeTwin(tmp_path / "k8s", node_monitor_grace_seconds=GRACE).start()
    yield twin
    await twin.stop()


async def eventually(what: str, probe: Callable[[], Any], within: float = 20.0) -> Any:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def csrs(twin: KubeTwin, signer: str) -> list[dict[str, Any]]:
    return [e.obj for e in twin.store.entries(CSRS) if e.obj["spec"]["signerName"] == signer]


def node(twin: KubeTwin, name: str) -> dict[str, Any] | None:
    entry = twin.store.entry(NODES, "", name)
    return entry.obj if entry else None


def ready(obj: dict[str, Any] | None) -> str | None:
    return (condition(obj, "Ready") or {}).get("status")


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in (obj or {}).get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return dict(cond)
    return None


def taint_keys(obj: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in (obj or {}).get("spec", {}).get("taints") or []}


async def approve(twin: KubeTwin, name: str) -> None:
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "status": {
            "conditions": [
                {"type": "Approved", "status": "True", "reason": "WMCOApprove", "message": "test"}
            ]
        },
    }
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {twin.admin_token}"},
        connector=aiohttp.TCPConnector(ssl=False),
    ) as session:
        url = f"{twin.url}/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval"
        async with session.put(url, json=body) as resp:
            assert resp.status == 200, await resp.text()


def ps(script: str) -> str:
    return f'powershell.exe -NoLogo -NoProfile -NonInteractive -Command "{script}"'


async def run(conn: asyncssh.SSHClientConnection, command: str) -> str:
    result = await conn.run(command)
    assert result.exit_status == 0, (command, result.stdout, result.stderr)
    return str(result.stdout)


async def test_kubelet_bootstraps_registers_turns_ready_and_goes_unknown_when_it_stops(
    tmp_path: Path, twin: KubeTwin, payload: Path
):
    key = asyncssh.generate_private_key("ssh-ed25519")
    fleet = HostFleet(tmp_path / "fleet", kube_ca_pem=twin.ca.ca_pem)
    await fleet.start()
    try:
        host = await fleet.add_host(
            HostSpec(
                address=next_address(),
                hostname="WIN-FLOW1",
                authorized_keys=(key.export_public_key().decode(),),
            )
        )
        install_payload(host, payload)
        ign = worker_ignition(twin.url, twin.ca.ca_pem, twin.bootstrap_token, twin.kubelet_config)
        (host.root / "C" / "k" / "worker.ign").write_text(json.dumps(ign))
        name = "win-flow1"
        async with await connect(host, key) as conn:
            out = await run(
                conn,
                r"C:\k\wmcb.exe initialize-kubelet --ignition-file "
                rf"C:\k\worker.ign --kubelet-path C:\k\kubelet.exe --node-ip {host.address}",
            )
            assert "Bootstrapping completed successfully" in out

            client_csr = (
                await eventually(
                    "a client CSR",
                    lambda: csrs(twin, "kubernetes.io/kube-apiserver-client-kubelet"),
                )
            )[0]
            request = x509.load_pem_x509_csr(base64.b64decode(client_csr["spec"]["request"]))
            assert request.subject.rfc4514_string() == f"CN=system:node:{name},O=system:nodes"
            assert client_csr["spec"]["username"] == (
                "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
            )
            assert node(twin, name) is None
            await approve(twin, client_csr["metadata"]["name"])

            registered = await eventually("the Node", lambda: node(twin, name))
            assert ready(registered) == "False"
            labels = registered["metadata"]["labels"]
            assert labels["node.openshift.io/os_id"] == "Windows"
            assert labels["kubernetes.io/os"] == "windows"
            taints = registered["spec"]["taints"]
            assert {"key": "os", "value": "Windows", "effect": "NoSchedule"} in taints
            assert "node.kubernetes.io/not-ready" in {t["key"] for t in taints}
            assert {"type": "InternalIP", "address": host.address} in registered["status"][
                "addresses"
            ]
            assert registered["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.")
            assert (host.root / "C" / "k" / "kubeconfig").is_file()

            serving = (
                await eventually(
                    "a serving CSR", lambda: csrs(twin, "kubernetes.io/kubelet-serving")
                )
            )[0]
            assert serving["spec"]["username"] == f"system:node:{name}"
            assert "system:nodes" in serving["spec"]["groups"]
            await approve(twin, serving["metadata"]["name"])

            # hybrid-overlay -> HNS network -> CNI -> VIP endpoint -> kube-proxy -> Ready
            await run(
                conn,
                ps(
                    r"New-Service -Name hybrid-overlay-node -BinaryPathName "
                    r"'C:\k\hybrid-overlay-node.exe"
                    rf" --node {name} --k8s-kubeconfig C:\k\kubeconfig' -StartupType Automatic "
                    "-DependsOn kubelet | Out-Null; Start-Service -Name hybrid-overlay-node"
                ),
            )
            await eventually(
                "the overlay network",
                lambda: "OVNKubernetesHybridOverlayNetwork" in host.hns_networks,
            )
            annotations = await eventually(
                "the gateway MAC annotation",
                lambda: (
                    node(twin, name)["metadata"]
                    .get("annotations", {})
                    .get("k8s.ovn.org/hybrid-overlay-distributed-router-gateway-mac")
                ),
            )
            assert annotations
            (host.root / "C" / "k" / "cni" / "config").mkdir(parents=True)
            (host.root / "C" / "k" / "cni" / "config" / "cni.conf").write_text(
                json.dumps(
                    {
                        "cniVersion": "0.2.0",
                        "name": "OVNKubernetesHybridOverlayNetwork",
                        "type": "win-overlay",
                    }
                )
            )
            out = await run(
                conn,
                r"C:\k\wmcb.exe configure-cni --cni-dir C:\k\cni "
                r"--cni-config C:\k\cni\config\cni.conf",
            )
            assert "CNI configuration completed successfully" in out
            net_id = host.hns.network_named("OVNKubernetesHybridOverlayNetwork").id
            vip = json.loads(
                await run(
                    conn,
                    ps(
                        rf"Import-Module C:\k\hns.psm1; New-HnsEndpoint -NetworkId {net_id} "
                        "-Name VIPEndpoint | ConvertTo-Json"
                    ),
                )
            )["IPAddress"]
            await run(
                conn,
                ps(
                    r"New-Service -Name kube-proxy -BinaryPathName 'C:\k\kube-proxy.exe "
                    rf"--windows-service --proxy-mode=kernelspace --hostname-override={name} "
                    r"--kubeconfig=C:\k\kubeconfig "
                    r"--network-name=OVNKubernetesHybridOverlayNetwork "
                    rf"--source-vip={vip} --enable-dsr=true' -StartupType Automatic "
                    "-DependsOn hybrid-overlay-node | Out-Null; Start-Service -Name kube-proxy"
                ),
            )
            await eventually("Ready=True", lambda: ready(node(twin, name)) == "True")
            await eventually(
                "the not-ready taint to go", lambda: not taint_keys(node(twin, name)) - OS_TAINT
            )
            lease = twin.store.get("leases", name, "kube-node-lease", "coordination.k8s.io")
            assert lease["spec"]["holderIdentity"] == name
            # the kubelet.conf the twin serves sets nodeLeaseDurationSeconds to fit the grace
            assert lease["spec"]["leaseDurationSeconds"] == int(GRACE)
            assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
            pressure = condition(node(twin, name), "MemoryPressure")
            assert pressure["status"] == "False"

            await run(conn, ps("Stop-Service -Name kubelet -Force"))
            assert ready(node(twin, name)) == "True"  # nothing says otherwise yet

            await eventually(
                "the Node to turn Unknown", lambda: ready(node(twin, name)) == "Unknown"
            )
            silent = node(twin, name)
            for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
                cond = condition(silent, kind)
                assert cond["status"] == "Unknown"
                assert cond["reason"] == "NodeStatusUnknown"
                assert cond["message"] == "Kubelet stopped posting node status."
            await eventually(
                "the unreachable taints",
                lambda: (
                    {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
                    <= taint_keys(node(twin, name))
                ),
            )
            assert all(t.get("timeAdded") for t in node(twin, name)["spec"]["taints"][1:])

            await run(conn, ps("Start-Service -Name kube-proxy"))  # starts kubelet first
            await eventually(
                "Ready=True again with only the os taint",
                lambda: (
                    ready(node(twin, name)) == "True" and taint_keys(node(twin, name)) == OS_TAINT
                ),
            )
    finally:
        await fleet.stop()


async def test_kube_proxy_without_its_vip_endpoint_stops_like_a_crashing_service(
    fleet: HostFleet, host, payload, monkeypatch
):
    from sim.windows import overlay

    monkeypatch.setattr(overlay, "KUBE_PROXY_STARTUP_SECONDS", 0.2)
    install_payload(host, payload)
    (host.root / "C" / "k" / "kubeconfig").write_text("apiVersion: v1\n")
    host.hns.create_network(
        "OVNKubernetesHybridOverlayNetwork", "Overlay", "10.132.0.0/24", "10.132.0.1"
    )
    out, _err, code = await host.run(
        r'sc.exe create kube-proxy binPath= "C:\k\kube-proxy.exe --kubeconfig=C:\k\kubeconfig '
        r'--network-name=OVNKubernetesHybridOverlayNetwork --source-vip=10.132.0.9" start= auto'
    )
    assert code == 0, out
    assert (await host.run("sc.exe start kube-proxy"))[2] == 0
    await eventually(
        "kube-proxy to stop", lambda: host.services["kube-proxy"] == "Stopped", within=10
    )
