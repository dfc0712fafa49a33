"""The worker in-process against real Redis: findings, retries, dead letters,
fencing, leases, trimming, hygiene, ephemeral modes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import pytest
import redis
from helpers import await_until

from swarmstream import EphemeralWorker, Settings, Status, Swarm, Task
from swarmstream.keys import GROUP, Keys
from swarmstream.models import Finding
from swarmstream.transport.streams import DUPLICATE, LOST, RECORDED, Completion

#: every test here runs on a single server, a Redis Cluster and a Sentinel group
pytestmark = pytest.mark.contract


async def _run(worker: EphemeralWorker, timeout: float = 30) -> Any:
    return await asyncio.wait_for(worker.run(), timeout)


async def test_one_finding_per_task_even_when_submitted_twice(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    task = Task(spec="research", text="twice", id="dup-1")
    await swarm.submit_many([task, task])
    worker = EphemeralWorker("research", lambda t: t.text, settings.with_worker(max_tasks=2))
    summary = await _run(worker)
    keys = Keys(settings.redis.namespace).spec("research")
    assert raw.xlen(keys.findings) == 1
    assert summary.done == 1
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 0


async def test_retry_with_backoff_then_success(swarm: Swarm, settings: Settings) -> None:
    import workload

    task = await swarm.submit("research", "flaky", max_attempts=3)
    worker = EphemeralWorker("research", workload.fail_first, settings)
    runner = asyncio.create_task(_run(worker))
    finding = await swarm.wait(task, timeout=20)
    worker.stop()
    summary = await runner
    assert finding.status is Status.OK
    assert finding.attempt == 2
    assert finding.content == "ok at attempt 2"
    assert summary.retried == 1


async def test_a_retry_is_not_released_when_its_worker_stops(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    """A --once worker fails attempt 1 and stops: the entry stays pending with its
    delivery count (not released, which would make attempt 1 come round again), and
    the next worker runs attempt 2 after the backoff."""

    def fail(task: Task) -> str:
        raise RuntimeError("no")

    task = await swarm.submit("research", "fails twice", max_attempts=2)
    first = await EphemeralWorker("research", fail, settings.with_worker(once=True)).run()
    assert first.retried == 1 and first.released == 0
    tasks_key = Keys(settings.redis.namespace).spec("research").tasks
    [row] = raw.xpending_range(tasks_key, GROUP, "-", "+", 10)
    assert row["times_delivered"] == 1
    second = await EphemeralWorker("research", fail, settings.with_worker(once=True)).run()
    assert second.failed == 1
    finding = await swarm.wait(task, timeout=10)
    assert finding.status is Status.FAILED and finding.attempt == 2


async def test_poison_task_dead_lettered_after_max_attempts(
    swarm: Swarm, settings: Settings
) -> None:
    import workload

    poison = await swarm.submit("research", "poison", max_attempts=3)
    worker = EphemeralWorker("research", workload.always_fail, settings)
    runner = asyncio.create_task(_run(worker))
    finding = await swarm.wait(poison, timeout=20)
    # the worker keeps serving after the poison task
    healthy_worker_task = await swarm.submit("research", "fine", max_attempts=1)
    second = await swarm.wait(healthy_worker_task, timeout=20)
    worker.stop()
    await runner
    assert finding.status is Status.FAILED
    assert finding.attempt == 3
    assert "RuntimeError: cannot handle poison" in (finding.error or "")
    assert second.status is Status.FAILED  # same handler, but it was served
    dead = await swarm.dead("research")
    letter = next(d for d in dead if d.task_id == poison.id)
    assert letter.reason == "failed on all 3 attempts"
    assert letter.attempts == 3
    assert "cannot handle poison" in (letter.error or "")


async def test_malformed_entries_go_to_dead_letters_and_worker_keeps_serving(
    swarm: Swarm, settings: Settings
) -> None:
    s = swarm.streams
    bad = {
        "not-msgpack": {"body": b"\xc1\xc1\xc1"},
        "bad-json": {"body": b"{oops"},
        "no-body": {"text": "hello"},
        "no-text": {"body": msgpack.packb({"id": "m-no-text"})},
        "wrong-type": {"body": json.dumps({"id": "m-wrong", "text": ["a"]})},
        "too-big": {"body": msgpack.packb({"id": "m-big", "text": "x" * 5000})},
    }
    for fields in bad.values():
        await s.add_raw("research", fields)
    good = await swarm.submit("research", "still alive")
    worker = EphemeralWorker(
        "research", lambda t: t.text, settings.with_worker(max_entry_bytes=4096)
    )
    runner = asyncio.create_task(_run(worker))
    finding = await swarm.wait(good, timeout=20)
    dead = await await_until(
        lambda: _dead_at_least(swarm, len(bad)), what="all malformed entries dead-lettered"
    )
    worker.stop()
    await runner
    assert finding.status is Status.OK
    reasons = " | ".join(d.reason for d in dead)
    for expected in (
        "neither msgpack nor JSON",
        "not valid JSON",
        "no 'body' field",
        "missing field 'text'",
        "'text' must be str",
        "over the limit",
    ):
        assert expected in reasons
    by_task = {d.task_id: d for d in dead if d.task_id}
    assert set(by_task) >= {"m-no-text", "m-wrong", "m-big"}
    # the original fields are kept, so nothing is lost
    assert by_task["m-big"].fields["body"] == bad["too-big"]["body"]
    # tasks whose id was readable get a final 'dead' finding
    f = await swarm.finding("research", "m-wrong")
    assert f is not None and f.status is Status.DEAD


async def _dead_at_least(swarm: Swarm, n: int) -> Any:
    dead = await swarm.dead("research")
    return dead if len(dead) >= n else None


async def test_handler_timeout_is_a_failed_attempt(swarm: Swarm, settings: Settings) -> None:
    import workload

    task = await swarm.submit("research", "slow", data={"seconds": 5}, timeout=0.2, max_attempts=2)
    worker = EphemeralWorker("research", workload.nap, settings)
    runner = asyncio.create_task(_run(worker))
    finding = await swarm.wait(task, timeout=20)
    worker.stop()
    await runner
    assert finding.status is Status.FAILED
    assert finding.attempt == 2
    assert "timed out after 0.2s" in (finding.error or "")


async def test_fencing_zombie_cannot_record_or_ack(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    """A worker whose entry was reclaimed can neither write a finding nor ack."""
    keys = Keys(settings.redis.namespace).spec("research")
    task = await swarm.submit("research", "contested")
    s = swarm.streams
    [entry] = await s.read(["research"], "zombie", 1, 100)
    raw.xclaim(keys.tasks, GROUP, "thief", 0, [entry.entry_id])  # reclaimed elsewhere
    finding = Finding(task_id=task.id, spec="research", status=Status.OK, content="zombie")
    zombie = [Completion.of(entry.entry_id, finding)]
    assert await s.complete("research", "zombie", zombie) == [LOST]
    assert raw.xlen(keys.findings) == 0
    pending = raw.xpending_range(keys.tasks, GROUP, "-", "+", 10)
    assert [p["consumer"] for p in pending] == [b"thief"]
    # the zombie's renewal must not steal it back either
    assert await s.renew("research", "zombie", [entry.entry_id]) == ([entry.entry_id], [])
    # the new owner records; the owner's replay (a lost reply) is told it recorded
    finding2 = Finding(task_id=task.id, spec="research", status=Status.OK, content="thief")
    thief = [Completion.of(entry.entry_id, finding2)]
    assert await s.complete("research", "thief", thief) == [RECORDED]
    assert await s.complete("research", "thief", thief) == [RECORDED]
    # the zombie, late, is told the finding exists (a duplicate): it recorded nothing
    assert await s.complete("research", "zombie", zombie) == [DUPLICATE]
    assert raw.xlen(keys.findings) == 1
    got = await swarm.finding("research", task.id)
    assert got is not None and got.content == "thief"


async def test_fencing_in_a_batch_wider_than_the_range_reply(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    """complete.lua fences a batch with one ranged XPENDING; when the consumer owns
    more entries in that range than the reply holds, missing ids are checked one by
    one: owned ones are recorded, a reclaimed one in the middle is fenced."""
    keys = Keys(settings.redis.namespace).spec("research")
    tasks = [Task(spec="research", text=f"w{i}", id=f"wide-{i}") for i in range(200)]
    await swarm.submit_many(tasks)
    s = swarm.streams
    entries = await s.read(["research"], "alice", 200, 100)
    assert len(entries) == 200
    middle = entries[100]
    raw.xclaim(keys.tasks, GROUP, "thief", 0, [middle.entry_id])
    picked = [entries[0], middle, entries[-1]]  # range limit 3*2+64 = 70 < 200 owned
    items = [
        Completion.of(
            e.entry_id,
            Finding(task_id=f"wide-{entries.index(e)}", spec="research", status=Status.OK),
        )
        for e in picked
    ]
    assert await s.complete("research", "alice", items) == [RECORDED, LOST, RECORDED]
    assert raw.xlen(keys.findings) == 2
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 198


async def test_complete_accepts_flat_arguments(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    """The flat ARGV form of complete.lua (docs/protocol.md §6.3), for clients that
    do not speak msgpack: per item 5 values, a done and an err key."""
    keys = Keys(settings.redis.namespace).spec("research")
    await swarm.submit_many([Task(spec="research", text="flat", id="flat-1")])
    [entry] = await swarm.streams.read(["research"], "carol", 1, 100)
    body = json.dumps({"task_id": "flat-1", "spec": "research", "status": "ok", "content": "hi"})
    script = swarm.streams.scripts.complete
    ks = [keys.tasks, keys.findings, keys.stats, keys.leases]
    ks += [keys.done("flat-1"), keys.err("flat-1")]
    argv = [GROUP, "carol", 60, 1000, entry.entry_id, "flat-1", "", "ok", body]
    assert await script(keys=ks, args=argv) == [RECORDED]
    assert await script(keys=ks, args=argv) == [RECORDED]  # a replay: the same answer
    other = [GROUP, "dave", *argv[2:]]
    assert await script(keys=ks, args=other) == [DUPLICATE]  # not dave's finding
    got = await swarm.finding("research", "flat-1")
    assert got is not None and got.content == "hi"
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 0


async def test_live_lease_survives_ten_times_claim_idle(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    """A handler running 10x claim_idle keeps its task while others try to reclaim."""
    import workload

    cfg = settings.with_worker(claim_idle=0.4, reclaim_interval=0.05)
    task = await swarm.submit("research", "long", data={"seconds": 4.0})
    slow = EphemeralWorker("research", workload.nap, cfg, name="slow")
    runners = [asyncio.create_task(_run(slow, 60))]

    async def slow_busy() -> bool:
        return any(
            w.name == "slow" and task.id in w.current for w in await swarm.registry.workers()
        )

    await await_until(slow_busy, what="the slow worker running the task")
    thieves = [EphemeralWorker("research", workload.nap, cfg, name=f"thief{i}") for i in range(2)]
    runners += [asyncio.create_task(_run(w, 60)) for w in thieves]
    finding = await swarm.wait(task, timeout=30)
    for w in (slow, *thieves):
        w.stop()
    summaries = await asyncio.gather(*runners)
    assert finding.status is Status.OK
    assert finding.worker == "slow"
    assert finding.attempt == 1
    assert sum(s.reclaimed for s in summaries) == 0
    assert raw.xlen(Keys(settings.redis.namespace).spec("research").findings) == 1


async def test_once_max_tasks_and_idle_exit(swarm: Swarm, settings: Settings) -> None:
    tasks = [Task(spec="research", text=str(i)) for i in range(5)]
    await swarm.submit_many(tasks)
    once = await _run(
        EphemeralWorker(
            "research", lambda t: t.text, settings.with_worker(once=True, concurrency=4)
        )
    )
    assert once.done == 1
    three = await _run(
        EphemeralWorker(
            "research", lambda t: t.text, settings.with_worker(max_tasks=3, concurrency=2)
        )
    )
    assert three.done == 3
    idle = await _run(
        EphemeralWorker("research", lambda t: t.text, settings.with_worker(idle_exit=0.5))
    )
    assert idle.done == 1
    found = await swarm.wait_many(tasks, timeout=5)
    assert len(found) == 5


async def test_heartbeat_state_and_unregister(swarm: Swarm, settings: Settings) -> None:
    import workload

    task = await swarm.submit("research", "watch me", data={"seconds": 1.5})
    worker = EphemeralWorker("research", workload.nap, settings, name="watched")
    runner = asyncio.create_task(_run(worker))

    async def busy() -> Any:
        infos = {w.name: w for w in await swarm.registry.workers()}
        w = infos.get("watched")
        return w if w and w.state.value == "busy" and task.id in w.current else None

    info = await await_until(busy, what="worker busy with the task")
    assert info.specs == ("research",) and info.busy_since is not None
    await swarm.wait(task, timeout=10)
    worker.stop()
    await runner
    assert "watched" not in {w.name for w in await swarm.registry.workers()}


async def test_trim_never_drops_pending_or_undelivered(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    keys = Keys(settings.redis.namespace).spec("research")
    s = swarm.streams
    done_tasks = [Task(spec="research", text=f"d{i}") for i in range(300)]
    await swarm.submit_many(done_tasks)
    await _run(
        EphemeralWorker(
            "research", lambda t: t.text, settings.with_worker(max_tasks=300, concurrency=50)
        )
    )
    pending_task = await swarm.submit("research", "pending")
    [held] = await s.read(["research"], "holder", 1, 100)
    waiting = await swarm.submit_many([Task(spec="research", text=f"w{i}") for i in range(5)])
    removed = await s.trim("research")
    assert removed > 0
    ids = [i.decode() for i, _ in raw.xrange(keys.tasks)]
    assert held.entry_id in ids
    assert raw.xlen(keys.tasks) <= 6 + 100  # approximate trimming keeps at most a node more
    rows = raw.xrange(keys.tasks, held.entry_id, "+")
    texts = [msgpack.unpackb(f[b"body"])["text"] for _, f in rows]
    assert texts == ["pending", *[t.text for t in waiting]]
    assert pending_task.id


async def test_dead_consumers_pruned_only_when_they_own_nothing(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    keys = Keys(settings.redis.namespace).spec("research")
    s = swarm.streams
    await swarm.submit_many([Task(spec="research", text="a"), Task(spec="research", text="b")])
    await s.read(["research"], "owner", 1, 100)  # owns entry a
    [b] = await s.read(["research"], "empty", 1, 100)  # owns entry b, then acks it
    raw.xack(keys.tasks, GROUP, b.entry_id)
    names = {c["name"] for c in await s.consumers("research")}
    assert {"owner", "empty"} <= names
    assert await s.prune_consumer("research", "owner") is False
    assert await s.prune_consumer("research", "empty") is True
    names = {c["name"] for c in await s.consumers("research")}
    assert "owner" in names and "empty" not in names
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 1


async def test_malformed_json_task_gets_a_json_dead_finding(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    await swarm.streams.add_raw("research", {"body": '{"id": "j1"}'})
    worker = EphemeralWorker("research", lambda t: t.text, settings)
    runner = asyncio.create_task(_run(worker))
    finding = await swarm.wait(Task(spec="research", text="", id="j1"), timeout=10)
    worker.stop()
    await runner
    assert finding.status is Status.DEAD
    assert finding.error == "malformed: missing field 'text'"
    keys = Keys(settings.redis.namespace).spec("research")
    [(_, fields)] = raw.xrange(keys.findings)
    assert json.loads(fields[b"body"])["task_id"] == "j1"


async def test_pending_entry_deleted_from_stream_is_recorded(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    keys = Keys(settings.redis.namespace).spec("research")
    await swarm.submit("research", "doomed")
    [entry] = await swarm.streams.read(["research"], "ghost", 1, 100)
    raw.xdel(keys.tasks, entry.entry_id)
    worker = EphemeralWorker("research", lambda t: t.text, settings.with_worker(claim_idle=0.2))
    runner = asyncio.create_task(_run(worker))
    dead = await await_until(lambda: _dead_at_least(swarm, 1), what="a dead letter")
    worker.stop()
    await runner
    assert dead[0].origin_id == entry.entry_id
    assert "deleted" in dead[0].reason
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 0


async def test_blocking_sync_handler_keeps_its_lease(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    """A sync handler that blocks for 5x claim_idle runs in a thread: the worker's
    event loop keeps renewing its lease, so nobody reclaims the task."""
    import workload

    cfg = settings.with_worker(claim_idle=0.4, reclaim_interval=0.05)
    task = await swarm.submit("research", "blocking", data={"seconds": 2.0})
    worker = EphemeralWorker("research", workload.blocking_nap, cfg, name="blocker")
    runner = asyncio.create_task(_run(worker))

    async def started() -> bool:
        return any(
            w.name == "blocker" and task.id in w.current for w in await swarm.registry.workers()
        )

    await await_until(started, what="the blocking handler running")
    thief = EphemeralWorker("research", workload.blocking_nap, cfg, name="thief")
    thief_runner = asyncio.create_task(_run(thief))
    finding = await swarm.wait(task, timeout=20)
    worker.stop()
    thief.stop()
    _, stolen = await asyncio.gather(runner, thief_runner)
    assert finding.worker == "blocker" and finding.attempt == 1
    assert stolen.reclaimed == 0


async def test_worker_prunes_consumers_of_dead_workers(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    keys = Keys(settings.redis.namespace).spec("research")
    await swarm.submit("research", "x")
    [entry] = await swarm.streams.read(["research"], "ghost", 1, 100)
    raw.xack(keys.tasks, GROUP, entry.entry_id)  # the ghost owns nothing now
    await asyncio.sleep(0.5)  # older than 2 x claim_idle below
    worker = EphemeralWorker(
        "research", lambda t: t.text, settings.with_worker(claim_idle=0.2), name="janitor"
    )

    async def ghost_gone() -> bool:
        return "ghost" not in {c["name"] for c in await swarm.streams.consumers("research")}

    runner = asyncio.create_task(_run(worker))
    await await_until(ghost_gone, what="the dead consumer pruned")
    await swarm.submit("research", "for the janitor")  # reading it creates its consumer

    async def janitor_joined() -> bool:
        return "janitor" in {c["name"] for c in await swarm.streams.consumers("research")}

    await await_until(janitor_joined, what="the worker's own consumer")
    worker.stop()
    await runner
    assert "janitor" not in {c["name"] for c in await swarm.streams.consumers("research")}
