"""The shared describe loop: many instances waited on, one describe call per round."""

from __future__ import annotations

import asyncio

import pytest

from activities.cloud.instance_states import Instance, InstanceStates
from activities.errors import CloudUnavailable


class FakeEc2:
    """Describe calls recorded; instances become `running` after `rounds_pending` rounds."""

    def __init__(self, rounds_pending: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.rounds_pending = rounds_pending
        self.fail_next: Exception | None = None

    async def describe(self, ids: list[str]) -> dict[str, Instance]:
        self.calls.append(ids)
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        state = "running" if len(self.calls) > self.rounds_pending else "pending"
        return {i: {"InstanceId": i, "State": {"Name": state}} for i in ids if i != "i-unknown"}


async def until_running(states: InstanceStates, instance_id: str) -> int:
    """How many rounds it took to see the instance running."""
    rounds = 0
    while True:
        rounds += 1
        found = await states.next_state(instance_id)
        if found is not None and found["State"]["Name"] == "running":
            return rounds


async def test_instances_waited_on_together_share_each_describe_call() -> None:
    ec2 = FakeEc2(rounds_pending=2)
    states = InstanceStates(ec2.describe, interval=0.01)
    ids = [f"i-{n}" for n in range(50)]
    rounds = await asyncio.gather(*(until_running(states, i) for i in ids))
    assert rounds == [3] * 50
    assert len(ec2.calls) == 3  # not 150: one call per round for all fifty
    assert all(sorted(call) == sorted(ids) for call in ec2.calls)


async def test_a_new_instance_is_described_soon_not_after_a_whole_interval() -> None:
    ec2 = FakeEc2()
    states = InstanceStates(ec2.describe, interval=3600.0, gather_s=0.0)
    found = await asyncio.wait_for(states.next_state("i-1"), timeout=10)
    assert found is not None and found["InstanceId"] == "i-1"


async def test_an_instance_the_api_does_not_know_yet_has_no_state() -> None:
    ec2 = FakeEc2()
    states = InstanceStates(ec2.describe, interval=0.01)
    assert await states.next_state("i-unknown") is None


async def test_a_failed_describe_fails_the_waiters_of_that_round_only() -> None:
    ec2 = FakeEc2()
    states = InstanceStates(ec2.describe, interval=0.01)
    ec2.fail_next = CloudUnavailable("EC2 answered RequestLimitExceeded")
    with pytest.raises(CloudUnavailable, match="RequestLimitExceeded"):
        await states.next_state("i-1")
    found = await states.next_state("i-1")
    assert found is not None and found["State"]["Name"] == "running"


async def test_a_cancelled_wait_leaves_the_other_waiters_answered() -> None:
    ec2 = FakeEc2()
    states = InstanceStates(ec2.describe, interval=0.01, gather_s=0.05)
    gone = asyncio.create_task(states.next_state("i-gone"))
    stays = asyncio.create_task(states.next_state("i-stays"))
    await asyncio.sleep(0)
    gone.cancel()
    found = await stays
    assert found is not None and found["InstanceId"] == "i-stays"
    assert ec2.calls == [["i-stays"]]
