"""worker_redis(): handlers share the worker's connection, auto-pipelined."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from helpers import running_worker
from redis.exceptions import ResponseError

import swarmstream
from swarmstream import Settings, Status, Swarm, Task, worker_redis
from swarmstream.transport.transport import Transport
from swarmstream.worker.shared_redis import SharedRedis

SPEC = "shared"


@pytest.mark.contract
async def test_concurrent_handlers_share_pipelines(
    swarm: Swarm, settings: Settings, raw: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:hits"

    async def handler(task: Task) -> str:
        return str(await worker_redis().execute("INCR", key))

    tasks = [Task(spec=SPEC, text=f"t{i}") for i in range(300)]
    async with running_worker(SPEC, handler, settings, concurrency=100) as worker:
        await swarm.submit_many(tasks)
        found = await swarm.wait_many(tasks, timeout=60)
        shared = worker.execution.shared_redis
    assert len(found) == 300
    assert all(f.status is Status.OK for f in found.values())
    assert sorted(int(f.content) for f in found.values()) == list(range(1, 301))
    assert raw.get(key) == b"300"
    assert shared.commands == 300
    assert shared.pipelines < 100, shared.pipelines  # batched, far below one per task


async def test_a_sync_handler_uses_execute_sync(
    swarm: Swarm, settings: Settings, raw: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:sync"

    def handler(task: Task) -> str:
        shared = worker_redis()
        hits = shared.execute_sync("INCR", key)
        echoed = shared.pipeline_sync([("SET", f"{key}:{task.text}", task.text)])
        return f"{hits} {echoed[0].decode()}"

    tasks = [Task(spec=SPEC, text=f"t{i}") for i in range(20)]
    async with running_worker(SPEC, handler, settings, concurrency=8):
        await swarm.submit_many(tasks)
        found = await swarm.wait_many(tasks, timeout=60)
    assert all(f.status is Status.OK for f in found.values()), found
    assert sorted(int(f.content.split()[0]) for f in found.values()) == list(range(1, 21))
    assert {f.content.split()[1] for f in found.values()} == {"OK"}
    assert raw.get(key) == b"20"
    assert raw.get(f"{key}:t7") == b"t7"


async def test_an_error_reply_fails_only_its_task(
    swarm: Swarm, settings: Settings, raw: redis.Redis, namespace: str
) -> None:
    raw.set(f"{namespace}:text", "abc")

    async def handler(task: Task) -> str:
        return str(await worker_redis().execute("INCR", task.text))

    good = [Task(spec=SPEC, text=f"{namespace}:n{i}", max_attempts=1) for i in range(30)]
    bad = Task(spec=SPEC, text=f"{namespace}:text", max_attempts=1)
    async with running_worker(SPEC, handler, settings, concurrency=64):
        await swarm.submit_many([*good[:15], bad, *good[15:]])
        found = await swarm.wait_many([*good, bad], timeout=60)
    failed = found[bad.id]
    assert failed.status is Status.FAILED
    assert "ResponseError" in (failed.error or ""), failed.error
    assert all(found[t.id].status is Status.OK and found[t.id].content == "1" for t in good)
    assert raw.get(f"{namespace}:text") == b"abc"


async def test_commands_of_one_turn_go_in_one_pipeline(settings: Settings, namespace: str) -> None:
    transport = await Transport.open(settings)
    try:
        await transport.check()  # a cluster client learns its slot map here
        shared = SharedRedis(transport.link)
        await shared.execute("SET", f"{namespace}:s", "abc")
        before = shared.pipelines
        calls = [shared.execute("INCR", f"{namespace}:c") for _ in range(50)]
        calls.insert(20, shared.execute("INCR", f"{namespace}:s"))
        calls.append(shared.pipeline([("GET", f"{namespace}:s"), ("PING",)]))
        replies = await asyncio.gather(*calls, return_exceptions=True)
        assert shared.pipelines == before + 1
        assert isinstance(replies[20], ResponseError)
        assert [r for i, r in enumerate(replies[:-1]) if i != 20] == list(range(1, 51))
        assert replies[-1] == [b"abc", b"PONG"]
        with pytest.raises(ResponseError):
            await shared.pipeline([("GET", f"{namespace}:s"), ("INCR", f"{namespace}:s")])
        mixed = await shared.pipeline([("INCR", f"{namespace}:s")], raise_on_error=False)
        assert isinstance(mixed[0], ResponseError)
        with pytest.raises(ValueError, match="BLPOP"):
            await shared.execute("BLPOP", f"{namespace}:l", 0)
        with pytest.raises(ValueError, match="XREAD"):
            await shared.execute("XREAD", "BLOCK", 0, "STREAMS", f"{namespace}:x", "$")
        with pytest.raises(RuntimeError, match="event loop"):
            shared.execute_sync("PING")
        # from a thread, onto the loop
        assert await asyncio.to_thread(shared.execute_sync, "GET", f"{namespace}:c") == b"50"
    finally:
        await transport.aclose()


def test_worker_redis_outside_a_worker_raises() -> None:
    with pytest.raises(RuntimeError, match="only inside a handler run by a swarmstream worker"):
        worker_redis()
    assert swarmstream.worker_redis is worker_redis


@pytest.mark.contract
async def test_commands_are_routed_by_key_on_every_topology(
    settings: Settings, namespace: str, raw: Any
) -> None:
    transport = await Transport.open(settings)
    try:
        await transport.check()  # a cluster client learns its slot map here
        shared = SharedRedis(transport.link)
        keys = [f"{namespace}:k{i}" for i in range(12)]
        calls = [shared.execute("SET", k, k) for k in keys]
        calls.append(shared.pipeline([("INCR", k) for k in keys[:3]], raise_on_error=False))
        replies = await asyncio.gather(*calls)
        assert replies[:-1] == [b"OK"] * len(keys)
        assert all(isinstance(r, ResponseError) for r in replies[-1])  # not integers
        slots = {transport.link.slot_of(k) for k in keys}
        assert shared.pipelines == len(slots)  # one per slot (1 but on a cluster)
        assert shared.commands == len(keys) + 3
        assert [raw.get(k) for k in keys] == [k.encode() for k in keys]
        assert await shared.execute("GET", "unused", key=keys[5]) is None
    finally:
        await transport.aclose()
