"""A worker on several specs, and a waiter on several specs: on a cluster their
streams sit in different hash slots (one blocking read per slot), on one server in
one command. Nothing is starved, nothing is lost (issue 11)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.crc import key_slot

from swarmstream import EphemeralWorker, Settings, Swarm, Task
from swarmstream.keys import Keys

#: names whose hash tags fall in different slots (checked below)
SPECS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]


def test_the_specs_spread_over_slots() -> None:
    slots = {key_slot(Keys("x").spec(s).tasks.encode()) for s in SPECS}
    assert len(slots) == len(SPECS)


@pytest.mark.contract
async def test_one_worker_on_six_specs_serves_them_all(swarm: Swarm, settings: Settings) -> None:
    tasks = [Task(spec=s, text=f"{s}-{i}") for s in SPECS for i in range(40)]
    await swarm.submit_many(tasks)
    worker = EphemeralWorker(SPECS, lambda t: t.text.upper(), settings.with_worker(block=0.5))
    run = asyncio.create_task(worker.run())
    try:
        found = await swarm.wait_many(tasks, timeout=30)
        assert len(found) == len(tasks)
        assert all(found[t.id].content == t.text.upper() for t in tasks)
    finally:
        worker.stop()
        await run
    assert worker.summary().done == len(tasks)


@pytest.mark.contract
async def test_a_flooded_spec_does_not_starve_a_quiet_one(swarm: Swarm, settings: Settings) -> None:
    """800 slow-ish tasks on one spec, then one task on another: the quiet spec's
    task is served long before the flood is drained."""
    flood = [Task(spec="alpha", text=f"f{i}") for i in range(800)]
    await swarm.submit_many(flood)

    async def handler(task: object) -> str:
        await asyncio.sleep(0.005)
        return "ok"

    worker = EphemeralWorker(["alpha", "beta"], handler, settings.with_worker(concurrency=4))
    run = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.3)  # the flood is being served
        quiet = await swarm.submit("beta", "quiet one")
        started = time.monotonic()
        await swarm.wait(quiet, timeout=20)
        waited = time.monotonic() - started
        done = await swarm.client.xlen(Keys(settings.redis.namespace).spec("alpha").findings)
        assert done < len(flood), "the quiet task waited for the whole flood"
    finally:
        worker.stop()
        await run
    left = len(flood) - done
    print(f"\nquiet spec served in {waited * 1000:.0f} ms, {left} flood tasks still queued")
