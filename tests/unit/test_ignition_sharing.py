"""The worker ignition is fetched once for onboardings that start together, and again once the
reuse window has passed or the settings changed (activities/kubelet.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from activities import kubelet
from activities.config import settings, use_settings

IGNITION = json.dumps({"ignition": {"version": "3.2.0"}}).encode()


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []
    gate = threading.Event()

    def fake_get(url: str, ca_file: str | None) -> bytes:
        seen.append(url)
        gate.wait(0.3)  # slow enough that the other callers arrive while it runs
        return IGNITION

    monkeypatch.setattr(kubelet, "_get", fake_get)
    before = settings()
    use_settings(
        replace(
            before, mcs_url="https://mcs.test:22623/config/worker", mcs_ca_bundle="/test/ca.pem"
        )
    )
    yield seen
    gate.set()
    use_settings(before)


async def test_onboardings_starting_together_share_one_fetch(fetches: list[str]) -> None:
    bodies = await asyncio.gather(*(kubelet.fetch_worker_ignition() for _ in range(8)))
    assert bodies == [IGNITION] * 8
    assert len(fetches) == 1
    await kubelet.fetch_worker_ignition()  # within the reuse window: no new request
    assert len(fetches) == 1


async def test_a_stale_or_reconfigured_ignition_is_fetched_again(
    fetches: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await kubelet.fetch_worker_ignition()
    monkeypatch.setattr(kubelet._ignitions, "seconds", 0.0)
    await kubelet.fetch_worker_ignition()
    assert len(fetches) == 2
    monkeypatch.setattr(kubelet._ignitions, "seconds", 30.0)
    use_settings(replace(settings(), mcs_url="https://other.test:22623/config/worker"))
    await kubelet.fetch_worker_ignition()
    assert fetches[-1] == "https://other.test:22623/config/worker"
    assert len(fetches) == 3
