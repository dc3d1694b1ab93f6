"""`winfleet` command line: node specs become workflow inputs; bad ones are refused clearly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from activities.contracts import Platform
from worker.cli import parse_node_spec, parser, workflow_id


def args(*extra: str):  # type: ignore[no-untyped-def]
    return parser().parse_args(["onboard", "--pool", "p1", *extra])


@pytest.mark.parametrize(
    ("spec", "platform", "name", "address", "user"),
    [
        ("aws:win-a1", Platform.AWS, "win-a1", None, None),
        ("azure:win-z1", Platform.AZURE, "win-z1", None, None),
        ("byoh:win-b1@10.0.0.5", Platform.BYOH, "win-b1", "10.0.0.5", "Administrator"),
        ("BYOH:win-b2@host.example:capi", Platform.BYOH, "win-b2", "host.example", "capi"),
    ],
)
def test_node_specs_become_workflow_inputs(
    spec: str, platform: Platform, name: str, address: str | None, user: str | None
) -> None:
    inp = parse_node_spec(spec, args("--aws-instance-type", "m5.xlarge"))
    assert (inp.platform, inp.node_name, inp.pool) == (platform, name, "p1")
    if platform is Platform.BYOH:
        assert inp.byoh is not None and (inp.byoh.address, inp.byoh.username) == (address, user)
        assert inp.aws is None and inp.azure is None
    elif platform is Platform.AWS:
        assert inp.aws is not None and inp.aws.instance_type == "m5.xlarge"
    else:
        assert inp.azure is not None and inp.aws is None


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("win-a1", "bad node spec"),
        ("gcp:win-a1", "unknown platform"),
        ("byoh:win-b1", "needs an address"),
        ("aws:win-a1@10.0.0.5", "only byoh nodes take an @ADDRESS"),
    ],
)
def test_bad_node_specs_are_refused_with_a_reason(spec: str, complaint: str) -> None:
    with pytest.raises(SystemExit) as info:
        parse_node_spec(spec, args())
    assert complaint in str(info.value)


def test_workflow_ids_are_derived_from_pool_and_node_so_a_second_start_attaches() -> None:
    assert workflow_id("pool-a", "win-1") == "onboard-pool-a-win-1"


def test_an_unreachable_temporal_server_is_a_clear_error_not_a_traceback() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{port}"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "winfleet"), "onboard", "aws:win-x1"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"cannot reach Temporal at 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


class _RefusingOperator:
    """An operator service that lists no winfleet attributes and may not add any (a Temporal
    Cloud namespace without the permission)."""

    async def list_search_attributes(self, _: object) -> object:
        return type("Listing", (), {"custom_attributes": {}})()

    async def add_search_attributes(self, _: object) -> object:
        from temporalio.service import RPCError, RPCStatusCode

        raise RPCError("permission denied", RPCStatusCode.PERMISSION_DENIED, b"")


async def test_a_worker_refuses_to_start_without_its_search_attributes() -> None:
    from worker.temporal import SearchAttributesMissing, ensure_search_attributes

    stub = type("Client", (), {"operator_service": _RefusingOperator(), "namespace": "prod"})()
    with pytest.raises(SearchAttributesMissing) as info:
        await ensure_search_attributes(stub)  # type: ignore[arg-type]
    said = str(info.value)
    assert "WinfleetNode" in said and "namespace prod" in said
    assert "temporal operator search-attribute create --namespace prod --name WinfleetPool" in said
