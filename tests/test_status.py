"""Snapshots against real Redis with live workers, and ``status --json``'s shape."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from helpers import await_until

from swarmstream import EphemeralWorker, Settings, Swarm, Task
from swarmstream.monitor.snapshot import collect
from swarmstream.shard import MemoryShard


@pytest.mark.contract
async def test_collect_sees_specs_workers_shards_and_feed(swarm: Swarm, settings: Settings) -> None:
    import workload

    shard = MemoryShard(swarm, "s1", "research")
    await shard.load_documents([("a.md", "hello world\n" * 100)])
    quick = [Task(spec="research", text=f"q{i}", data={"seconds": 0.0}) for i in range(5)]
    slow = Task(spec="research", text="slow", data={"seconds": 3.0})
    await swarm.submit_many([*quick, slow])
    await swarm.submit_many([Task(spec="other", text="waiting")])
    worker = EphemeralWorker("research", workload.nap, settings, name="w1")
    runner = asyncio.create_task(worker.run())
    reader = swarm.transport.stats

    async def busy_with_slow() -> object:
        snap = await collect(reader)
        w = {x.name: x for x in snap.workers}.get("w1")
        return snap if w and slow.id in w.current and snap.completed >= 5 else None

    first = await await_until(busy_with_slow, what="w1 busy on the slow task")
    specs = {s.name: s for s in first.specs}
    assert specs["research"].pending == 1
    assert specs["research"].consumers == 1
    assert specs["other"].pending == 0
    assert specs["other"].backlog in (1, None)  # None on Redis 6.2 (no lag there)
    assert specs["research"].oldest_pending_ms is not None
    assert [h.id for h in first.shards] == ["s1"] and first.shards[0].tokens == 300
    assert {f.task_id for f in first.feed} >= {t.id for t in quick}
    await swarm.wait(slow, timeout=10)
    second = await collect(reader, first)
    r = {s.name: s for s in second.specs}["research"]
    assert r.completed == 6
    assert r.completed_rate is not None and r.completed_rate > 0
    assert len(second.history) == 1
    worker.stop()
    await runner


@pytest.mark.contract
def test_status_json_shape(settings: Settings) -> None:
    async def seed() -> None:
        async with Swarm(settings) as swarm:
            await swarm.submit("research", "x")

    asyncio.run(seed())
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmstream",
            "--redis-url",
            settings.redis.url,
            "--namespace",
            settings.redis.namespace,
            "status",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    doc = json.loads(out)
    assert set(doc) >= {"specs", "workers", "shards"}
    [spec] = doc["specs"]
    assert set(spec) >= {
        "name",
        "stream",
        "length",
        "pending",
        "lag",
        "consumers",
        "dead",
        "oldest_pending_ms",
    }
    assert spec["name"] == "research" and spec["length"] == 1 and spec["pending"] == 0
    assert spec["stream"] == f"{settings.redis.namespace}:spec:{{research}}:tasks"
