"""Shared by the benchmark scripts: the Redis server a run measures against."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
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


def machine_info(redis_version: str) -> dict[str, Any]:
    """Machine, versions and git state, recorded with every result."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    git: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        root = Path(__file__).resolve().parent.parent
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "swarmstream"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        git = {"commit": head, "swarmstream_dirty": bool(dirty)}
    try:
        import hiredis

        hiredis_version = hiredis.__version__
    except ImportError:
        hiredis_version = None
    from importlib.metadata import version

    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "redis_server": redis_version,
        "redis_py": redis.__version__,
        "hiredis": hiredis_version,
        "hiredis_in_use": bool(redis.utils.HIREDIS_AVAILABLE),
        "msgpack": ".".join(map(str, msgpack.version)),
        "swarmstream": version("swarmstream"),
        "git": git,
    }


def interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so servers stop and keys are deleted."""
    raise KeyboardInterrupt
