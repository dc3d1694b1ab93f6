"""Where spans go: OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else the JSON-lines file."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from aiohttp import web

SNIPPET = """
from worker import telemetry
from activities.tracing import span
telemetry.setup_tracing("winfleet-test")
with span("ssh run", host="127.0.0.1", command="hostname"):
    pass
telemetry.shutdown_tracing()
"""


async def run_snippet(env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SNIPPET, env={**os.environ, **env}, cwd=Path(__file__).parents[2]
    )
    return await proc.wait()


async def test_spans_go_over_otlp_http_when_an_endpoint_is_configured() -> None:
    bodies: list[bytes] = []

    async def traces(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        code = await run_snippet({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"})
    finally:
        await runner.cleanup()
    assert code == 0
    assert bodies and b"ssh run" in b"".join(bodies) and b"winfleet-test" in b"".join(bodies)


async def test_spans_go_to_a_json_lines_file_without_an_endpoint(tmp_path: Path) -> None:
    target = tmp_path / "traces.jsonl"
    env = {"WINFLEET_TRACE_FILE": str(target), "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    assert await run_snippet(env) == 0
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["name"] for r in records] == ["ssh run"]
    assert records[0]["attributes"] == {
        "winfleet.host": "127.0.0.1",
        "winfleet.command": "hostname",
    }
    assert records[0]["service"] == "winfleet-test"
