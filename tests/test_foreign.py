"""A producer and workers written from docs/protocol.md only (tests/foreign_agent.py:
plain redis-py and the Lua files) take part in a swarm next to a swarmstream worker:
1,000 tasks, a foreign worker killed with -9 mid-run, exactly one finding each, and
every finding readable by swarmstream (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import redis
from helpers import TESTS, kill9, spawn, stop, wait_until

from swarmstream import Settings, Swarm
from swarmstream.keys import Keys

SPEC = "foreign"
COUNT = 1000
LUA = Path(__file__).resolve().parent.parent / "swarmstream" / "lua"


def agent(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(TESTS / "foreign_agent.py"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


async def test_foreign_producer_and_workers_join_a_swarm(
    settings: Settings, raw: redis.Redis
) -> None:
    url, ns = settings.redis.url, settings.redis.namespace
    keys = Keys(ns)
    ours = spawn(settings, [SPEC], "echo", name="ours", extra=("--concurrency", "1"))
    foreign: list[subprocess.Popen[bytes]] = []
    try:
        # our worker publishes NS:protocol (claim_idle and the rest) for the others
        wait_until(lambda: raw.exists(keys.protocol), what="the protocol record")
        foreign.append(agent("work", url, ns, SPEC, "foreign-a", str(LUA)))

        def a_ready() -> bool:
            assert foreign[0].poll() is None, foreign[0].communicate()[1].decode()[-2000:]
            return bool(raw.exists(keys.worker("foreign-a")))

        wait_until(a_ready, what="the foreign worker's heartbeat")
        producer = agent("produce", url, ns, SPEC, str(COUNT))
        _, err = producer.communicate(timeout=30)
        assert producer.returncode == 0, err.decode()
        findings = keys.spec(SPEC).findings

        def by_a() -> bool:
            rows = raw.xrange(findings)
            return sum(f[b"worker"] == b"foreign-a" for _, f in rows) >= 50

        wait_until(by_a, timeout=30, what="the foreign worker at work")
        kill9(foreign[0])  # mid-run: what it held is reclaimed after claim_idle
        foreign.append(agent("work", url, ns, SPEC, "foreign-b", str(LUA)))
        wait_until(lambda: raw.xlen(findings) >= COUNT, timeout=60, what="every finding")
    finally:
        for proc in foreign:
            kill9(proc)
        stop(ours)
    rows = raw.xrange(keys.spec(SPEC).findings)
    per_task = Counter(f[b"task_id"] for _, f in rows)
    assert len(per_task) == COUNT and set(per_task.values()) == {1}
    workers = Counter(f[b"worker"].decode() for _, f in rows)
    assert workers["ours"] and workers["foreign-a"] and workers["foreign-b"], workers
    async with Swarm(settings) as swarm:  # the foreign findings decode as ours do
        found = await swarm.findings(SPEC)
    assert len(found) == COUNT
    assert all(f.content.lower() == f"task {int(f.task_id.split('-')[1])}" for f in found)
