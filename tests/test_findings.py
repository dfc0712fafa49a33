"""``Swarm.findings(count=N)`` reads only the newest N of each spec (XREVRANGE), merges
the specs and keeps the newest N overall, oldest first."""

from __future__ import annotations

import asyncio

import pytest

from swarmstream import EphemeralWorker, Settings, Swarm, Task

SHARDS = ("x", "y", "z")


async def _alternating_findings(swarm: Swarm, settings: Settings, n: int) -> list[Task]:
    """n tasks, alternately on specs a and b, shards x, y, z in turn, each finished
    before the next is submitted: finding i is the i-th newest from the end."""
    worker = EphemeralWorker(["a", "b"], lambda t: t.text, settings, name="w")
    runner = asyncio.create_task(worker.run())
    tasks = []
    try:
        for i in range(n):
            task = await swarm.submit("ab"[i % 2], f"t{i}", shard=SHARDS[i % 3])
            await swarm.wait(task, timeout=20)
            tasks.append(task)
    finally:
        worker.stop()
        await runner
    return tasks


@pytest.mark.contract
async def test_findings_count_is_the_newest_across_specs(swarm: Swarm, settings: Settings) -> None:
    tasks = await _alternating_findings(swarm, settings, 24)
    ids = [t.id for t in tasks]

    newest = await swarm.findings(count=5)
    assert [f.task_id for f in newest] == ids[-5:]  # oldest first, both specs
    assert {f.spec for f in newest} == {"a", "b"}
    assert [f.task_id for f in await swarm.findings("a", count=3)] == ids[-6::2]
    assert [f.task_id for f in await swarm.findings()] == ids  # no count: all of them

    in_x = [t.id for t in tasks if t.shard == "x"]  # 8 of them, on both specs
    assert [f.task_id for f in await swarm.findings(shard="x", count=5)] == in_x[-5:]
    assert [f.task_id for f in await swarm.findings(shard="x", count=50)] == in_x
    assert await swarm.findings(shard="nowhere", count=5) == []

    # the shard filter pages backwards: pages of 3 entries over spec a's 12
    a_in_y = [t.id for t in tasks if t.spec == "a" and t.shard == "y"]
    paged = await swarm.results.newest_findings("a", 3, shard="y", page=1)
    assert [f.task_id for f in paged] == a_in_y[-3:]
    exhausted = await swarm.results.newest_findings("a", 10, shard="y", page=1)
    assert [f.task_id for f in exhausted] == a_in_y
