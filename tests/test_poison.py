"""No entry and no handler result can wedge a worker (issue 10, part 1).

Every delivery ends in a finding, a scheduled retry, a dead letter (with its reason
and original bytes) or a release back to the group; a lease is renewed only while
a handler runs; a task released at every shutdown is dead-lettered in the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import redis
import workload
from helpers import await_until

from swarmstream import EphemeralWorker, Settings, Status, Swarm
from swarmstream.keys import GROUP, Keys
from swarmstream.monitor.snapshot import collect
from swarmstream.transport.streams import Entry
from swarmstream.worker.hooks import Hooks
from swarmstream.worker.leases import Leases
from swarmstream.worker.ledger import Ledger

#: every test here runs on a single server, a Redis Cluster and a Sentinel group
pytestmark = pytest.mark.contract

SPEC = "r"
Z400 = "1" + "0" * 400

# The entries of the issue, as a user would XADD them (raw JSON bytes).
ISSUE_BODIES: dict[str, bytes] = {
    "created 400 digits": b'{"id":"c400","text":"x","created":' + Z400.encode() + b"}",
    "timeout 400 digits": b'{"id":"t400","text":"x","timeout":' + Z400.encode() + b"}",
    "lone surrogate in text": b'{"id":"s-text","text":"\\ud800"}',
    "lone surrogate in id": b'{"id":"s-\\udfff","text":"x"}',
    "lone surrogate in shard": b'{"id":"s-shard","text":"x","shard":"a\\ud800"}',
    "100,000-deep array": b"[" * 100_000 + b"]" * 100_000,
    "100,000-deep data": b'{"id":"deep","text":"x","data":' + b"[" * 10**5 + b"]" * 10**5 + b"}",
    "NaN created": b'{"id":"nan","text":"x","created":NaN}',
    "spec empty string": b'{"id":"spec-empty","text":"x","spec":""}',
    "spec zero": b'{"id":"spec-0","text":"x","spec":0}',
    "spec false": b'{"id":"spec-false","text":"x","spec":false}',
    "spec empty list": b'{"id":"spec-list","text":"x","spec":[]}',
}


def _dead_by_origin(raw: redis.Redis, keys: Any) -> dict[str, dict[bytes, bytes]]:
    return {f[b"origin"].decode(): f for _, f in raw.xrange(keys.dead)}


async def _serve(worker: EphemeralWorker) -> asyncio.Task[Any]:
    return asyncio.create_task(asyncio.wait_for(worker.run(), 120))


async def test_the_issue_entries_are_dead_lettered_and_the_worker_serves_on(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    keys = Keys(settings.redis.namespace).spec(SPEC)
    await swarm.streams.ensure_group(SPEC)
    origins = {name: raw.xadd(keys.tasks, {"body": b}).decode() for name, b in ISSUE_BODIES.items()}
    worker = EphemeralWorker(SPEC, lambda t: t.text, settings)
    runner = await _serve(worker)
    try:

        async def all_dead() -> dict[str, dict[bytes, bytes]] | None:
            dead = _dead_by_origin(raw, keys)
            return dead if len(dead) >= len(origins) else None

        dead = await await_until(all_dead, timeout=30, what="every issue entry dead-lettered")
        normal = await swarm.submit(SPEC, "still serving")
        finding = await swarm.wait(normal, timeout=10)
    finally:
        worker.stop()
        await runner
    assert finding.status is Status.OK and finding.content == "still serving"
    for name, origin in origins.items():
        letter = dead[origin]
        assert letter[b"reason"].startswith(b"malformed: "), (name, letter[b"reason"])
        assert letter[b"orig:body"] == ISSUE_BODIES[name], name  # the original bytes
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 0
    for name in ("spec empty string", "spec zero", "spec false", "spec empty list"):
        assert b"spec" in dead[origins[name]][b"reason"], name


async def _async(fn: Any) -> Any:
    return fn()


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (workload.surrogate, "cannot be encoded"),
        (workload.exits, "SystemExit: 3"),
        (workload.unencodable, "cannot be encoded"),
    ],
    ids=["lone surrogate", "SystemExit", "a set in data"],
)
async def test_any_handler_result_ends_in_a_finding(
    swarm: Swarm, settings: Settings, raw: redis.Redis, handler: Any, error: str
) -> None:
    task = await swarm.submit(SPEC, "go", max_attempts=2)
    worker = EphemeralWorker(SPEC, handler, settings)
    runner = await _serve(worker)
    try:
        finding = await swarm.wait(task, timeout=20)
    finally:
        worker.stop()
        await runner
    assert finding.status is Status.FAILED
    assert finding.attempt == 2
    assert error in (finding.error or "")
    keys = Keys(settings.redis.namespace).spec(SPEC)
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 0


async def test_a_job_that_dies_is_dead_lettered_not_renewed(
    swarm: Swarm, settings: Settings, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug inside the worker's own execution path: logged at once, the entry goes to
    the dead-letter stream with the reason, and nothing stays held."""
    worker = EphemeralWorker(SPEC, lambda t: t.text, settings)

    async def broken(owned: Any) -> Any:
        raise RuntimeError("bug in the worker")

    runner = await _serve(worker)
    try:
        await await_until(lambda: _async(lambda: hasattr(worker, "execution")), what="started")
        worker.execution.run = broken  # type: ignore[method-assign]
        task = await swarm.submit(SPEC, "trips a bug")
        finding = await swarm.wait(task, timeout=20)
    finally:
        worker.stop()
        await runner
    keys = Keys(settings.redis.namespace).spec(SPEC)
    assert finding.status is Status.DEAD
    [(_, letter)] = raw.xrange(keys.dead)
    assert letter[b"reason"] == b"worker error while running it: RuntimeError: bug in the worker"
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 0
    assert any("failed" in r.getMessage() and r.levelno >= logging.ERROR for r in caplog.records)


async def test_release_at_every_shutdown_ends_in_a_dead_letter(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    """A task that hangs until its worker is stopped is released without spending an
    attempt, but only max_attempts times: then it is dead-lettered."""
    keys = Keys(settings.redis.namespace).spec(SPEC)
    task = await swarm.submit(SPEC, "hangs", max_attempts=2)
    quick = settings.with_worker(grace=0.2)
    for round_no in (1, 2, 3):
        worker = EphemeralWorker(SPEC, workload.hang, quick)
        runner = await _serve(worker)
        await await_until(
            lambda w=worker: _async(lambda: any(o.started for o in w.ledger)),
            timeout=20,
            what=f"round {round_no}: the handler started",
        )
        worker.stop()
        summary = await runner
        if round_no < 3:
            assert summary.released == 1
            [p] = raw.xpending_range(keys.tasks, GROUP, "-", "+", 10)
            assert p["times_delivered"] == 0  # the next delivery is attempt 1 again
            assert int(raw.get(keys.released(p["message_id"].decode()))) == round_no
    finding = await swarm.wait(task, timeout=5)
    assert finding.status is Status.DEAD
    [(_, letter)] = raw.xrange(keys.dead)
    assert letter[b"reason"].startswith(b"released 2 times without finishing")
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 0


async def test_status_shows_time_since_first_delivery_of_a_renewed_entry(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    """A stuck entry's lease is renewed (its idle time stays low), yet status shows
    how long it has been in flight."""
    keys = Keys(settings.redis.namespace).spec(SPEC)
    await swarm.submit(SPEC, "hangs")
    worker = EphemeralWorker(SPEC, workload.hang, settings.with_worker(grace=0.2))
    runner = await _serve(worker)
    try:
        reader = swarm.transport.stats

        async def in_flight_long() -> Any:
            snap = await collect(reader)
            spec = next(s for s in snap.specs if s.name == SPEC)
            return spec if (spec.oldest_pending_ms or 0) >= 2500 else None

        spec = await await_until(in_flight_long, timeout=20, what="oldest pending >= 2.5 s")
        [p] = raw.xpending_range(keys.tasks, GROUP, "-", "+", 10)
        lease_ms = settings.worker.lease_every * 1000
        assert p["time_since_delivered"] < lease_ms + 500  # renewed, yet...
        assert spec.oldest_pending_ms >= 2500  # ...shown since its first delivery
        assert (
            json.loads(json.dumps((await collect(reader)).to_json()))["specs"][0][
                "oldest_pending_ms"
            ]
            >= 2500
        )
    finally:
        worker.stop()
        await runner


async def test_renewal_after_own_completion_is_not_a_lost_lease(
    swarm: Swarm, settings: Settings, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """renew.lua tells an entry acked (by this worker's own finding, still being
    booked) from one taken by another consumer: no warning, nothing cancelled."""
    keys = Keys(settings.redis.namespace).spec(SPEC)
    await swarm.submit(SPEC, "done already")
    [entry] = await swarm.streams.read([SPEC], "me", 1, 100)
    ledger = Ledger()
    owned = ledger.add(entry)
    assert owned is not None
    owned.writing = True  # its finding is being written...
    raw.xack(keys.tasks, GROUP, entry.entry_id)  # ...and the write has acked it
    hooks = Hooks()
    counts = hooks.counts
    leases = Leases(swarm.streams, ledger, "me", [SPEC], settings.worker, hooks, lambda e: None)
    with caplog.at_level(logging.INFO):
        await leases.renew()
    assert counts["lost"] == 0
    assert (SPEC, entry.entry_id) in ledger
    assert not [r for r in caplog.records if "lost" in r.getMessage()]
    # taken by another consumer: that is a lost lease
    other = await swarm.submit(SPEC, "contested")
    [entry2] = await swarm.streams.read([SPEC], "me", 1, 100)
    assert entry2.fields and other
    ledger.add(Entry(SPEC, entry2.entry_id, entry2.fields, 1))
    job = asyncio.create_task(asyncio.sleep(30))
    ledger.get((SPEC, entry2.entry_id)).job = job  # type: ignore[union-attr]
    raw.xclaim(keys.tasks, GROUP, "thief", 0, [entry2.entry_id])
    await leases.renew()
    assert counts["lost"] == 1
    await asyncio.sleep(0)
    assert job.cancelled()
