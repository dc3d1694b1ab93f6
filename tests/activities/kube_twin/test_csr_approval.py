"""approve_node_csrs against the Kubernetes API twin: kubelet's CSRs pass, impostors' do not."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import csr_forge as forge
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from twin_callers import (
    KUBELET_IP,
    SERVING_SIGNER,
    SERVING_USAGES,
    Caller,
    KubeletHost,
    events_for,
    eventually,
)

from activities import kube
from activities.csr import ApproveCsrsInput, ApproveCsrsResult, approve_node_csrs
from sim.k8s.server import KubeTwin
from sim.pki import new_private_key_pem

NODE = "winworker-7"
IP = KUBELET_IP
INPUT = ApproveCsrsInput(
    node_name=NODE, addresses=(IP,), dns_names=(NODE,), timeout_s=30.0, address=IP
)


def csr(twin: KubeTwin, name: str) -> dict[str, Any]:
    return twin.store.get("certificatesigningrequests", name) or {}


def approved_by_winfleet(twin: KubeTwin, name: str) -> bool:
    conds = (csr(twin, name).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Approved" and c.get("reason") == "WinfleetApprove" for c in conds)


def undecided(twin: KubeTwin, name: str) -> bool:
    return not (csr(twin, name).get("status") or {}).get("conditions")


def certificate(twin: KubeTwin, name: str) -> str:
    return str((csr(twin, name).get("status") or {}).get("certificate") or "")


async def kubelet(
    twin: KubeTwin,
    bootstrapper: Caller,
    admin: Caller,
    as_node: Callable[[str], Caller],
    host: KubeletHost,
    before_serving: Callable[[], Any] | None = None,
) -> None:
    """What kubelet does: keep its key, client CSR, wait for its certificate, register,
    serving CSR."""
    key_pem = new_private_key_pem()
    host.keep_bootstrap_key(key_pem)
    await bootstrapper.create_csr("csr-client", NODE, key_pem=key_pem)
    cert = await eventually("the client certificate", lambda: certificate(twin, "csr-client"))
    host.certificate_issued(base64.b64decode(cert), key_pem)
    await admin.create_node(NODE, ip=IP)  # kubelet registers (admin stands in for the write)
    if before_serving is not None:
        await before_serving()
    await as_node(NODE).create_csr(
        "csr-serving", NODE, signer=SERVING_SIGNER, usages=SERVING_USAGES, dns=(NODE,), ips=(IP,)
    )


async def test_kubelets_client_then_serving_csr_are_approved_and_signed(
    twin: KubeTwin,
    bootstrapper: Caller,
    admin: Caller,
    as_node: Callable[[str], Caller],
    kubelet_host: KubeletHost,
) -> None:
    result, _ = await asyncio.gather(
        ActivityEnvironment().run(approve_node_csrs, INPUT),
        kubelet(twin, bootstrapper, admin, as_node, kubelet_host),
    )
    assert result == ApproveCsrsResult(client_csr="csr-client", serving_csr="csr-serving")
    assert approved_by_winfleet(twin, "csr-client")
    assert approved_by_winfleet(twin, "csr-serving")
    await eventually("the serving certificate", lambda: certificate(twin, "csr-serving"))


async def test_forged_csrs_stay_pending_with_one_csr_refused_event_each(
    twin: KubeTwin,
    bootstrapper: Caller,
    admin: Caller,
    as_node: Callable[[str], Caller],
    kubelet_host: KubeletHost,
) -> None:
    # Before kubelet asks: an admin-made client CSR and a CSR for some Linux node.
    await admin.create_csr("csr-forged-by-admin", NODE)
    await bootstrapper.create_csr("csr-linux", "linux-0")

    async def impostors() -> None:
        await as_node(NODE).create_csr(
            "csr-foreign-ip", NODE, signer=SERVING_SIGNER, usages=SERVING_USAGES,
            dns=(NODE,), ips=(IP, "10.20.30.40"),
        )  # fmt: skip
        await as_node("linux-0").create_csr(
            "csr-from-linux-0", NODE, signer=SERVING_SIGNER, usages=SERVING_USAGES, ips=(IP,)
        )
        # kubelet's own serving CSR comes only once both were looked at (and refused).
        for name in ("csr-foreign-ip", "csr-from-linux-0"):
            await eventually(
                f"a refusal of {name}", lambda n=name: events_for(twin, "CSRRefused", n)
            )

    result, _ = await asyncio.gather(
        ActivityEnvironment().run(approve_node_csrs, INPUT),
        kubelet(twin, bootstrapper, admin, as_node, kubelet_host, before_serving=impostors),
    )
    assert result == ApproveCsrsResult(client_csr="csr-client", serving_csr="csr-serving")
    rules = {
        "csr-forged-by-admin": "the requester 'system:admin' is neither",
        "csr-foreign-ip": "the IP SAN 10.20.30.40 is not an address of this instance",
        "csr-from-linux-0": "the requester 'system:node:linux-0' is not",
    }
    for name, rule in rules.items():
        assert undecided(twin, name), f"{name} must stay pending (never approved, never denied)"
        (event,) = events_for(twin, "CSRRefused", name)  # one, although polled many times
        assert event["type"] == "Warning"
        assert event["source"]["component"] == "winfleet"
        assert name in event["message"] and rule in event["message"]
    assert undecided(twin, "csr-linux")
    assert events_for(twin, "CSRRefused", "csr-linux") == []


async def test_only_forged_csrs_until_the_deadline_is_a_permanent_csr_rejected(
    twin: KubeTwin, admin: Caller
) -> None:
    await admin.create_csr("csr-forged", NODE)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(approve_node_csrs, _with_timeout(2.0))
    assert err.value.type == "CsrRejected"
    assert err.value.non_retryable
    assert "csr-forged" in err.value.message and "system:admin" in err.value.message


async def test_silence_until_the_deadline_is_a_retryable_node_not_ready_yet(
    twin: KubeTwin,
) -> None:
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    with pytest.raises(ApplicationError) as err:
        await env.run(approve_node_csrs, _with_timeout(1.5))
    assert err.value.type == "NodeNotReadyYet"
    assert not err.value.non_retryable
    assert "has not asked" in err.value.message
    assert len(beats) >= 2


async def test_a_retry_after_success_returns_at_once_without_touching_anything(
    twin: KubeTwin,
    bootstrapper: Caller,
    admin: Caller,
    as_node: Callable[[str], Caller],
    kubelet_host: KubeletHost,
) -> None:
    first, _ = await asyncio.gather(
        ActivityEnvironment().run(approve_node_csrs, INPUT),
        kubelet(twin, bootstrapper, admin, as_node, kubelet_host),
    )
    await eventually("the serving certificate", lambda: certificate(twin, "csr-serving"))
    names = ("csr-client", "csr-serving")
    before = {n: csr(twin, n)["metadata"]["resourceVersion"] for n in names}

    started = time.monotonic()
    again = await ActivityEnvironment().run(approve_node_csrs, INPUT)
    assert again == first
    assert time.monotonic() - started < 5.0  # one look, not a wait for the 30 s budget
    assert {n: csr(twin, n)["metadata"]["resourceVersion"] for n in before} == before


async def test_a_briefly_failing_api_server_does_not_fail_the_approval(
    twin: KubeTwin,
    bootstrapper: Caller,
    admin: Caller,
    as_node: Callable[[str], Caller],
    kubelet_host: KubeletHost,
) -> None:
    twin.faults.add("list", "certificatesigningrequests", status=500, count=2)
    result, _ = await asyncio.gather(
        ActivityEnvironment().run(approve_node_csrs, INPUT),
        kubelet(twin, bootstrapper, admin, as_node, kubelet_host),
    )
    assert result.serving_csr == "csr-serving"


def _with_timeout(seconds: float) -> ApproveCsrsInput:
    return replace(INPUT, timeout_s=seconds)


async def test_an_approval_that_races_another_writer_is_retried_and_lands_once(
    twin: KubeTwin,
    bootstrapper: Caller,
    admin: Caller,
    as_node: Callable[[str], Caller],
    kubelet_host: KubeletHost,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = kube.certificates

    class RacingWriter:
        """Another controller labels the client CSR just before winfleet's first approval."""

        raced = False
        attempts: ClassVar[list[str]] = []

        def __getattr__(self, attr: str) -> Any:
            return getattr(real(), attr)

        def replace_certificate_signing_request_approval(
            self, name: str, *a: Any, **kw: Any
        ) -> Any:
            RacingWriter.attempts.append(name)
            if not RacingWriter.raced:
                RacingWriter.raced = True
                response = admin.certs.patch_certificate_signing_request(
                    name,
                    {"metadata": {"labels": {"touched-by": "someone-else"}}},
                    _content_type="application/merge-patch+json",
                    _preload_content=False,
                )
                response.read()  # drain it, or the pooled connection is reused half-read
                response.release_conn()
            return real().replace_certificate_signing_request_approval(name, *a, **kw)

    monkeypatch.setattr(kube, "certificates", RacingWriter)
    result, _ = await asyncio.gather(
        ActivityEnvironment().run(approve_node_csrs, INPUT),
        kubelet(twin, bootstrapper, admin, as_node, kubelet_host),
    )
    assert result.client_csr == "csr-client"
    assert RacingWriter.attempts.count("csr-client") == 2  # 409 on the first, then re-read
    client_csr = csr(twin, "csr-client")
    assert client_csr["metadata"]["labels"] == {"touched-by": "someone-else"}
    assert [c["type"] for c in client_csr["status"]["conditions"]] == ["Approved"]


async def test_a_serving_csr_seen_before_its_node_is_approved_later_without_a_refusal(
    twin: KubeTwin,
    bootstrapper: Caller,
    admin: Caller,
    as_node: Callable[[str], Caller],
    kubelet_host: KubeletHost,
) -> None:
    beats = asyncio.Queue[None]()
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *_: beats.put_nowait(None)

    async def kubelet_racing_its_registration() -> None:
        key_pem = new_private_key_pem()
        kubelet_host.keep_bootstrap_key(key_pem)
        await bootstrapper.create_csr("csr-client", NODE, key_pem=key_pem)
        await eventually("the client certificate", lambda: certificate(twin, "csr-client"))
        await as_node(NODE).create_csr(
            "csr-serving", NODE, signer=SERVING_SIGNER, usages=SERVING_USAGES, ips=(IP,)
        )
        while not beats.empty():
            beats.get_nowait()
        await beats.get()  # a round starts after the CSR exists ...
        await beats.get()  # ... and has finished when the next one starts
        await admin.create_node(NODE, ip=IP)

    result, _ = await asyncio.gather(
        env.run(approve_node_csrs, INPUT), kubelet_racing_its_registration()
    )
    assert result.serving_csr == "csr-serving"
    assert events_for(twin, "CSRRefused", "csr-serving") == []


async def test_a_serving_csr_approved_elsewhere_against_the_rules_does_not_count(
    twin: KubeTwin, admin: Caller, as_node: Callable[[str], Caller]
) -> None:
    await admin.create_node(NODE, ip=IP)
    await as_node(NODE).create_csr(
        "csr-wide", NODE, signer=SERVING_SIGNER, usages=SERVING_USAGES, ips=(IP, "10.1.1.1")
    )
    wide = csr(twin, "csr-wide")
    wide["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "Manual"}]}
    await admin.run(admin.certs.replace_certificate_signing_request_approval, "csr-wide", wide)

    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(approve_node_csrs, _with_timeout(1.5))
    assert err.value.type == "NodeNotReadyYet"
    assert "serving" in err.value.message


async def test_unparseable_csrs_in_the_cluster_are_refused_and_do_not_stop_a_good_one(
    twin: KubeTwin,
    bootstrapper: Caller,
    admin: Caller,
    as_node: Callable[[str], Caller],
    kubelet_host: KubeletHost,
) -> None:
    """Requests the API server (Go) accepts but `cryptography` cannot parse."""
    key = ec.generate_private_key(ec.SECP256R1())
    odd_org = forge.node_subject(NODE, org=forge.t61(b"syst\xe8me"))
    odd_cn = forge.seq(
        forge.attribute(forge.ORGANIZATION, forge.utf8("system:nodes")),
        forge.attribute(forge.COMMON_NAME, forge.t61(f"system:node:{NODE}\xe9".encode("latin-1"))),
    )
    x400 = forge.extension(forge.SAN, forge.seq(forge.dns_name(NODE), forge.x400_address()))
    edi = forge.extension(forge.SAN, forge.seq(forge.dns_name(NODE), forge.edi_party_name()))
    broken = forge.extension(forge.KEY_USAGE, b"\x01\x02junk")
    await bootstrapper.create_csr("csr-t61", NODE, request_pem=forge.request_pem(key, odd_org))
    await bootstrapper.create_csr("csr-no-cn", NODE, request_pem=forge.request_pem(key, odd_cn))
    await bootstrapper.create_csr(
        "csr-broken-ext",
        NODE,
        request_pem=forge.request_pem(key, forge.node_subject(NODE), (broken,)),
    )
    for name, san in (("csr-x400", x400), ("csr-edi", edi)):
        await as_node(NODE).create_csr(
            name,
            NODE,
            signer=SERVING_SIGNER,
            usages=SERVING_USAGES,
            request_pem=forge.request_pem(key, forge.node_subject(NODE), (san,)),
        )

    result, _ = await asyncio.gather(
        ActivityEnvironment().run(approve_node_csrs, INPUT),
        kubelet(twin, bootstrapper, admin, as_node, kubelet_host),
    )

    assert result == ApproveCsrsResult(client_csr="csr-client", serving_csr="csr-serving")
    reasons = {
        "csr-t61": "subject cannot be decoded",
        "csr-broken-ext": "extensions cannot be parsed",
        "csr-x400": "extensions cannot be parsed",
        "csr-edi": "extensions cannot be parsed",
    }
    for name, why in reasons.items():
        assert undecided(twin, name)
        (event,) = events_for(twin, "CSRRefused", name)
        assert why in event["message"]
    assert undecided(twin, "csr-no-cn")  # its CN cannot even be read: not this node's
    assert events_for(twin, "CSRRefused", "csr-no-cn") == []


async def test_a_client_csr_with_the_right_name_but_another_key_is_never_approved(
    twin: KubeTwin,
    bootstrapper: Caller,
    admin: Caller,
    as_node: Callable[[str], Caller],
    kubelet_host: KubeletHost,
) -> None:
    """An impostor with the bootstrap credentials asks first, in the node's name."""
    real_key = new_private_key_pem()
    kubelet_host.keep_bootstrap_key(real_key)
    await bootstrapper.create_csr("csr-impostor", NODE)  # its own key, same identity

    async def the_real_kubelet() -> None:
        await eventually(
            "a refusal of the impostor", lambda: events_for(twin, "CSRRefused", "csr-impostor")
        )
        await bootstrapper.create_csr("csr-client", NODE, key_pem=real_key)
        cert = await eventually("the client certificate", lambda: certificate(twin, "csr-client"))
        kubelet_host.certificate_issued(base64.b64decode(cert), real_key)
        await admin.create_node(NODE, ip=IP)
        await as_node(NODE).create_csr(
            "csr-serving", NODE, signer=SERVING_SIGNER, usages=SERVING_USAGES, ips=(IP,)
        )

    result, _ = await asyncio.gather(
        ActivityEnvironment().run(approve_node_csrs, INPUT), the_real_kubelet()
    )

    assert result.client_csr == "csr-client"
    assert undecided(twin, "csr-impostor")
    assert certificate(twin, "csr-impostor") == ""
    (event,) = events_for(twin, "CSRRefused", "csr-impostor")
    assert "not the one of the kubelet's bootstrap key on this host" in event["message"]


async def test_at_most_one_client_csr_is_approved_even_when_the_activity_is_retried(
    twin: KubeTwin, bootstrapper: Caller, kubelet_host: KubeletHost
) -> None:
    key_pem = new_private_key_pem()
    kubelet_host.keep_bootstrap_key(key_pem)
    await bootstrapper.create_csr("csr-first", NODE, key_pem=key_pem)
    await eventually("the first CSR", lambda: csr(twin, "csr-first"))
    await bootstrapper.create_csr("csr-second", NODE, key_pem=key_pem)

    for _attempt in range(2):  # the Node never registers: each attempt runs out of time
        with pytest.raises(ApplicationError) as err:
            await ActivityEnvironment().run(approve_node_csrs, _with_timeout(1.5))
        assert err.value.type == "NodeNotReadyYet"

    assert approved_by_winfleet(twin, "csr-first")
    assert undecided(twin, "csr-second")
    (event,) = events_for(twin, "CSRRefused", "csr-second")
    assert "csr-first of the same kubelet key is already approved" in event["message"]


async def test_without_the_kubelets_key_on_the_host_no_client_csr_is_approved(
    twin: KubeTwin, bootstrapper: Caller, kubelet_host: KubeletHost
) -> None:
    await bootstrapper.create_csr("csr-client", NODE)  # the host holds no bootstrap key

    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(approve_node_csrs, _with_timeout(1.5))

    assert err.value.type == "NodeNotReadyYet"
    assert "kubelet-client.key.tmp" in err.value.message and IP in err.value.message
    assert undecided(twin, "csr-client")
    assert events_for(twin, "CSRRefused", "csr-client") == []  # too early, not forged


async def test_the_kubelets_key_never_reaches_logs_or_the_result(
    twin: KubeTwin,
    bootstrapper: Caller,
    admin: Caller,
    as_node: Callable[[str], Caller],
    kubelet_host: KubeletHost,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    result, _ = await asyncio.gather(
        ActivityEnvironment().run(approve_node_csrs, INPUT),
        kubelet(twin, bootstrapper, admin, as_node, kubelet_host),
    )
    key_pem = (
        (kubelet_host.pki / "kubelet-client-current.pem")
        .read_text()
        .split("-----END CERTIFICATE-----")[-1]
    )
    body = "".join(key_pem.strip().splitlines()[1:-1])
    assert len(body) > 40
    for line in (body[i : i + 40] for i in range(0, len(body) - 40, 40)):
        assert line not in caplog.text
        assert line not in repr(result)
