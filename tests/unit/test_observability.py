"""Log lines carry the IDs that join them to spans and workflow steps; metric labels stay
bounded; the worker's versioning settings are both-or-neither."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from activities import metrics
from worker.app import ConfigError, deployment_config, sdk_metrics_address
from worker.telemetry import JsonFormatter, _context, node_of


def log_line(**extra: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning("approved CSR %s", "csr-1", extra=extra)
    parsed: dict[str, object] = json.loads(stream.getvalue())
    return parsed


def test_a_json_log_line_of_an_activity_names_its_workflow_run_node_phase_and_trace() -> None:
    tracer = TracerProvider().get_tracer("test")
    token = _context.set({"node": "win-1", "phase": "approve-csrs"})
    try:
        with tracer.start_as_current_span("RunActivity:approve_node_csrs") as span:
            line = log_line(
                temporal_activity={
                    "workflow_id": "onboard-demo-win-1",
                    "workflow_run_id": "run-1",
                    "workflow_type": "OnboardWindowsNode",
                    "activity_type": "approve_node_csrs",
                    "attempt": 2,
                }
            )
            trace_id = f"{span.get_span_context().trace_id:032x}"
    finally:
        _context.reset(token)
    assert line["message"] == "approved CSR csr-1"
    assert {k: line[k] for k in ("workflow_id", "run_id", "activity", "node", "phase")} == {
        "workflow_id": "onboard-demo-win-1",
        "run_id": "run-1",
        "activity": "approve_node_csrs",
        "node": "win-1",
        "phase": "approve-csrs",
    }
    assert line["trace_id"] == trace_id and line["attempt"] == 2


def test_a_log_line_outside_any_activity_has_no_invented_ids() -> None:
    line = log_line()
    assert not {"workflow_id", "run_id", "node", "phase", "trace_id"} & set(line)


def test_the_node_of_an_activity_input_is_its_node_name_or_its_hosts() -> None:
    class Host:
        node_name = "win-2"

    class WithHost:
        host = Host()

    class Named:
        node_name = "win-3"

    assert (node_of(Named()), node_of(WithHost()), node_of(object())) == ("win-3", "win-2", "")


@pytest.mark.parametrize(
    ("why", "label"),
    [
        ("the signerName is 'x', not 'kubernetes.io/kubelet-serving'", "signer"),
        ("the request's self-signature does not verify", "signature"),
        ("the usages ['client auth'] name fewer than 2 of [...]", "usages"),
        ("the subject organization is ['x'], not exactly ['system:nodes']", "subject"),
        ("CSR node-csr-1: spec.request is not a PEM certificate request", "unreadable"),
        ("client CSR c1 of the same kubelet key is already approved; ...", "already-decided"),
        ("something nobody foresaw", "other"),
    ],
)
def test_csr_refusals_are_counted_under_a_bounded_reason(why: str, label: str) -> None:
    assert metrics.refusal_reason(why) == label


def test_failure_reasons_are_error_types_or_other() -> None:
    assert metrics.failure_reason("SshAuthenticationFailed: key refused by 10.0.0.5") == (
        "SshAuthenticationFailed"
    )
    assert metrics.failure_reason("cancelled") == "Cancelled"
    assert metrics.failure_reason("node win-1 exploded: see logs") == "other"


def test_worker_versioning_needs_both_the_deployment_name_and_the_build_id() -> None:
    assert deployment_config({}) is None
    config = deployment_config({"WINFLEET_DEPLOYMENT_NAME": "winfleet", "WINFLEET_BUILD_ID": "7"})
    assert config is not None and config.use_worker_versioning
    assert (config.version.deployment_name, config.version.build_id) == ("winfleet", "7")
    with pytest.raises(ConfigError, match="both WINFLEET_DEPLOYMENT_NAME and WINFLEET_BUILD_ID"):
        deployment_config({"WINFLEET_BUILD_ID": "7"})


def test_the_sdk_exports_next_to_the_http_port_on_loopback_unless_told_otherwise() -> None:
    assert sdk_metrics_address({}) is None
    assert sdk_metrics_address({"WINFLEET_HTTP_ADDRESS": "0.0.0.0:9090"}) == "127.0.0.1:9091"
    assert (
        sdk_metrics_address(
            {"WINFLEET_HTTP_ADDRESS": "[::]:9090", "WINFLEET_SDK_METRICS_ADDRESS": "127.0.0.1:7"}
        )
        == "127.0.0.1:7"
    )
