"""Failures reach Temporal's history without HTTP dumps: no response headers, no bodies.

Each translator (kubernetes, botocore, azure-core, asyncssh) is made to fail for real against
the twins; the activity boundary's ApplicationError is then converted exactly as Temporal
records it (message, stack trace, cause chain), and that text is searched for what the library
exception carried: header values and raw bodies. The library exception itself is checked to
carry them, so the test would notice if they leaked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh
import pytest
from botocore.exceptions import ClientError
from cloud_twins import (
    NAMESPACE,
    REGION,
    Azure,
    Ec2,
    free_port,
    kube_env,
    put_configmap,
    put_key_secret,
)
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError

from activities import kube
from activities.cloud import aws
from activities.cloud import azure as az
from activities.cloud.ownership import Owner
from activities.config import Settings, use_settings
from activities.contracts import AzureMachineSpec
from activities.errors import WinfleetError, boundary
from activities.keys import load_private_key
from activities.ssh import open_session
from sim.k8s.server import KubeTwin

DUMP_MARKERS = ("HTTP response headers", "HTTP response body", '"kind"', '"error"', "<Response>")


async def through_boundary(step: Callable[[], Awaitable[Any]]) -> ApplicationError:
    """Run `step` as an activity body; the ApplicationError the boundary lets out."""

    @boundary
    async def activity() -> None:
        await step()

    with pytest.raises(ApplicationError) as err:
        await activity()
    return err.value


def history_text(err: ApplicationError) -> tuple[str, Failure]:
    """The failure as Temporal stores it in history, as text."""
    failure = Failure()
    converter = DataConverter.default
    converter.failure_converter.to_failure(err, converter.payload_converter, failure)
    return str(failure), failure


def library_exception(err: ApplicationError) -> BaseException:
    """The library exception behind the boundary's error (kept out of history): the first
    cause in the chain that is not one of winfleet's own errors."""
    cause = err.__context__
    while isinstance(cause, WinfleetError):
        cause = cause.__cause__
    assert cause is not None
    return cause


def assert_no_dump(err: ApplicationError, leaked: list[str]) -> str:
    text, failure = history_text(err)
    assert not failure.HasField("cause"), "the cause chain must not reach history"
    for marker in (*DUMP_MARKERS, *leaked):
        assert marker not in text, marker
    assert len(err.message) < 700
    return text


def long_values(headers: dict[str, str]) -> list[str]:
    """Header values distinctive enough to search for (ids, dates, digests)."""
    return [str(v) for v in headers.values() if len(str(v)) >= 8]


# --- kubernetes ------------------------------------------------------------------------------
async def test_a_missing_secret_names_it_and_its_namespace_without_the_404_dump(
    kube_twin: KubeTwin,
) -> None:
    err = await through_boundary(lambda: load_private_key("no-such-key"))

    cause = library_exception(err)
    assert isinstance(cause, ApiException) and "HTTP response headers" in str(cause)
    text = assert_no_dump(err, long_values(dict(cause.headers or {})))
    assert f"secret {NAMESPACE}/no-such-key does not exist" in err.message
    assert err.type == "InvalidRequest" and err.non_retryable
    assert "no-such-key" in text


@pytest.mark.parametrize("status", [409, 422, 500])
async def test_api_server_errors_carry_status_and_reason_but_no_dump(
    kube_twin: KubeTwin, status: int
) -> None:
    await put_configmap("taken", {"a": "b"})
    name = {409: "taken", 422: "Not_A_Valid_Name", 500: "fresh"}[status]
    if status == 500:
        kube_twin.faults.add("create", "configmaps", status=500)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": "secret-ish"})

    err = await through_boundary(
        lambda: kube.call(
            f"create configmap {NAMESPACE}/{name}",
            kube.core().create_namespaced_config_map,
            NAMESPACE,
            body,
        )
    )

    cause = library_exception(err)
    assert isinstance(cause, ApiException) and cause.status == status
    assert "HTTP response body" in str(cause)
    assert_no_dump(err, long_values(dict(cause.headers or {})))
    assert f"configmap {NAMESPACE}/{name}" in err.message
    assert str(status) in err.message or status == 409
    assert (
        err.type == {409: "Conflict", 422: "InvalidRequest", 500: "KubernetesUnavailable"}[status]
    )


# --- EC2 (botocore) --------------------------------------------------------------------------
async def test_an_ec2_client_error_carries_code_and_message_but_no_headers(aws_env: Ec2) -> None:
    err = await through_boundary(
        lambda: aws.resolve_image(REGION, "ami-0123456789abcdef0", "win-err")
    )

    cause = library_exception(err)
    assert isinstance(cause, ClientError)
    headers = cause.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers
    assert_no_dump(err, long_values(headers))
    assert "ami-0123456789abcdef0" in err.message and "InvalidAMIID" in err.message


# --- Azure (azure-core) ----------------------------------------------------------------------
async def test_an_azure_http_error_carries_code_and_message_but_no_headers_or_body(
    azure: Azure, public_key: str
) -> None:
    t = azure.twin
    spec = AzureMachineSpec(
        resource_group=t.resource_group, location="westus", subnet_id=t.subnet_id
    )
    err = await through_boundary(
        lambda: az.create_azure_vm(Owner("c", "pool-a", "win-err"), spec, public_key)
    )

    cause = library_exception(err)
    response = getattr(cause, "response", None)
    assert response is not None
    body = response.text()
    assert '"error"' in body
    assert_no_dump(err, [*long_values(dict(response.headers)), body])
    assert "LocationNotAvailable" in err.message


# --- SSH (asyncssh) --------------------------------------------------------------------------
async def test_an_ssh_failure_is_short_and_has_no_chain(
    kube_twin: KubeTwin, ssh_key: asyncssh.SSHKey
) -> None:
    await put_key_secret("cloud-private-key", ssh_key)
    env = kube_env(kube_twin, WINFLEET_SSH_PORT=str(free_port()), WINFLEET_SSH_CONNECT_TIMEOUT="2")
    use_settings(Settings.from_env(env))

    async def dial() -> None:
        async with open_session(
            "127.7.99.99", "Administrator", private_key_secret="cloud-private-key", node_name="x"
        ):
            pass

    err = await through_boundary(dial)

    assert_no_dump(err, [])
    assert err.type == "HostUnreachable" and not err.non_retryable
    assert "127.7.99.99" in err.message


async def test_an_untranslated_library_exception_leaves_as_its_type_and_first_line_only() -> None:
    raw = ApiException(status=503, reason="Service Unavailable")
    raw.body = '{"kind":"Status","message":"etcd leader changed"}'
    raw.headers = {"Audit-Id": "4f1c7f0e-0000-4000-8000-1234567890ab"}

    async def step() -> None:
        raise raw

    err = await through_boundary(step)

    assert err.type == "ApiException" and not err.non_retryable
    assert_no_dump(err, ["4f1c7f0e-0000-4000-8000-1234567890ab", "etcd leader changed"])
    assert err.message == "unexpected ApiException: (503)"
