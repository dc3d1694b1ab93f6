"""winfleet installed as an admin installs it: `kubectl apply -k deploy/overlays/local` on the
twin (real RBAC, the admission policy), then `winfleet worker` processes holding only the
ServiceAccount's token onboard nodes, scale and upgrade a pool, and serve /metrics; calls
outside the least-privilege table are refused; the fleet CLI works with only the operator roles."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import uuid
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dashboards
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fleet import available, version_of
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from onboarding import end_leftovers
from processes import (
    BIN,
    ROOT,
    Samples,
    free_port_pair,
    free_port_pairs,
    http_get,
    kubectl,
    metric_families,
    names,
    scrape,
    spawn_worker,
    stop,
    table_rows,
    value,
    wait_until,
    worker_env,
)
from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.contracts import (
    AwsMachineSpec,
    ByohHostSpec,
    OnboardNodeInput,
    OnboardNodeResult,
    Platform,
)
from activities.pool_contracts import POOL_LABEL, VERSION_ANNOTATION
from sim.twin import Twin

pytestmark = pytest.mark.asyncio(loop_scope="session")

LOCAL = str(ROOT / "deploy" / "overlays" / "local")
SA_USER = "system:serviceaccount:winfleet:winfleet"
NS = "winfleet"
POOL = "sa-pool"
GROUP, VERSION, PLURAL = "winfleet.io", "v1alpha1", "windowsmachinepools"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def installed(twin: Twin) -> AsyncIterator[Path]:
    """The local overlay applied (after a server-side dry run) and a kubeconfig holding the
    ServiceAccount's token, as `kubectl create token winfleet -n winfleet` gives it."""
    admin = twin.kube.kubeconfig_path
    dry = await kubectl(admin, "apply", "-k", LOCAL, "--dry-run=server")
    assert dry.returncode == 0, dry.stderr
    assert "clusterrole.rbac.authorization.k8s.io/winfleet-worker created (server dry run)" in (
        dry.stdout
    )
    assert twin.kube.store.get("clusterroles", "winfleet-worker") is None  # nothing was made
    done = await kubectl(admin, "apply", "-k", LOCAL)
    assert done.returncode == 0, done.stderr
    for plural, name in (
        ("clusterroles", "winfleet-worker"),
        ("validatingadmissionpolicies", "winfleet-windows-nodes-only"),
        ("customresourcedefinitions", "windowsmachinepools.winfleet.io"),
    ):
        assert twin.kube.store.get(plural, name) is not None, (plural, name)
    assert twin.kube.store.get("deployments", "winfleet-worker", NS) is not None
    token = twin.kube.service_account_token(NS, "winfleet")
    yield twin.kube.kubeconfig_for_token(
        token, twin.kube.state_dir / "winfleet-sa.kubeconfig", user="winfleet"
    )


def admin_api(twin: Twin) -> client.ApiClient:
    return config.new_client_from_config(str(twin.kube.kubeconfig_path))


async def create_pool(twin: Twin, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WindowsMachinePool",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }
    with admin_api(twin) as admin:
        api = client.CustomObjectsApi(admin)
        await asyncio.to_thread(
            api.create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, body
        )


async def patch_pool(twin: Twin, name: str, spec: dict[str, Any]) -> None:
    with admin_api(twin) as admin:
        api = client.CustomObjectsApi(admin)
        await asyncio.to_thread(
            api.patch_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, name, {"spec": spec}
        )


async def start_byoh(
    temporal: WorkflowEnvironment, queue: str, pool: str, address: str
) -> WorkflowHandle[Any, OnboardNodeResult]:
    """Onboard the BYOH host at `address` as node `<pool>-byoh`, by workflow type name."""
    return await temporal.client.start_workflow(
        "OnboardWindowsNode",
        OnboardNodeInput(
            pool=pool,
            node_name=f"{pool}-byoh",
            platform=Platform.BYOH,
            byoh=ByohHostSpec(address=address),
        ),
        id=f"onboard-{pool}-{pool}-byoh-{uuid.uuid4().hex[:6]}",
        task_queue=queue,
        result_type=OnboardNodeResult,
    )


def nodes_at(twin: Twin, version: str) -> int:
    return len([n for n in _pool_nodes(twin) if available(n) and version_of(n) == version])


async def test_the_service_account_onboards_and_upgrades_with_every_call_allowed_and_metrics(
    twin: Twin, temporal: WorkflowEnvironment, installed: Path, tmp_path: Path
) -> None:
    queue = f"sa-{uuid.uuid4().hex[:6]}"
    port = free_port_pair()
    log = tmp_path / "worker.log"
    env = worker_env(
        twin, temporal, queue, KUBECONFIG=str(installed), WINFLEET_HTTP_ADDRESS=f"127.0.0.1:{port}"
    )
    worker = spawn_worker(env, log)
    samples: list[Samples] = []
    try:
        await wait_until(
            "/readyz 200", lambda: _ready(port), within=60, log=log
        )  # polling and Temporal answering
        first = await scrape(port)
        await create_pool(
            twin, POOL, {"platform": "aws", "replicas": 2, "version": "1.0.0", "maxUnhealthy": 1}
        )
        byoh = await start_byoh(temporal, queue, "sa", twin.byoh_addresses[2])

        async def both_at_1_0() -> bool:
            samples.append(await scrape(port))
            return nodes_at(twin, "1.0.0") == 2

        await wait_until("2 pool nodes Ready at 1.0.0", both_at_1_0, within=150, log=log)
        await asyncio.wait_for(byoh.result(), timeout=120)
        mid = await scrape(port)
        await patch_pool(twin, POOL, {"version": "1.1.0"})
        during: list[Samples] = []

        async def both_at_1_1() -> bool:
            during.append(await scrape(port))
            return nodes_at(twin, "1.1.0") == 2 and len(_pool_nodes(twin)) == 2

        await wait_until("both pool nodes replaced by 1.1.0", both_at_1_1, within=200, log=log)

        async def replacements_counted() -> Samples | None:
            # the count moves when finalize_node returns, a moment after the Node shows 1.1.0
            got = await scrape(port)
            done = value(got, "winfleet_onboardings_total", platform="aws", outcome="completed")
            return got if done == 4 else None

        last = await wait_until("4 AWS onboardings counted", replacements_counted, within=30)
        families = await metric_families(port)
    finally:
        await stop(worker)
        await end_leftovers(temporal.client, queue)  # the pool's workflow
        await asyncio.to_thread(_forget_pool, twin, POOL)  # later tests' workers leave it be

    # -- /metrics moved while nodes onboarded ---------------------------------------------------
    done = "winfleet_onboardings_total"
    assert value(first, done) == 0
    assert value(mid, done, platform="aws", outcome="completed") == 2
    assert value(mid, done, platform="byoh", outcome="completed") == 1
    phase = "winfleet_onboarding_phase_duration_seconds_count"
    for p in ("vm-create", "wait-ssh", "copy-payload", "approve-csrs", "node-ready"):
        assert value(mid, phase, phase=p, platform="aws", outcome="completed") >= 2, p
    assert value(mid, "winfleet_onboarding_duration_seconds_count", platform="byoh") == 1
    assert value(mid, "winfleet_csrs_total", decision="approved", kind="client") >= 3
    assert value(mid, "winfleet_csrs_total", decision="approved", kind="serving") >= 3
    assert any(value(s, "winfleet_pool_nodes", pool=POOL) > 0 for s in samples)
    assert value(mid, "winfleet_pool_nodes", pool=POOL, version="1.0.0", ready="True") == 2
    assert value(last, "winfleet_pool_nodes", pool=POOL, version="1.1.0", ready="True") == 2
    assert value(last, "winfleet_pool_replicas", pool=POOL, state="desired") == 2
    in_use = [
        value(s, "winfleet_pool_disruption_budget", pool=POOL, state="in_use") for s in during
    ]
    assert max(in_use) == 1, in_use  # the rollout held the budget, never more than maxUnhealthy
    assert value(during[-1], "winfleet_pool_disruption_budget", pool=POOL, state="max") == 1
    rollout = [
        value(s, "winfleet_pool_rollout_nodes", pool=POOL, target_version="1.1.0") for s in during
    ]
    assert max(rollout) >= 1, rollout  # the rollout to 1.1.0 showed nodes done/in flight/left
    sdk = sorted(n for n in names(last) if n.startswith("temporal_"))
    assert "temporal_activity_execution_latency_count" in sdk, sdk[:40]
    assert value(last, "temporal_activity_execution_latency_count") > value(
        first, "temporal_activity_execution_latency_count"
    )
    exported = {dashboards.family(n) for n in names(last)} | families
    for expr in dashboards.expressions(dashboards.load()):
        for series in dashboards.series(expr):
            assert dashboards.family(series) in exported, f"dashboard queries {series}: {expr}"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    joined = [
        entry
        for entry in lines
        if entry.get("workflow_id") and entry.get("node") and entry.get("trace_id")
    ]
    assert joined, "no log line carries workflow ID, node and trace ID together"
    assert any(entry.get("phase") == "approve-csrs" and entry.get("run_id") for entry in joined)

    # -- every request the worker made was allowed and is in deploy/README.md's table ------------
    table = set(table_rows(ROOT / "deploy" / "README.md", "Least privilege"))
    mine = [r for r in twin.kube.audit if r.user == SA_USER]
    assert mine, "the worker made no request as its ServiceAccount"
    refused = sorted(
        {(r.verb, r.resource, r.subresource, r.code) for r in mine if r.code in (401, 403)}
    )
    assert not refused, refused
    calls = {
        (r.verb, r.group, r.resource + (f"/{r.subresource}" if r.subresource else "")) for r in mine
    }
    assert calls <= table, sorted(calls - table)
    for needed in (
        ("update", "certificates.k8s.io", "certificatesigningrequests/approval"),
        ("delete", "", "nodes"),
        ("update", "winfleet.io", "windowsmachinepools/status"),
        ("watch", "winfleet.io", "windowsmachinepools"),
        ("create", "coordination.k8s.io", "leases"),
        ("create", "", "events"),
    ):
        assert needed in calls, needed


def _forget_pool(twin: Twin, name: str) -> None:
    """Delete the pool object without its finalizer's work (its nodes stay)."""
    with admin_api(twin) as admin:
        api = client.CustomObjectsApi(admin)
        api.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, name, {"metadata": {"finalizers": None}}
        )
        api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)


def _pool_nodes(twin: Twin) -> list[dict[str, Any]]:
    return [
        n
        for n in twin.kube.store.list("nodes")
        if (n["metadata"].get("labels") or {}).get("winfleet.io/pool") == POOL
    ]


async def _ready(port: int) -> bool:
    try:
        status, _ = await http_get(f"http://127.0.0.1:{port}/readyz")
    except OSError:
        return False
    return status == 200


def _csr_pem(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def _refused(call: Any) -> tuple[int, str]:
    with pytest.raises(ApiException) as exc:
        call()
    return exc.value.status, str(json.loads(exc.value.body).get("message", ""))


async def test_calls_outside_the_table_are_refused_to_the_service_account(
    twin: Twin, installed: Path
) -> None:
    # the twin serves on this event loop: the synchronous client runs in a thread
    await asyncio.to_thread(_refusals, twin, installed)


def _refusals(twin: Twin, installed: Path) -> None:
    with admin_api(twin) as admin, config.new_client_from_config(str(installed)) as sa:
        _refused_calls(twin, admin, sa)


def _refused_calls(twin: Twin, admin: client.ApiClient, sa: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    core.create_node(
        {
            "metadata": {"name": "linux-worker-1", "labels": {"kubernetes.io/os": "linux"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }
    )
    core.create_namespaced_secret("kube-system", {"metadata": {"name": "elsewhere"}})
    core.create_namespaced_secret(NS, {"metadata": {"name": "not-the-key"}})
    csr = client.CertificatesV1Api(admin).create_certificate_signing_request(
        {
            "metadata": {"name": "someone-else"},
            "spec": {
                "request": base64.b64encode(_csr_pem("someone").encode()).decode(),
                "signerName": "kubernetes.io/kube-apiserver-client",
                "usages": ["client auth", "digital signature"],
            },
        }
    )
    sa_core = client.CoreV1Api(sa)
    policy = "ValidatingAdmissionPolicy 'winfleet-windows-nodes-only'"

    status, message = _refused(
        lambda: sa_core.patch_node("linux-worker-1", {"metadata": {"annotations": {"x": "y"}}})
    )
    assert (
        status == 403
        and policy in message
        and "is not labelled kubernetes.io/os=windows" in (message)
    )
    status, message = _refused(lambda: sa_core.delete_node("linux-worker-1"))
    assert status == 403 and policy in message
    assert twin.kube.store.get("nodes", "linux-worker-1") is not None

    def rbac(call: Any, verb: str, resource: str) -> None:
        status, message = _refused(call)
        assert status == 403, message
        assert f'User "{SA_USER}" cannot {verb} resource "{resource}"' in message, message

    rbac(lambda: sa_core.read_namespaced_secret("elsewhere", "kube-system"), "get", "secrets")
    rbac(lambda: sa_core.read_namespaced_secret("not-the-key", NS), "get", "secrets")
    rbac(lambda: sa_core.list_namespaced_secret(NS), "list", "secrets")
    rbac(
        lambda: sa_core.patch_namespaced_config_map(
            "windows-instances", NS, {"data": {"10.1.2.3": "username=x"}}
        ),
        "patch",
        "configmaps",
    )
    rbac(
        lambda: sa_core.create_namespaced_config_map(NS, {"metadata": {"name": "mine"}}),
        "create",
        "configmaps",
    )
    rbac(lambda: sa_core.create_node({"metadata": {"name": "fake"}}), "create", "nodes")
    rbac(
        lambda: sa_core.patch_node_status("linux-worker-1", {"status": {}}), "patch", "nodes/status"
    )
    custom = client.CustomObjectsApi(sa)
    rbac(
        lambda: custom.list_namespaced_custom_object(
            "machine.openshift.io", "v1beta1", "openshift-machine-api", "machinesets"
        ),
        "list",
        "machinesets",
    )
    rbac(
        lambda: custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "any"),
        "delete",
        "windowsmachinepools",
    )
    # approving a CSR of another signer: RBAC lets the approval through, the signer check does not
    body = client.CertificatesV1Api(admin).read_certificate_signing_request("someone-else")
    body.status = client.V1CertificateSigningRequestStatus(
        conditions=[
            client.V1CertificateSigningRequestCondition(
                type="Approved", status="True", reason="Test", message="x"
            )
        ]
    )
    status, message = _refused(
        lambda: client.CertificatesV1Api(sa).replace_certificate_signing_request_approval(
            csr.metadata.name, body
        )
    )
    assert status == 403
    signer = "kubernetes.io/kube-apiserver-client"
    assert f'user not permitted to approve requests with signerName "{signer}"' in message


OPS_POOL, OPS_NODE = "ops-pool", "ops-win-1"


async def test_the_fleet_cli_plans_and_sets_an_upgrade_with_only_the_operator_roles(
    twin: Twin, temporal: WorkflowEnvironment, installed: Path, tmp_path: Path
) -> None:
    admin = twin.kube.kubeconfig_path
    alice_sa = f"--serviceaccount={NS}:alice"
    for args in (  # what an admin does to let alice run the fleet CLI (deploy/README.md)
        ("-n", NS, "create", "serviceaccount", "alice"),
        ("create", "clusterrolebinding", "alice", "--clusterrole=winfleet-operator", alice_sa),
        ("-n", NS, "create", "rolebinding", "alice", "--role=winfleet-operator", alice_sa),
    ):
        done = await kubectl(admin, *args)
        assert done.returncode == 0, done.stderr
    alice = twin.kube.kubeconfig_for_token(
        twin.kube.service_account_token(NS, "alice"), tmp_path / "alice.kubeconfig", user="alice"
    )
    env = worker_env(twin, temporal, f"ops-{uuid.uuid4().hex[:6]}", KUBECONFIG=str(alice))
    await asyncio.to_thread(_ops_pool_with_a_blocked_drain, twin, "create")
    try:
        code, plan, err = await winfleet_cli(
            env, "upgrade", "--pool", OPS_POOL, "--version", "1.1.0", "--dry-run"
        )
        assert code == 0, err
        code, started, err = await winfleet_cli(
            env, "upgrade", "--pool", OPS_POOL, "--version", "1.1.0", "--detach"
        )
        assert code == 0, err
        pool = twin.kube.store.get("windowsmachinepools", OPS_POOL, NS)
        assert pool is not None and pool["spec"]["version"] == "1.1.0"
        denied = await kubectl(alice, "delete", "node", OPS_NODE)
    finally:
        rollout = temporal.client.get_workflow_handle(f"upgrade-{OPS_POOL}")
        with contextlib.suppress(RPCError):  # nothing polls its queue: end it
            await rollout.terminate("test over")
        await asyncio.to_thread(_ops_pool_with_a_blocked_drain, twin, "delete")

    assert f"order: {OPS_NODE}" in plan, plan
    assert f"default/ops-db-budget: default/ops-db-0 on {OPS_NODE}" in plan, plan
    assert f"rollout upgrade-{OPS_POOL} of pool {OPS_POOL} started" in started, started
    assert denied.returncode != 0 and 'cannot delete resource "nodes"' in denied.stderr
    user = f"system:serviceaccount:{NS}:alice"
    mine = [r for r in twin.kube.audit if r.user == user and r.name != OPS_NODE]
    refused = sorted({(r.verb, r.resource, r.code) for r in mine if r.code in (401, 403)})
    assert not refused, refused
    calls = {(r.verb, r.group, r.resource) for r in mine}
    table = set(table_rows(ROOT / "deploy" / "README.md", "The fleet CLI"))
    assert calls <= table, sorted(calls - table)
    assert {
        ("get", "winfleet.io", "windowsmachinepools"),
        ("patch", "winfleet.io", "windowsmachinepools"),
        ("list", "", "nodes"),
        ("list", "", "pods"),
        ("list", "policy", "poddisruptionbudgets"),
    } <= calls


async def winfleet_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`winfleet ARGS` run to its end: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "winfleet"), *args, env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _ops_pool_with_a_blocked_drain(twin: Twin, action: str) -> None:
    """A pool at 1.0.0 with one Windows Node, and on it a pod whose PodDisruptionBudget
    allows no eviction (`create`), or all of it gone again (`delete`)."""
    with admin_api(twin) as admin:
        core, policy = client.CoreV1Api(admin), client.PolicyV1Api(admin)
        custom = client.CustomObjectsApi(admin)
        if action == "delete":
            custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, OPS_POOL)
            policy.delete_namespaced_pod_disruption_budget("ops-db-budget", "default")
            core.delete_namespaced_pod("ops-db-0", "default", grace_period_seconds=0)
            core.delete_node(OPS_NODE)
            return
        spec = {"platform": "aws", "replicas": 1, "version": "1.0.0", "maxUnhealthy": 1}
        body = {"kind": "WindowsMachinePool", "apiVersion": f"{GROUP}/{VERSION}"}
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, {**body, "metadata": {"name": OPS_POOL}, "spec": spec}
        )
        core.create_node(
            {
                "metadata": {
                    "name": OPS_NODE,
                    "labels": {"kubernetes.io/os": "windows", POOL_LABEL: OPS_POOL},
                    "annotations": {VERSION_ANNOTATION: "1.0.0"},
                },
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
        labels = {"app": "ops-db"}
        core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": "ops-db-0", "labels": labels},
                "spec": {"nodeName": OPS_NODE, "containers": [{"name": "db", "image": "db"}]},
            },
        )
        policy.create_namespaced_pod_disruption_budget(
            "default",
            {
                "metadata": {"name": "ops-db-budget"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
            },
        )


async def test_two_workers_share_the_queue_and_one_killed_mid_onboarding_loses_nothing(
    twin: Twin, temporal: WorkflowEnvironment, installed: Path, tmp_path: Path
) -> None:
    queue = f"two-{uuid.uuid4().hex[:6]}"
    ports = free_port_pairs(2)
    first, second = (
        spawn_worker(
            worker_env(
                twin,
                temporal,
                queue,
                KUBECONFIG=str(installed),
                WINFLEET_HTTP_ADDRESS=f"127.0.0.1:{port}",
            ),
            tmp_path / f"worker-{port}.log",
        )
        for port in ports
    )
    host = socket.gethostname()
    killed, survivor = f"{first.pid}@{host}", f"{second.pid}@{host}"
    nodes = [f"two-{i}" for i in range(2)]
    try:
        for port in ports:  # both poll before any work exists
            await wait_until(f"worker on {port} ready", lambda p=port: _ready(p), within=90)
        handles = [
            await temporal.client.start_workflow(
                "OnboardWindowsNode",
                OnboardNodeInput(
                    pool="two", node_name=n, platform=Platform.AWS, aws=AwsMachineSpec()
                ),
                id=f"onboard-two-{n}-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
                result_type=OnboardNodeResult,
            )
            for n in nodes
        ]

        async def first_runs_an_activity() -> bool:
            for handle in handles:
                pending = (await handle.describe()).raw_description.pending_activities
                if any(p.last_worker_identity == killed for p in pending):
                    return True
            return False

        await wait_until("the first worker mid-activity", first_runs_an_activity, within=120)
        first.kill()  # SIGKILL: no graceful shutdown, its running activities just stop
        await asyncio.to_thread(first.wait, 30)
        results = await asyncio.wait_for(
            asyncio.gather(*(handle.result() for handle in handles)), timeout=300
        )
    finally:
        await stop(first)
        await stop(second)

    assert sorted(r.node_name for r in results) == nodes
    identities: set[str] = set()
    for handle in handles:
        async for event in handle.fetch_history_events():
            for attrs in (
                event.workflow_task_started_event_attributes,
                event.activity_task_started_event_attributes,
            ):
                if attrs.identity:
                    identities.add(attrs.identity)
    assert {killed, survivor} <= identities, identities  # both did part of the work
    ec2 = twin.aws.client()
    for name in nodes:
        node = twin.kube.store.get("nodes", name)
        assert node is not None and available(node), name
        found = await asyncio.to_thread(
            ec2.describe_instances, Filters=[{"Name": "tag:winfleet.io/node", "Values": [name]}]
        )
        instances = [i for r in found["Reservations"] for i in r["Instances"]]
        assert len(instances) == 1, f"{name}: {len(instances)} VMs"
        host_of = twin.fleet.get(instances[0]["PrivateIpAddress"])
        bootstraps = [c for c in host_of.command_log if "initialize-kubelet" in c]
        assert len(bootstraps) == 1, f"{name}: WMCB initialize-kubelet ran {len(bootstraps)} times"


async def test_a_versioned_worker_runs_onboardings_pinned_to_its_build_once_it_is_current(
    twin: Twin, temporal: WorkflowEnvironment, installed: Path, tmp_path: Path
) -> None:
    queue = f"ver-{uuid.uuid4().hex[:6]}"
    deployment = f"winfleet-{uuid.uuid4().hex[:6]}"
    env = worker_env(
        twin,
        temporal,
        queue,
        KUBECONFIG=str(installed),
        WINFLEET_DEPLOYMENT_NAME=deployment,
        WINFLEET_BUILD_ID="build-1",
    )
    log = tmp_path / "versioned.log"
    worker = spawn_worker(env, log)
    client = temporal.client
    try:
        handle = await start_byoh(temporal, queue, "ver", twin.byoh_addresses[1])

        async def made_current() -> bool:
            try:
                await client.workflow_service.set_worker_deployment_current_version(
                    SetWorkerDeploymentCurrentVersionRequest(
                        namespace=client.namespace, deployment_name=deployment, build_id="build-1"
                    )
                )
            except RPCError:  # the version is known once the worker has polled
                return False
            return True

        await wait_until("build-1 current", made_current, within=60, log=log)
        result = await asyncio.wait_for(handle.result(), timeout=180)
    finally:
        await stop(worker)
    assert result.node_name == "ver-byoh"
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    assert info.behavior == VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
    assert (info.deployment_version.deployment_name, info.deployment_version.build_id) == (
        deployment,
        "build-1",
    )
