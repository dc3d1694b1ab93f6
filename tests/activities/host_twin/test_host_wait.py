"""wait_for_ssh against simulated hosts: boot, pinning, build check, rename and reboot."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from host_lab import KEY_SECRET, Lab, fresh_address
from reimaged import until_connections_dropped
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.errors import InvalidRequest
from activities.host import HostFacts, WaitForSshInput, require_computer_name, wait_for_ssh

SUPPORTED = ("10.0.17763", "10.0.20348")


def _input(address: str, node: str = "winworker-1", timeout_s: float = 30) -> WaitForSshInput:
    return WaitForSshInput(
        node_name=node,
        address=address,
        username="Administrator",
        private_key_secret=KEY_SECRET,
        supported_builds=SUPPORTED,
        timeout_s=timeout_s,
    )


async def _wait(inp: WaitForSshInput, beats: list[Any] | None = None) -> HostFacts:
    env = ActivityEnvironment()
    if beats is not None:
        env.on_heartbeat = lambda *details: beats.append(details)
    return await env.run(wait_for_ssh, inp)


async def test_a_ready_host_reports_its_facts_and_gets_pinned(lab: Lab) -> None:
    host = await lab.add_host("winworker-1")
    facts = await _wait(_input(host.address))
    assert facts.address == host.address
    assert facts.hostname == "winworker-1"
    assert facts.os_build == "10.0.17763"
    assert facts.host_key_fingerprint.startswith("SHA256:")
    assert not facts.renamed
    assert await lab.pinned_in_configmap() == {host.address: host.host_key_public}


async def test_the_hostname_is_compared_without_case(lab: Lab) -> None:
    host = await lab.add_host("WINWORKER-1")
    facts = await _wait(_input(host.address))
    assert facts.hostname == "WINWORKER-1"
    assert not facts.renamed


async def test_a_host_refusing_ssh_while_it_boots_is_waited_for(lab: Lab) -> None:
    host = await lab.add_host()
    host.faults.refuse_ssh(1.5)
    beats: list[Any] = []
    facts = await _wait(_input(host.address), beats)
    assert facts.hostname == "winworker-1"
    assert len(beats) >= 2  # at least one refused attempt, heartbeated, before success


async def test_a_host_still_booting_is_waited_for(lab: Lab) -> None:
    host = await lab.add_host(boot_seconds=1.0)
    assert not host.is_up
    facts = await _wait(_input(host.address))
    assert facts.hostname == "winworker-1"


async def test_a_host_that_never_answers_times_out_retryably(lab: Lab) -> None:
    with pytest.raises(ApplicationError) as caught:
        await _wait(_input(fresh_address(), timeout_s=1.0))
    assert caught.value.type == "HostUnreachable"
    assert not caught.value.non_retryable
    assert "did not accept SSH within 1 s" in caught.value.message


async def test_an_unsupported_windows_build_is_refused_permanently(lab: Lab) -> None:
    host = await lab.add_host(os_build="10.0.14393.4046")
    with pytest.raises(ApplicationError) as caught:
        await _wait(_input(host.address))
    assert caught.value.type == "UnsupportedWindowsBuild"
    assert caught.value.non_retryable
    assert "10.0.14393" in caught.value.message
    assert "10.0.17763, 10.0.20348" in caught.value.message


async def test_a_host_with_another_name_is_renamed_rebooted_and_waited_for(lab: Lab) -> None:
    host = await lab.add_host("WIN-8F3K2Q1")
    facts = await _wait(_input(host.address, node="winworker-7"))
    assert facts.renamed
    assert facts.hostname == "winworker-7"
    assert host.hostname == "winworker-7"
    again = await _wait(_input(host.address, node="winworker-7"))
    assert again.hostname == "winworker-7"
    assert not again.renamed


async def test_a_host_whose_key_changed_is_refused_permanently(lab: Lab) -> None:
    host = await lab.add_host()
    await _wait(_input(host.address))
    host.faults.change_host_key()
    await until_connections_dropped(host.address)
    with pytest.raises(ApplicationError) as caught:
        await _wait(_input(host.address))
    assert caught.value.type == "HostKeyMismatch"
    assert caught.value.non_retryable


async def test_a_host_that_refuses_our_key_is_refused_permanently(lab: Lab) -> None:
    host = await lab.add_host(authorized_keys=())
    with pytest.raises(ApplicationError) as caught:
        await _wait(_input(host.address))
    assert caught.value.type == "SshAuthenticationFailed"
    assert caught.value.non_retryable


async def test_a_retried_attempt_still_reports_the_rename_an_earlier_attempt_made(
    lab: Lab,
) -> None:
    host = await lab.add_host("winworker-1")  # renamed and rebooted by the earlier attempt
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=["renamed"])
    facts = await env.run(wait_for_ssh, _input(host.address))
    assert facts.renamed
    assert facts.hostname == "winworker-1"


async def test_a_node_name_windows_cannot_take_is_refused_before_renaming(lab: Lab) -> None:
    host = await lab.add_host("WIN-8F3K2Q1")
    with pytest.raises(ApplicationError) as caught:
        await _wait(_input(host.address, node="worker.example.com"))
    assert caught.value.type == "InvalidRequest"
    assert caught.value.non_retryable
    assert host.hostname == "WIN-8F3K2Q1"
    assert host.pending_hostname is None


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("winworker-1", True),
        ("WIN-8F3K2Q1", True),
        ("x" * 63, True),
        ("x" * 64, False),
        ("worker.example.com", False),
        ("12345", False),
        ("-leading", False),
        ("trailing-", False),
        ("under_score", False),
    ],
)
def test_only_valid_windows_computer_names_are_accepted_for_a_rename(
    name: str, allowed: bool
) -> None:
    if allowed:
        require_computer_name(name, "127.4.0.1")
    else:
        with pytest.raises(InvalidRequest, match="letters, digits and hyphens"):
            require_computer_name(name, "127.4.0.1")
