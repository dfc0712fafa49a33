"""durable_replicas (--replicas): submit and completion wait (WAIT) for N replicas.
The session's cluster and Sentinel group have one replica per primary; the single
server has none, so there a durable write is reported as not durable."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from swarmstream import EphemeralWorker, Settings, Swarm, Task
from swarmstream.errors import NotDurable
from swarmstream.keys import Keys


def durable(settings: Settings, replicas: int = 1) -> Settings:
    redis = dataclasses.replace(settings.redis, durable_replicas=replicas, durable_timeout=0.3)
    return dataclasses.replace(settings, redis=redis)


@pytest.mark.contract
async def test_durable_submit_and_completion(settings: Settings, topology: str) -> None:
    wanted = durable(settings)
    async with Swarm(wanted) as swarm:
        tasks = [Task(spec="dur", text=f"t{i}") for i in range(20)]
        if topology == "standalone":  # no replica: the primary has it, but not durably
            with pytest.raises(NotDurable, match="0 of 1 replicas"):
                await swarm.submit_many(tasks)
            length = await swarm.client.xlen(Keys(settings.redis.namespace).spec("dur").tasks)
            assert length == len(tasks), "a write that was not durable is still written"
        else:
            await swarm.submit_many(tasks)
            one = await swarm.submit("dur", "watched")
            tasks.append(one)
        worker = EphemeralWorker(["dur"], lambda t: t.text, wanted)
        run = asyncio.create_task(worker.run())
        try:
            found = await swarm.wait_many(tasks, timeout=20)
        finally:
            worker.stop()
            await run
        # a completion that no replica confirmed is recorded all the same (a warning)
        assert len(found) == len(tasks)


async def test_more_replicas_than_exist_names_the_shortfall(settings: Settings) -> None:
    async with Swarm(durable(settings, replicas=3)) as swarm:
        with pytest.raises(NotDurable, match=r"of 3 replicas acknowledged it within 0\.3s"):
            await swarm.submit("dur", "x")
