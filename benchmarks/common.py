"""Shared by the benchmark scripts: the Redis server a run measures against."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from swarmstream.embedded import EmbeddedRedis, free_port


@dataclass(frozen=True)
class Server:
    """The server of one run: ``pid`` is set for an embedded one (for its CPU time)."""

    url: str
    tmp: Path
    pid: int | None
    embedded: bool
    version: str


@contextlib.contextmanager
def redis_server(url: str | None, prefix: str = "swarmstream-bench-") -> Iterator[Server]:
    """Use ``url``, or start an embedded redis-server (no persistence) on a free port
    in a temporary folder, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = None
        try:
            if url is None:
                server = EmbeddedRedis(dir=Path(tmp) / "redis", port=free_port(), appendonly=False)
                url = server.start()
            client = redis.Redis.from_url(url)
            try:
                version = str(client.info("server").get("redis_version"))
            finally:
                client.close()
            pid = server.process.pid if server and server.process else None
            yield Server(url, Path(tmp), pid, server is not None, version)
        finally:
            if server is not None:
                server.stop()
