"""Lost replies and a link that swallows packets (issue 10, part 2), through the
fault-injecting proxy: a worker whose XREADGROUP reply is lost runs those entries
at once (it looks in its own pending list after a connection failure), without
spending an attempt; a frozen link is abandoned after the command time limit."""

from __future__ import annotations

import statistics
import subprocess
import time
from urllib.parse import urlsplit

import redis
from helpers import spawn, stop, wait_until

from swarmstream import Settings, Task
from swarmstream.codec import decode_finding, encode_task
from swarmstream.keys import GROUP, Keys
from swarmstream.netproxy import FaultProxy

SPEC = "lossy"


def _through(settings: Settings, proxy: FaultProxy, **worker: object) -> Settings:
    flat = {
        "url": proxy.url_for(),
        "namespace": settings.redis.namespace,
        "reclaim_interval": 0.2,
        "heartbeat_interval": 0.5,
        "block": 0.2,
        "grace": 5.0,
        **worker,
    }
    return Settings.from_flat(flat)


def _submit(raw: redis.Redis, settings: Settings, tasks: list[Task]) -> None:
    key = Keys(settings.redis.namespace).spec(SPEC).tasks
    pipe = raw.pipeline(transaction=False)
    for t in tasks:
        pipe.xadd(key, encode_task(t))
    pipe.execute()


def test_one_percent_of_replies_lost_no_task_waits_a_third_of_claim_idle(
    raw: redis.Redis, settings: Settings, redis_url: str
) -> None:
    upstream = urlsplit(redis_url)
    claim_idle = 15.0
    with FaultProxy(
        upstream.hostname or "127.0.0.1", upstream.port or 6379, drop_replies=0.01, seed=10
    ) as proxy:
        via = _through(settings, proxy, claim_idle=claim_idle)
        keys = Keys(via.redis.namespace).spec(SPEC)
        raw.xgroup_create(keys.tasks, GROUP, id="0", mkstream=True)
        worker = spawn(via, [SPEC], "echo", extra=("--concurrency", "8"))
        try:
            tasks: list[Task] = []
            for i in range(0, 3000, 2):  # a steady trickle: about one read per task
                batch = [Task(spec=SPEC, text=f"t{i + j}") for j in range(2)]
                _submit(raw, via, batch)
                tasks += batch
                time.sleep(0.004)
            wait_until(
                lambda: raw.xlen(keys.findings) >= len(tasks), timeout=120, what="every finding"
            )
            dropped = proxy.stats.replies_dropped
        finally:
            err = stop(worker)
    assert worker.returncode == 0, err[-3000:]
    assert dropped >= 5, f"only {dropped} replies were dropped: the test proved nothing"
    found = [decode_finding(i.decode(), f) for i, f in raw.xrange(keys.findings)]
    assert sorted(f.task_id for f in found) == sorted(t.id for t in tasks)  # exactly one each
    waits = [f.finished - f.created for f in found]
    slowest = max(waits)
    print(
        f"\n1% lost replies ({dropped} dropped): p50 {statistics.median(waits) * 1000:.0f} ms, "
        f"slowest {slowest * 1000:.0f} ms (claim_idle {claim_idle:g} s)"
    )
    assert slowest < claim_idle / 3
    assert all(f.attempt == 1 for f in found), "a lost reply spent an attempt"
    assert raw.xpending(keys.tasks, GROUP)["pending"] == 0


def test_a_link_that_swallows_everything_is_dropped_after_the_time_limit(
    raw: redis.Redis, settings: Settings, redis_url: str
) -> None:
    upstream = urlsplit(redis_url)
    with FaultProxy(upstream.hostname or "127.0.0.1", upstream.port or 6379) as proxy:
        via = _through(settings, proxy, claim_idle=30.0, socket_timeout=1.0)
        keys = Keys(via.redis.namespace).spec(SPEC)
        worker: subprocess.Popen[bytes] = spawn(via, [SPEC], "echo")
        try:
            wait_until(lambda: raw.zcard(Keys(via.redis.namespace).workers) == 1, what="worker")
            before = proxy.stats.connections
            proxy.freeze()  # a middlebox swallows every packet, both ways
            wait_until(
                lambda: proxy.stats.connections > before,
                timeout=15,
                what="a new connection: the frozen one was given up",
            )
            tasks = [Task(spec=SPEC, text=f"f{i}") for i in range(20)]
            _submit(raw, via, tasks)
            time.sleep(1.5)
            assert raw.xlen(keys.findings) == 0  # nothing gets through while frozen
            proxy.thaw()
            wait_until(lambda: raw.xlen(keys.findings) >= 20, timeout=30, what="findings")
        finally:
            err = stop(worker)
    assert worker.returncode == 0, err[-3000:]
