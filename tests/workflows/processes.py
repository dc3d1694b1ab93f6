"""Helpers for tests that run the product as processes: `winfleet worker` subprocesses with the
environment an installation gives them, `kubectl` against the twin, and /metrics scrapes."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from sim.twin import Twin

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def worker_env(
    twin: Twin, temporal: WorkflowEnvironment, queue: str, **extra: str
) -> dict[str, str]:
    """What the Deployment gives a worker: the twin's endpoints, Temporal, the task queue."""
    return {
        **os.environ,
        **twin.env,
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
        "WINFLEET_TASK_QUEUE": queue,
        "AWS_EC2_METADATA_DISABLED": "true",
        "WINFLEET_LOG_FORMAT": "json",
        **extra,
    }


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([str(BIN / "winfleet"), "worker"], env=env, stdout=out, stderr=out)


async def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)


def free_port_pair() -> int:
    """A port p such that p and p + 1 are free (the worker's HTTP port and the SDK's)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


def free_port_pairs(count: int) -> list[int]:
    """`count` ports from `free_port_pair`, no two pairs overlapping."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port_pair()
        if all(abs(port - other) > 1 for other in ports):
            ports.append(port)
    return ports


async def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(kubeconfig.parent)}
    return await asyncio.to_thread(
        subprocess.run,
        [KUBECTL, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def http_get(url: str) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as reply:
        return reply.status, await reply.text()


async def scrape(port: int) -> Samples:
    status, text = await http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, text[:500]
    return parse(text)


async def metric_families(port: int) -> set[str]:
    """Every family /metrics declares (also those without samples yet, e.g. counters that
    only the drift reconciliation increments)."""
    _, text = await http_get(f"http://127.0.0.1:{port}/metrics")
    return {f.name for f in text_string_to_metric_families(text)}


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def names(samples: Samples) -> set[str]:
    return {n for n, _ in samples}


async def wait_until(
    what: str,
    probe: Callable[[], Any],
    within: float,
    log: Path | None = None,
    explain: Callable[[], Awaitable[str]] | None = None,
) -> Any:
    """Poll `probe()` (sync or async) until it is truthy; on timeout fail with the tail of
    `log` or what `explain()` says."""
    deadline = time.monotonic() + within
    while True:
        got = probe()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if time.monotonic() >= deadline:
            tail = await asyncio.to_thread(_tail, log) if log is not None else ""
            said = await explain() if explain is not None else ""
            raise AssertionError(f"timed out after {within}s waiting for {what}\n{tail}{said}")
        await asyncio.sleep(0.1)


def _tail(log: Path) -> str:
    return log.read_text()[-3000:] if log.exists() else ""


def table_rows(readme: Path, section: str) -> Iterator[tuple[str, str, str]]:
    """(verb, group, resource[/sub]) of every row of the table under the `## <section>...`
    heading of deploy/README.md."""
    inside = False
    for line in readme.read_text().splitlines():
        if line.startswith("## "):
            inside = line[3:].startswith(section)
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not inside or len(cells) != 5 or cells[0] == "verbs" or not cells[0][:1].isalpha():
            continue
        group = cells[2].strip('"')
        resource = cells[1].split()[0]
        for verb in cells[0].split(","):
            yield verb.strip(), group, resource
