"""Failover with real topologies: the primary that holds a spec is killed with -9
while 3,000 tasks are submitted with durable_replicas=1 and two worker processes
run. Every acknowledged task gets exactly one finding, and nobody restarts a
worker (issue 11). Done for Redis Cluster (a replica promoted by the cluster) and
for Sentinel (a replica promoted by the sentinels). Also: a spec's slot migrated to
another primary while workers run loses nothing."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import sync_client
from helpers import spawn, stop, wait_until
from redis.crc import key_slot

from swarmstream import Settings, Swarm, Task
from swarmstream.keys import Keys
from swarmstream.topology import LocalCluster, LocalSentinel
from swarmstream.transport.connection import TRANSIENT

SPEC = "failover"
TASKS = 3000
BATCH = 25


def failover_settings(url: str, replicas: int) -> Settings:
    return Settings.from_flat(
        {
            "url": url,
            "namespace": f"fo{uuid.uuid4().hex[:6]}",
            "claim_idle": 3.0,
            "reclaim_interval": 0.2,
            "heartbeat_interval": 0.5,
            "retry_base": 0.05,
            "retry_max": 0.2,
            "block": 0.2,
            "grace": 5.0,
            "durable_replicas": replicas,
            "durable_timeout": 2.0,
        }
    )


async def produce(settings: Settings, kill_after: int, kill: Callable[[], None]) -> float:
    """Submit TASKS tasks in batches, retrying a batch (same task ids) until it is
    acknowledged; call ``kill`` once ``kill_after`` are acknowledged. Returns the
    time of the kill."""
    tasks = [Task(spec=SPEC, text=f"t{i}", id=f"task-{i:05d}") for i in range(TASKS)]
    killed_at = 0.0
    async with Swarm(settings) as swarm:
        for start in range(0, TASKS, BATCH):
            batch = tasks[start : start + BATCH]
            deadline = time.monotonic() + 60
            while True:
                try:
                    await swarm.submit_many(batch)
                    break
                except (*TRANSIENT, Exception) as exc:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"batch {start} never acknowledged: {exc}") from exc
                    await asyncio.sleep(0.1)
            if not killed_at and start + BATCH >= kill_after:
                kill()
                killed_at = time.time()
    return killed_at


def check_exactly_once(raw: Any, settings: Settings, killed_at: float) -> float:
    """Every task has exactly one finding; returns the failover gap (s): from the
    kill to the first finding recorded after it."""
    keys = Keys(settings.redis.namespace).spec(SPEC)

    def all_found() -> bool:
        return int(raw.xlen(keys.findings)) >= TASKS

    wait_until(all_found, timeout=120, what=f"{TASKS} findings")
    rows = raw.xrange(keys.findings)
    per_task = Counter(fields[b"task_id"].decode() for _, fields in rows)
    assert len(per_task) == TASKS, f"{TASKS - len(per_task)} tasks have no finding"
    doubles = [t for t, n in per_task.items() if n > 1]
    assert not doubles, f"tasks with more than one finding: {doubles[:5]}"
    after = [int(i.decode().split("-")[0]) / 1000 for i, _ in rows]
    return min(t for t in after if t >= killed_at) - killed_at


def run_failover(url: str, kill: Callable[[], None]) -> float:
    settings = failover_settings(url, replicas=1)
    workers = [spawn(settings, [SPEC], "echo", name=f"fo-{i}") for i in range(2)]
    raw = sync_client(url)
    try:
        workers_key = Keys(settings.redis.namespace).workers
        wait_until(lambda: raw.zcard(workers_key) == 2, what="both workers up")
        killed_at = asyncio.run(produce(settings, TASKS // 3, kill))
        gap = check_exactly_once(raw, settings, killed_at)
        for w in workers:
            assert w.poll() is None, "a worker died in the failover"
    finally:
        errs = [stop(w) for w in workers]
    for w, err in zip(workers, errs, strict=True):
        assert w.returncode == 0, err[-2000:]
    print(f"\nfailover gap (kill -9 to the first finding after it): {gap:.2f}s")
    return gap


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path / "cluster", primaries=3, replicas=2)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[LocalSentinel]:
    s = LocalSentinel(tmp_path / "sentinel", replicas=2, sentinels=3)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_cluster_failover_loses_no_acknowledged_task(cluster: LocalCluster) -> None:
    """The spec's primary dies mid-run; the cluster promotes one of its replicas."""
    victim = {}

    def kill() -> None:
        key = Keys("x").spec(SPEC).tasks  # the slot depends on the hash tag only
        victim["port"] = cluster.primary_for_key(key)
        cluster.kill9(victim["port"])

    # every node in the URL, as a production config would list them: the one a
    # plain redis:// URL names may be the primary that dies
    every_node = ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes)
    run_failover(f"redis+cluster://{every_node}", kill)
    assert cluster.wait_failover(victim["port"]) != victim["port"]


def test_sentinel_failover_loses_no_acknowledged_task(sentinel: LocalSentinel) -> None:
    """The primary dies mid-run; the sentinels promote a replica, clients follow."""
    old = sentinel.primary_port
    run_failover(sentinel.url, lambda: sentinel.kill9_primary() and None)
    assert sentinel.wait_failover(old) != old


def test_slot_migration_while_workers_run_loses_nothing(local_cluster: LocalCluster) -> None:
    """A spec's hash slot moves to another primary (MIGRATING/IMPORTING, ASK, then
    MOVED) while tasks are submitted and run: exactly one finding each."""
    redis_url = local_cluster.url
    settings = failover_settings(redis_url, replicas=0)
    slot = key_slot(Keys("x").spec(SPEC).tasks.encode())
    source = local_cluster.primary_for_slot(slot)
    target = next(p for p in (n.port for n in local_cluster.nodes) if p != source and _primary(p))
    workers: list[subprocess.Popen[bytes]] = [
        spawn(settings, [SPEC], "echo", name=f"mig-{i}") for i in range(2)
    ]
    try:
        asyncio.run(produce(settings, TASKS // 2, lambda: local_cluster.migrate_slot(slot, target)))
        raw = sync_client(redis_url.replace("redis://", "redis+cluster://"))
        check_exactly_once(raw, settings, 0.0)
        assert local_cluster.primary_for_slot(slot) == target
    finally:
        for w in workers:
            stop(w)


def _primary(port: int) -> bool:
    import redis

    with redis.Redis(port=port) as r:
        return bool(r.info("replication")["role"] == "master")
