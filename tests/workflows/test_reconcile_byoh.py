"""Drift reconciliation of BYOH pools: host drift put right in place, hosts added and removed,
the short-circuit, and a clean pool left untouched."""

from __future__ import annotations

import json
from typing import Any

import pytest
from drift_lab import (
    explain,
    host_of,
    list_hosts,
    new_byoh_hosts,
    node_metadata,
    node_named,
    outcomes,
    pwsh,
    ready_nodes,
    reconcile,
    settled,
)
from fleet import available, create_pool, get_pool, install_crd, pool_nodes, until, watching
from host_changes import changed, snapshot, writes
from onboarding import World, events

pytestmark = pytest.mark.asyncio(loop_scope="session")

QUIET = {"interval": "1h"}  # no scheduled run during a test: each test starts its own


def byoh_pool(addresses: list[str], max_unhealthy: int = 1) -> dict[str, object]:
    return {
        "platform": "byoh",
        "byoh": {"hosts": [{"address": a} for a in addresses]},
        "maxUnhealthy": max_unhealthy,
        "reconcile": QUIET,
    }


async def test_a_run_over_a_pool_without_drift_changes_nothing(world: World) -> None:
    await install_crd(world)
    addresses = await new_byoh_hosts(world, 1)
    async with watching(world):
        await create_pool(world, "pclean", byoh_pool(addresses))
        nodes = await ready_nodes(world, "pclean", 1)
        hosts = [host_of(world, n) for n in nodes]
        for host, n in zip(hosts, nodes, strict=True):
            await settled(host, world, n["metadata"]["name"])
        names = [n["metadata"]["name"] for n in nodes]
        before = {h.address: snapshot(h) for h in hosts}
        logged = {h.address: len(h.command_log) for h in hosts}
        metadata = {name: node_metadata(world, name) for name in names}

        report = await reconcile(world, "pclean")

        assert report.state == "Clean", explain(report)
        assert (report.summary.found, report.nodes_checked) == (0, 1)
        for h in hosts:
            assert writes(h.command_log[logged[h.address] :]) == []
            assert changed(before[h.address], snapshot(h)) == set()
        assert {name: node_metadata(world, name) for name in names} == metadata
        await until(
            "lastReconcile in the pool's status",
            lambda: (
                (get_pool(world, "pclean") or {}).get("status", {}).get("lastReconcile", {})
                == {"time": report.summary.time, "found": 0, "repaired": 0, "deferred": 0}
            ),
            world=world,
        )


async def test_host_drift_is_put_right_in_place_and_listed_hosts_follow_in_one_run(
    world: World,
) -> None:
    await install_crd(world)
    first, second, third, fourth = await new_byoh_hosts(world, 4)
    await list_hosts(world, [], remove=[fourth])  # listed later
    async with watching(world):
        await create_pool(world, "pdrift", byoh_pool([first, second, third, fourth], 2))
        nodes = await ready_nodes(world, "pdrift", 3)
        by_host = {host_of(world, n).address: n["metadata"]["name"] for n in nodes}
        drifted, quiet = world.twin.fleet.get(second), world.twin.fleet.get(third)
        for host in (drifted, quiet):
            await settled(host, world, by_host[host.address])
        clean_state = snapshot(drifted)
        quiet_state, quiet_logged = snapshot(quiet), len(quiet.command_log)
        # What an admin (or a crash) does to one node...
        k = drifted.root / "C" / "k"
        conf = k / "cni" / "config" / "cni.conf"
        edited = json.loads(conf.read_text())
        edited["Policies"] = []
        conf.write_text(json.dumps(edited))
        (k / "kubelet.exe").write_bytes((k / "kubelet.exe").read_bytes() + b"\0patched")
        await pwsh(drifted, "Set-Service -Name kube-proxy -StartupType Disabled")
        await pwsh(
            drifted,
            r"Import-Module C:\k\hns.psm1; Get-HnsNetwork | Where-Object -Property Name -EQ "
            r"-Value OVNKubernetesHybridOverlayNetwork | Remove-HnsNetwork",
        )
        await pwsh(drifted, "Stop-Service -Name kubelet -Force")
        # ...and to the list of hosts.
        await list_hosts(world, [fourth], remove=[first])
        logged = len(drifted.command_log)

        report = await reconcile(world, "pdrift")

        node = by_host[second]
        found = outcomes(report)
        text = explain(report)
        assert found[("", "byoh-host-added", fourth)] == "delegated", text
        assert found[("", "byoh-host-removed", by_host[first])] == "delegated", text
        for check, subject in [
            ("service-stopped", "kubelet"),
            ("service-disabled", "kube-proxy"),
            ("cni-config", r"C:\k\cni\config\cni.conf"),
            ("payload-file", r"C:\k\kubelet.exe"),
        ]:
            assert found[(node, check, subject)] == "done", text
        assert any(k[0] == node and k[1] == "hns" and v == "done" for k, v in found.items()), text
        assert report.state == "Repaired", text

        # The node is Ready again and exactly as it was; nothing was written to the other one.
        await until("the repaired node Ready", lambda: available(node_named(world, node) or {}))
        assert changed(clean_state, snapshot(drifted)) == set()
        assert writes(quiet.command_log[quiet_logged:]) == []
        assert changed(quiet_state, snapshot(quiet)) == set()
        repairs = writes(drifted.command_log[logged:])
        expected = [  # kubelet.exe and cni.conf went over SFTP (not in the log)
            r"New-Item -ItemType Directory -Path 'C:\k' -Force",  # copy_payload's (idempotent)
            "Start-Service -Name 'kubelet'",
            "Start-Service -Name 'hybrid-overlay-node'",
            r"New-Item -ItemType Directory -Path 'C:\k\cni\config' -Force",  # configure_cni's
            "New-HnsEndpoint",
            "sc.exe config kube-proxy",  # start= auto again (ensure_service)
            "sc.exe description kube-proxy",
            "sc.exe failure kube-proxy",
            "Start-Service -Name 'kube-proxy'",
        ]
        assert len(repairs) == len(expected), repairs
        assert all(e in r for e, r in zip(expected, repairs, strict=True)), repairs
        recorded = [
            e for e in events(world, "DriftRepaired") if e["involvedObject"]["name"] == node
        ]
        assert len(recorded) == 1 and "payload-file" in recorded[0]["message"]

        # The pool follows the list: the removed host's node goes, the added host joins.
        await until(
            "the pool on the listed hosts",
            lambda: (
                sorted(host_of(world, n).address for n in pool_nodes(world, "pdrift"))
                == sorted([second, third, fourth])
                and all(available(n) for n in pool_nodes(world, "pdrift"))
            ),
            within=180,
            world=world,
        )


async def test_more_unhealthy_nodes_than_the_budget_are_left_alone_and_the_pool_is_degraded(
    world: World,
) -> None:
    await install_crd(world)
    addresses = await new_byoh_hosts(world, 2)
    async with watching(world):
        await create_pool(world, "pshort", byoh_pool(addresses, max_unhealthy=1))
        nodes = await ready_nodes(world, "pshort", 2)
        broken = [host_of(world, n) for n in nodes]
        for host, n in zip(broken, nodes, strict=True):
            await settled(host, world, n["metadata"]["name"])  # else a restart asks for another
        for host in broken:
            await pwsh(host, "Stop-Service -Name kubelet -Force")
        logged = {h.address: len(h.command_log) for h in broken}

        report = await reconcile(world, "pshort")

        assert report.state == "Degraded", explain(report)
        assert sorted(report.unhealthy) == sorted(n["metadata"]["name"] for n in nodes)
        assert report.summary.repaired == 0 and "maxUnhealthy" in report.message
        for host in broken:
            assert writes(host.command_log[logged[host.address] :]) == []
            assert host.services["kubelet"] == "Stopped"

        def degraded() -> dict[str, str]:
            conditions = (get_pool(world, "pshort") or {}).get("status", {}).get("conditions", [])
            return next((c for c in conditions if c["type"] == "Degraded"), {})

        await until(
            "the pool Degraded", lambda: degraded().get("reason") == "TooManyUnhealthy", world=world
        )

        def told() -> list[dict[str, Any]]:
            return [
                e
                for e in events(world, "TooManyUnhealthy")
                if e["involvedObject"]["name"] == "pshort"
            ]

        await until("an Event on the pool", told, world=world)
        (event,) = told()
        assert event["type"] == "Warning" and "maxUnhealthy" in event["message"]

        # Once one is fixed by hand, the next run repairs the other and the pool recovers.
        await pwsh(broken[0], "Start-Service -Name kubelet")
        await pwsh(broken[0], "Start-Service -Name kube-proxy")
        again = await reconcile(world, "pshort")

        assert again.state == "Repaired", explain(again)
        assert broken[1].services["kubelet"] == "Running"
        await until(
            "the pool no longer Degraded", lambda: degraded().get("status") == "False", world=world
        )
