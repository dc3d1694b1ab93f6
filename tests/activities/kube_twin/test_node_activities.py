"""The Node activities against the Kubernetes API twin: wait, finalize, delete, report failure."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from kubernetes import client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from twin_callers import NAMESPACE, Caller, events_for, eventually

from activities import kube
from activities.config import Settings, use_settings
from activities.events import record_event
from activities.node import (
    DeleteNodeInput,
    FinalizeNodeInput,
    NodeFacts,
    SetupFailureInput,
    WaitNodeAnnotationInput,
    WaitNodeInput,
    delete_node,
    finalize_node,
    record_setup_failure,
    wait_node_annotation,
    wait_node_ready,
)
from sim.k8s.server import KubeTwin

NODE = "winworker-3"
IP = "127.5.0.3"
SUBNET = "k8s.ovn.org/hybrid-overlay-node-subnet"
GATEWAY_MAC = "k8s.ovn.org/hybrid-overlay-distributed-router-gateway-mac"
VERSION = "windowsmachineconfig.openshift.io/version"
KEY_HASH = "windowsmachineconfig.openshift.io/pub-key-hash"
CORDONED_BY = "winfleet.io/cordoned-by"


def node(twin: KubeTwin, name: str = NODE) -> dict[str, Any]:
    return twin.store.get("nodes", name) or {}


def heartbeat_env() -> tuple[ActivityEnvironment, asyncio.Event]:
    """An activity environment and an event set at the activity's first heartbeat."""
    env, beat = ActivityEnvironment(), asyncio.Event()
    env.on_heartbeat = lambda *_: beat.set()
    return env, beat


async def store_key(admin: Caller, pem: bytes, secret: str = "cloud-private-key") -> None:
    body = client.V1Secret.from_dict(
        {
            "metadata": {"name": secret, "namespace": NAMESPACE},
            "data": {"private-key.pem": base64.b64encode(pem).decode()},
        }
    )
    await admin.run(admin.core.create_namespaced_secret, NAMESPACE, body)


async def test_wait_node_ready_returns_the_nodes_facts_once_it_turns_ready(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP)
    env, beat = heartbeat_env()

    async def kube_proxy_comes_up() -> None:
        await beat.wait()  # the activity has looked at least once and seen NotReady
        await admin.set_ready(NODE, ready=True, ip=IP)

    facts, _ = await asyncio.gather(
        env.run(wait_node_ready, WaitNodeInput(node_name=NODE, timeout_s=20)),
        kube_proxy_comes_up(),
    )
    assert facts == NodeFacts(name=NODE, internal_ip=IP, kubelet_version="v1.31.4", ready=True)


async def test_a_node_that_stays_not_ready_is_retryable_and_says_why(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(wait_node_ready, WaitNodeInput(NODE, timeout_s=1.2))
    assert err.value.type == "NodeNotReadyYet" and not err.value.non_retryable
    assert "CNI not configured" in err.value.message and NODE in err.value.message


async def test_a_node_that_never_registers_is_retryable_and_points_at_kubelet(
    twin: KubeTwin,
) -> None:
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(wait_node_ready, WaitNodeInput(NODE, timeout_s=1.2))
    assert err.value.type == "NodeNotReadyYet"
    assert "has not registered" in err.value.message and "kubelet" in err.value.message


async def test_wait_node_annotation_returns_the_subnet_the_ovn_master_assigns(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP)
    values = await ActivityEnvironment().run(
        wait_node_annotation, WaitNodeAnnotationInput(NODE, keys=(SUBNET,), timeout_s=20)
    )
    assert values == {SUBNET: node(twin)["metadata"]["annotations"][SUBNET]}


async def test_wait_node_annotation_waits_for_every_key(twin: KubeTwin, admin: Caller) -> None:
    await admin.create_node(NODE, ip=IP)
    await eventually(
        "the OVN subnet", lambda: SUBNET in node(twin)["metadata"].get("annotations", {})
    )
    env, beat = heartbeat_env()

    async def hybrid_overlay_annotates() -> None:
        await beat.wait()
        await admin.annotate_node(NODE, {GATEWAY_MAC: "00-15-5d-aa-bb-cc"})

    values, _ = await asyncio.gather(
        env.run(
            wait_node_annotation,
            WaitNodeAnnotationInput(NODE, keys=(SUBNET, GATEWAY_MAC), timeout_s=20),
        ),
        hybrid_overlay_annotates(),
    )
    assert values[GATEWAY_MAC] == "00-15-5d-aa-bb-cc" and values[SUBNET]


async def test_a_missing_annotation_is_retryable_and_names_the_key(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(
            wait_node_annotation, WaitNodeAnnotationInput(NODE, keys=(GATEWAY_MAC,), timeout_s=1)
        )
    assert err.value.type == "NodeNotReadyYet" and GATEWAY_MAC in err.value.message


@pytest.mark.parametrize("key_format", ["openssh-ed25519", "pem-rsa"])
async def test_finalize_annotates_version_and_key_hash_lifts_winfleets_cordon_and_tells_once(
    twin: KubeTwin, admin: Caller, key_format: str
) -> None:
    await admin.create_node(NODE, ip=IP, unschedulable=True)
    await admin.annotate_node(NODE, {CORDONED_BY: "upgrade-pool-a run-1"})
    if key_format == "openssh-ed25519":
        key: Any = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    await store_key(admin, pem)
    authorized_key = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    inp = FinalizeNodeInput(node_name=NODE, version="1.2.3")

    await ActivityEnvironment().run(finalize_node, inp)
    await ActivityEnvironment().run(finalize_node, inp)  # a retry changes nothing

    done = node(twin)
    assert done["metadata"]["annotations"][VERSION] == "1.2.3"
    assert done["metadata"]["annotations"][KEY_HASH] == hashlib.sha256(authorized_key).hexdigest()
    assert not done["spec"].get("unschedulable")
    assert CORDONED_BY not in done["metadata"]["annotations"]
    (event,) = events_for(twin, "MachineSetup", NODE)
    assert event["type"] == "Normal" and "1.2.3" in event["message"]
    assert event["involvedObject"]["uid"] == done["metadata"]["uid"]


async def test_finalize_leaves_a_node_someone_else_cordoned_cordoned(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP, unschedulable=True)
    inp = FinalizeNodeInput(node_name=NODE, version="1.2.3", pub_key_hash="ab" * 32)
    await ActivityEnvironment().run(finalize_node, inp)
    done = node(twin)
    assert done["spec"]["unschedulable"] is True
    assert done["metadata"]["annotations"][VERSION] == "1.2.3"
    (event,) = events_for(twin, "MachineSetup", NODE)
    assert "left cordoned" in event["message"]


async def test_finalize_refuses_a_node_that_is_not_windows(twin: KubeTwin, admin: Caller) -> None:
    await admin.create_node(NODE, ip=IP, os="linux")
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(
            finalize_node, FinalizeNodeInput(NODE, version="1.2.3", pub_key_hash="ab" * 32)
        )
    assert err.value.type == "InvalidRequest" and err.value.non_retryable
    assert VERSION not in (node(twin)["metadata"].get("annotations") or {})
    assert events_for(twin, "MachineSetup", NODE) == []


async def test_finalize_without_the_key_secret_is_a_permanent_error_naming_it(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(
            finalize_node, FinalizeNodeInput(NODE, private_key_secret="no-such-secret")
        )
    assert err.value.type == "InvalidRequest" and "no-such-secret" in err.value.message


async def test_delete_node_removes_a_half_registered_node_and_then_finds_nothing(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP)
    env = ActivityEnvironment()
    assert await env.run(delete_node, DeleteNodeInput(NODE)) is True
    assert twin.store.get("nodes", NODE) is None
    assert await env.run(delete_node, DeleteNodeInput(NODE)) is False


async def test_delete_node_leaves_a_linux_node_of_the_same_name_alone(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_node(NODE, ip=IP, os="linux")
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(delete_node, DeleteNodeInput(NODE))
    assert err.value.type == "InvalidRequest"
    assert twin.store.get("nodes", NODE) is not None


async def test_a_setup_failure_is_a_warning_event_recorded_once_per_key(
    twin: KubeTwin,
) -> None:
    inp = SetupFailureInput(
        node_name=NODE, phase="cni", reason="wmcb configure-cni exited 1", key="wf-1/run-1"
    )
    await ActivityEnvironment().run(record_setup_failure, inp)
    await ActivityEnvironment().run(record_setup_failure, inp)  # a retry
    (event,) = events_for(twin, "MachineSetupFailure", NODE)
    assert event["type"] == "Warning"
    assert "cni" in event["message"] and "wmcb configure-cni exited 1" in event["message"]
    assert event["involvedObject"]["kind"] == "Node"


async def test_an_event_the_api_refuses_is_logged_not_raised(
    twin: KubeTwin, caplog: pytest.LogCaptureFixture
) -> None:
    kube.api_client().close()
    use_settings(
        Settings.from_env(
            {"KUBECONFIG": str(twin.kubeconfig_path), "WINFLEET_NAMESPACE": "no-such-namespace"}
        )
    )
    await record_event(
        reason="InstanceSetup", message="instance up", involved={"kind": "Node", "name": NODE}
    )
    assert "event InstanceSetup not recorded" in caplog.text
