"""Pools in the cluster: scaled by the worker, upgraded within their budget."""

from __future__ import annotations

import pytest
from fleet import (
    available,
    create_pool,
    get_pool,
    install_crd,
    patch_pool,
    pool_nodes,
    sampling,
    until,
    version_of,
    watching,
)
from onboarding import World

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_new_pool_is_onboarded_and_a_new_version_rolled_out_within_budget(
    world: World,
) -> None:
    await install_crd(world)
    async with watching(world):
        await create_pool(
            world,
            "pa",
            {"platform": "aws", "replicas": 3, "version": "1.0.0", "maxUnhealthy": 1},
        )
        await until(
            "3 Ready nodes at 1.0.0",
            lambda: (
                len(
                    [
                        n
                        for n in pool_nodes(world, "pa")
                        if available(n) and version_of(n) == "1.0.0"
                    ]
                )
                == 3
            ),
        )
        first = {n["metadata"]["name"] for n in pool_nodes(world, "pa")}
        await until(
            "pool status",
            lambda: (get_pool(world, "pa") or {}).get("status", {}).get("readyReplicas") == 3,
        )
        async with sampling(world, "pa", 3) as sampler:
            await patch_pool(world, "pa", {"version": "1.1.0"})
            await until(
                "every node on 1.1.0",
                lambda: (
                    len(
                        [
                            n
                            for n in pool_nodes(world, "pa")
                            if available(n) and version_of(n) == "1.1.0"
                        ]
                    )
                    == 3
                    and len(pool_nodes(world, "pa")) == 3
                ),
                within=150,
                world=world,
            )
            await world.client.get_workflow_handle("upgrade-pa").result()
        now = {n["metadata"]["name"] for n in pool_nodes(world, "pa")}
        assert not (now & first)  # replaced, not relabelled
        assert sampler.worst <= 1, sampler.history
