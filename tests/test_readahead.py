"""Read-ahead (``swarmstream.worker.readahead``) against real Redis: a slow handler
gets none, a fast one behind a delayed link holds more than its slots, queued entries
are released on stop without spending an attempt, and max_tasks is never exceeded."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
import redis
from helpers import await_until

from swarmstream import EphemeralWorker, Settings, Swarm, Task
from swarmstream.keys import GROUP, Keys
from swarmstream.netproxy import FaultProxy
from swarmstream.worker import WorkerSummary
from swarmstream.worker.readahead import MARGIN, ReadAhead

SPEC = "ra"


def _pending(raw: redis.Redis, settings: Settings, consumer: str) -> int:
    tasks = Keys(settings.redis.namespace).spec(SPEC).tasks
    for c in raw.xinfo_consumers(tasks, GROUP):
        if c["name"] in (consumer, consumer.encode()):
            return int(c["pending"])
    return 0


async def _submit(swarm: Swarm, n: int) -> None:
    for i in range(0, n, 500):
        await swarm.submit_many([Task(spec=SPEC, text=f"t{j}") for j in range(i, min(n, i + 500))])


def _ahead(**kw: float) -> ReadAhead:
    ra = ReadAhead(8, _Ledger(), lambda o: None, lambda: True, lambda: None, asyncio.Event())
    for k, v in kw.items():
        setattr(ra, k, v)
    return ra


class _Ledger:
    def __len__(self) -> int:
        return 0


def test_no_read_ahead_for_slow_handlers_or_unknown_timings() -> None:
    assert _ahead().target() == 0
    assert _ahead(rtt=0.25, duration=0.001).target() == 0  # no CPU per task yet
    assert _ahead(rtt=0.25, duration=5.0, cpu=1e-4).target() == 0  # slower than PATIENCE RTTs
    near = _ahead(rtt=0.001, duration=0.0001, cpu=1 / 20_000)
    assert near.target() == int(20_000 * 0.001 * MARGIN)  # what its CPU completes, not its slots
    assert _ahead(rtt=0.0003, duration=0.0001, cpu=1 / 5000).target() == 0  # < MIN_AHEAD: none
    fast = _ahead(rtt=0.25, duration=0.001, cpu=1e-5)
    assert fast.target() == fast.cap
    assert fast.want(running=8, remaining=None, ahead=True) == fast.cap
    assert fast.want(running=8, remaining=None, ahead=False) == 0  # a paused spec
    assert fast.want(running=0, remaining=3, ahead=True) == 3  # max_tasks left


async def test_a_slow_handler_reads_only_for_free_slots(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    release = asyncio.Event()

    async def slow(task: Task) -> str:
        await release.wait()
        return task.text

    await _submit(swarm, 40)
    worker = EphemeralWorker(SPEC, slow, settings.with_worker(concurrency=4), name="slow-ra")
    runner = asyncio.create_task(worker.run())
    try:
        await await_until(lambda: _async(worker._running == 4), 20, "4 handlers running")
        await asyncio.sleep(0.5)  # several block periods: a read-ahead would show by now
        assert _pending(raw, settings, "slow-ra") == 4
        assert len(worker.ahead) == 0 and worker.ahead.target() == 0
    finally:
        release.set()
        worker.stop()
        await asyncio.wait_for(runner, 30)


async def test_a_fast_handler_far_away_holds_more_than_its_slots(
    swarm: Swarm, settings: Settings, raw: redis.Redis, redis_url: str
) -> None:
    parts = urlsplit(redis_url)
    if "cluster" in redis_url or parts.hostname is None or parts.port is None:
        pytest.skip("needs a single server")
    await _submit(swarm, 3000)
    async with FaultProxy(parts.hostname, parts.port, delay=0.05) as proxy:
        far = Settings.from_flat(
            {
                "url": f"redis://{parts.hostname}:{proxy.port}/0",
                "namespace": settings.redis.namespace,
            }
        ).with_worker(concurrency=4, block=0.2, grace=5.0)
        worker = EphemeralWorker(SPEC, lambda t: t.text, far, name="fast-ra")
        runner = asyncio.create_task(worker.run())
        peak = 0

        async def held() -> bool:
            nonlocal peak
            peak = max(peak, len(worker.ledger))
            return peak > 4 * 4

        try:
            await await_until(held, 30, "more entries held than slots")
            await await_until(lambda: _async(worker.summary().done == 3000), 60, "all done")
        finally:
            worker.stop()
            await asyncio.wait_for(runner, 30)
    assert worker._running == 0
    assert raw.xpending(Keys(settings.redis.namespace).spec(SPEC).tasks, GROUP)["pending"] == 0


async def test_queued_entries_are_released_on_stop_without_an_attempt(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    await _submit(swarm, 20)
    release = asyncio.Event()
    worker, runner = _reading_ahead(release, settings, target=8, name="stop-ra")
    await await_until(lambda: _async(len(worker.ahead) > 0), 20, "entries queued")
    queued = [o.entry.entry_id for o in worker.ahead.queue]
    assert all(not o.started and o.alive for o in worker.ahead.queue)
    worker.stop()
    release.set()
    summary = await asyncio.wait_for(runner, 30)
    assert summary.done <= 20 - len(queued)
    tasks = Keys(settings.redis.namespace).spec(SPEC).tasks
    for entry_id in queued:
        (item,) = raw.xpending_range(tasks, GROUP, entry_id, entry_id, 1)
        assert item["times_delivered"] == 0  # released: the delivery taken back
        assert raw.get(Keys(settings.redis.namespace).spec(SPEC).released(entry_id)) is None


async def test_max_tasks_is_never_exceeded_with_read_ahead(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    await _submit(swarm, 100)
    worker = EphemeralWorker(
        SPEC, lambda t: t.text, settings.with_worker(concurrency=4, max_tasks=7), name="max-ra"
    )
    worker.ahead.target = lambda: 8  # type: ignore[method-assign]
    summary = await asyncio.wait_for(worker.run(), 30)
    assert summary.done == 7
    tasks = Keys(settings.redis.namespace).spec(SPEC).tasks
    assert raw.xpending(tasks, GROUP)["pending"] == 0  # nothing held beyond the limit
    assert raw.xinfo_groups(tasks)[0]["entries-read"] == 7


async def _async(value: bool) -> bool:
    return value


def _reading_ahead(
    release: asyncio.Event, settings: Settings, target: int, name: str
) -> tuple[EphemeralWorker, asyncio.Task[WorkerSummary]]:
    """A running worker with 2 slots whose handler waits for ``release``, reading
    ``target`` entries ahead as if its timings had shown a fast handler."""

    async def slow(task: Task) -> str:
        await release.wait()
        return task.text

    worker = EphemeralWorker(SPEC, slow, settings.with_worker(concurrency=2), name=name)
    worker.ahead.target = lambda: target  # type: ignore[method-assign]
    return worker, asyncio.create_task(worker.run())


async def test_more_than_a_page_of_queued_entries_is_released_on_stop(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    """Release at exit pages through the worker's pending list (1,000 per call)."""
    await _submit(swarm, 2600)
    release = asyncio.Event()
    worker, runner = _reading_ahead(release, settings, target=2400, name="page-ra")
    await await_until(lambda: _async(len(worker.ledger) > 2000), 30, "over 2,000 entries held")
    worker.stop()
    release.set()
    await asyncio.wait_for(runner, 30)
    tasks = Keys(settings.redis.namespace).spec(SPEC).tasks
    rows = raw.xpending_range(tasks, GROUP, "-", "+", 5000, consumername="page-ra")
    assert len(rows) > 2000
    idle_ms = settings.worker.claim_idle * 1000
    assert all(r["time_since_delivered"] >= idle_ms for r in rows)  # all reclaimable now
    assert all(r["times_delivered"] == 0 for r in rows)  # none spent an attempt
