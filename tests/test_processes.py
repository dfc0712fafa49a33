"""Real worker processes: kill -9 mid-task, SIGTERM drain, --once, crash loops,
kill storms and killed Redis connections. Nothing is lost, nothing doubles."""

from __future__ import annotations

import collections
import json
import random
import signal
import subprocess
import time

import pytest
import redis
from helpers import busy_task, findings_of, kill9, spawn, stop, wait_until

from swarmstream import Settings, Task
from swarmstream.codec import decode_finding
from swarmstream.keys import GROUP, Keys
from swarmstream.models import Status
from swarmstream.transport.streams import Streams  # noqa: F401 - documents the layer under test

SPEC = "research"


def _submit(raw: redis.Redis, settings: Settings, tasks: list[Task]) -> None:
    from swarmstream import codec

    keys = Keys(settings.redis.namespace)
    pipe = raw.pipeline(transaction=False)
    pipe.xgroup_create(keys.spec(SPEC).tasks, GROUP, id="0", mkstream=True)
    pipe.sadd(keys.specs, SPEC)
    for t in tasks:
        pipe.xadd(keys.spec(t.spec).tasks, codec.encode_task(t))  # type: ignore[arg-type]
    pipe.execute(raise_on_error=False)


def _findings(raw: redis.Redis, settings: Settings) -> list:  # type: ignore[type-arg]
    keys = Keys(settings.redis.namespace).spec(SPEC)
    return [decode_finding(i.decode(), f) for i, f in raw.xrange(keys.findings)]


@pytest.mark.contract
def test_kill9_mid_task_recovered_at_attempt_2(raw: redis.Redis, settings: Settings) -> None:
    task = Task(spec=SPEC, text="survive", data={"seconds": 3.0})
    _submit(raw, settings, [task])
    victim = spawn(settings, [SPEC], "workload:nap", name="victim")
    try:
        wait_until(lambda: busy_task(raw, settings, "victim") == task.id, what="victim busy")
        kill9(victim)
        rescuer = spawn(settings, [SPEC], "workload:nap", name="rescuer")
        wait_until(
            lambda: len(findings_of(raw, settings, SPEC)) >= 1, timeout=30, what="the finding"
        )
        stop(rescuer)
    finally:
        kill9(victim)
    found = _findings(raw, settings)
    assert len(found) == 1
    assert found[0].task_id == task.id
    assert found[0].status is Status.OK
    assert found[0].worker == "rescuer"
    assert found[0].attempt == 2


@pytest.mark.contract
def test_sigterm_drains_in_flight_and_leaves_the_rest(raw: redis.Redis, settings: Settings) -> None:
    tasks = [Task(spec=SPEC, text=f"t{i}", data={"seconds": 1.0}) for i in range(6)]
    _submit(raw, settings, tasks)
    w = spawn(settings, [SPEC], "workload:nap", extra=("--concurrency", "2"), name="drainer")
    wait_until(lambda: busy_task(raw, settings, "drainer"), what="drainer busy")
    started = time.monotonic()
    err = stop(w)
    assert w.returncode == 0, err
    assert time.monotonic() - started < settings.worker.grace
    done = _findings(raw, settings)
    assert len(done) == 2, "the two in-flight tasks finish during the drain"
    keys = Keys(settings.redis.namespace).spec(SPEC)
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 0
    # the rest is still there for the next worker, each handled exactly once
    w2 = spawn(settings, [SPEC], "workload:nap", extra=("--concurrency", "4"))
    wait_until(lambda: len(findings_of(raw, settings, SPEC)) >= 6, timeout=30, what="all done")
    stop(w2)
    found = _findings(raw, settings)
    assert sorted(f.task_id for f in found) == sorted(t.id for t in tasks)
    assert all(f.attempt == 1 for f in found)


def test_drain_past_grace_releases_without_spending_an_attempt(
    raw: redis.Redis, settings: Settings
) -> None:
    task = Task(spec=SPEC, text="too slow", data={"seconds": 30})
    _submit(raw, settings, [task])
    w = spawn(settings, [SPEC], "workload:nap", extra=("--grace", "0.5"), name="hasty")
    wait_until(lambda: busy_task(raw, settings, "hasty") == task.id, what="hasty busy")
    stop(w)
    assert w.returncode == 0
    keys = Keys(settings.redis.namespace).spec(SPEC)
    [p] = raw.xpending_range(keys.tasks, GROUP, "-", "+", 10)
    assert p["times_delivered"] == 0  # given back: the next delivery is attempt 1 again
    assert p["time_since_delivered"] >= settings.worker.claim_idle * 1000


def test_once_runs_one_task_and_exits(raw: redis.Redis, settings: Settings) -> None:
    _submit(raw, settings, [Task(spec=SPEC, text=f"o{i}") for i in range(3)])
    w = spawn(settings, [SPEC], "echo", extra=("--once",))
    assert w.wait(30) == 0
    if w.stderr:
        w.stderr.close()
    assert len(_findings(raw, settings)) == 1


@pytest.mark.contract
def test_crash_loop_is_dead_lettered(raw: redis.Redis, settings: Settings) -> None:
    """A task that kills its worker every time ends in the dead-letter stream."""
    task = Task(spec=SPEC, text="kaboom", max_attempts=2)
    _submit(raw, settings, [task])
    keys = Keys(settings.redis.namespace).spec(SPEC)
    deadline = time.monotonic() + 60
    crashes = 0
    while not raw.exists(keys.done(task.id)):
        assert time.monotonic() < deadline, "crash loop never dead-lettered"
        w = spawn(settings, [SPEC], "workload:crash")

        def crashed_or_buried(w: subprocess.Popen[bytes] = w) -> bool:
            return w.poll() is not None or bool(raw.exists(keys.done(task.id)))

        try:
            wait_until(
                crashed_or_buried,
                timeout=30,
                what="a crash or the dead letter",
            )
        finally:
            crashed = w.poll() == -signal.SIGKILL
            kill9(w)
        crashes += crashed
    assert crashes == 2
    [finding] = _findings(raw, settings)
    assert finding.status is Status.DEAD
    [(_, letter)] = raw.xrange(keys.dead)
    assert b"delivered 3 times, max_attempts is 2" in letter[b"reason"]
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 0


@pytest.mark.contract
@pytest.mark.timeout(240)
def test_kill_storm_10k_tasks_exactly_one_finding_each(
    raw: redis.Redis, settings: Settings
) -> None:
    """10,000 tasks, 4 workers, 2 of them killed -9 and restarted over and over."""
    fast = Settings.from_flat({**_flat(settings), "claim_idle": 1.0})
    tasks = [Task(spec=SPEC, text=f"s{i}", data={"seconds": 0.02}) for i in range(10_000)]
    _submit(raw, fast, tasks)
    steady = [spawn(fast, [SPEC], "workload:nap", extra=("-c", "8")) for _ in range(2)]
    victims = [spawn(fast, [SPEC], "workload:nap", extra=("-c", "8")) for _ in range(2)]
    kills = 0
    rng = random.Random(7)
    try:
        while len(findings_of(raw, fast, SPEC)) < len(tasks) and kills < 400:
            time.sleep(rng.uniform(0.3, 0.8))
            i = rng.randrange(2)
            if len(findings_of(raw, fast, SPEC)) >= len(tasks):
                break
            kill9(victims[i])
            kills += 1
            victims[i] = spawn(fast, [SPEC], "workload:nap", extra=("-c", "8"))
        wait_until(
            lambda: len(findings_of(raw, fast, SPEC)) >= len(tasks),
            timeout=120,
            what="all 10,000 findings",
        )
    finally:
        for p in steady + victims:
            kill9(p)
    counts = collections.Counter(f[b"task_id"].decode() for f in findings_of(raw, fast, SPEC))
    assert kills >= 3
    assert len(counts) == len(tasks)
    assert set(counts) == {t.id for t in tasks}
    assert max(counts.values()) == 1
    found = _findings(raw, fast)
    assert collections.Counter(f.status for f in found) == {Status.OK: len(tasks)}
    assert sum(f.attempt >= 2 for f in found) >= kills, "kills landed mid-task and were recovered"


def test_killed_redis_connections_recover(raw: redis.Redis, settings: Settings) -> None:
    tasks = [Task(spec=SPEC, text=f"c{i}", data={"seconds": 0.005}) for i in range(2000)]
    _submit(raw, settings, tasks)
    workers = [
        spawn(settings, [SPEC], "workload:nap", extra=("-c", "8"), name=f"conn{i}")
        for i in range(2)
    ]
    try:
        wait_until(lambda: len(findings_of(raw, settings, SPEC)) >= 300, what="progress")
        killed = 0
        for client in raw.client_list():
            if client["name"].startswith("swarmstream:conn"):
                raw.client_kill_filter(_id=client["id"])
                killed += 1
        assert killed >= 2
        wait_until(
            lambda: len(findings_of(raw, settings, SPEC)) >= len(tasks),
            timeout=60,
            what="all findings after CLIENT KILL",
        )
    finally:
        for w in workers:
            stop(w)
    ids = [f[b"task_id"] for f in findings_of(raw, settings, SPEC)]
    assert len(ids) == len(set(ids)) == len(tasks)
    for w in workers:
        assert w.returncode == 0


def _flat(settings: Settings) -> dict[str, object]:
    out: dict[str, object] = {"url": settings.redis.url, "namespace": settings.redis.namespace}
    w = settings.worker
    out.update(
        claim_idle=w.claim_idle,
        reclaim_interval=w.reclaim_interval,
        heartbeat_interval=w.heartbeat_interval,
        retry_base=w.retry_base,
        retry_max=w.retry_max,
        grace=w.grace,
        block=w.block,
    )
    return out


_ = json
