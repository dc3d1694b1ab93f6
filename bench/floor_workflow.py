"""The benchmark's SDK-floor workflow: the Temporal round trips of one onboarding, no work.

`FloorOnboarding` runs as many activities, one after the other, as `OnboardWindowsNode` runs on
the happy path (`ONBOARDING_ACTIVITIES`), each with an input of the size of an onboarding step's
and one heartbeat, and upserts the phase search attribute as often as it does. Its activity
`floor_step` does nothing else. What a worker spends on it is what every onboarding costs before
any SSH, Kubernetes or cloud call: bench/floor.py measures it. Benchmark-only, never registered
by `winfleet worker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from workflows import search_attributes

# claim, preflight, VM, SSH, payload, kubelet, CSRs, annotation, hybrid-overlay, annotation,
# CNI, kube-proxy, Ready, CSRs, finalize, release: workflows/onboard.py's happy path.
ONBOARDING_ACTIVITIES = 16
ONBOARDING_PHASES = 9


@dataclass(frozen=True)
class FloorInput:
    activities: int = ONBOARDING_ACTIVITIES
    local: bool = False  # local activities instead of activity tasks
    filler: str = "x" * 300  # about an onboarding step's input


@activity.defn
async def floor_step(filler: str) -> str:
    activity.heartbeat("step")
    return filler[:64]


@workflow.defn(name="BenchFloorOnboarding")
class FloorOnboarding:
    @workflow.run
    async def run(self, inp: FloorInput) -> int:
        timeout = timedelta(minutes=1)
        for i in range(inp.activities):
            if i % max(1, inp.activities // ONBOARDING_PHASES) == 0:
                workflow.upsert_search_attributes([search_attributes.PHASE.value_set(f"step-{i}")])
            if inp.local:
                await workflow.execute_local_activity(
                    floor_step, inp.filler, start_to_close_timeout=timeout
                )
            else:
                await workflow.execute_activity(
                    floor_step,
                    inp.filler,
                    start_to_close_timeout=timeout,
                    heartbeat_timeout=timeout,
                )
        return inp.activities
