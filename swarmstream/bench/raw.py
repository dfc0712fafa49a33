"""The plain redis-py reference of ``swarmstream bench`` and the helpers both sides
share. The consumer runs in its own process: ``python -m swarmstream.bench``."""

from __future__ import annotations

import contextlib
import itertools
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any

import msgpack
import redis
from redis.asyncio import Redis

from swarmstream import __version__
from swarmstream.bench.report import BATCH, RAW_BLOCK_MS, RAW_COUNT
from swarmstream.keys import GROUP

# -- the raw reference consumer (its own process: python -m swarmstream.bench) ----


def raw_consumer(url: str, stream: str, results: str, name: str, count: int = RAW_COUNT) -> None:
    """Plain redis-py + hiredis: read up to ``count`` tasks, then one pipeline per
    batch with an XADD of a small msgpack result per task and one XACK. SIGTERM ends it.
    The reference of ``swarmstream bench`` and of benchmarks/ alike."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    client: Any = redis.Redis.from_url(url, client_name=name)  # replies are bytes
    packb, unpackb = msgpack.packb, msgpack.unpackb
    while True:
        reply = client.xreadgroup(GROUP, name, {stream: ">"}, count=count, block=RAW_BLOCK_MS)
        for _stream, entries in reply or ():
            pipe = client.pipeline(transaction=False)
            for _id, fields in entries:
                task = unpackb(fields[b"body"])
                out = {"task_id": task["id"], "status": "ok", "content": task["text"]}
                out |= {"worker": name, "finished": time.time()}
                pipe.xadd(results, {"task_id": task["id"], "status": "ok", "body": packb(out)})
            pipe.xack(stream, GROUP, *(entry[0] for entry in entries))
            pipe.execute()


# -- helpers ---------------------------------------------------------------------


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a child's process group, then SIGKILL it if it does not exit in time."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


async def xadd_batches(
    client: Redis, stream: str, entries: Iterable[dict[Any, Any]], batch: int = BATCH
) -> None:
    """XADD ``entries`` to ``stream``, ``batch`` per pipelined round trip."""
    items = iter(entries)
    while chunk := list(itertools.islice(items, batch)):
        async with client.pipeline(transaction=False) as pipe:
            for fields in chunk:
                pipe.xadd(stream, fields)
            await pipe.execute()


async def drop_namespace(client: Redis, namespace: str) -> int:
    """UNLINK every key of ``namespace`` (SCAN MATCH ns:*), and nothing else."""
    removed, batch = 0, []
    async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            removed, batch = removed + await client.unlink(*batch), []
    return removed + (await client.unlink(*batch) if batch else 0)


def machine_info(redis_version: str) -> dict[str, Any]:
    hiredis: Any = None
    with contextlib.suppress(ImportError):
        import hiredis
    return {
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "redis_py": redis.__version__,
        "hiredis": hiredis.__version__ if hiredis and redis.utils.HIREDIS_AVAILABLE else None,
        "swarmstream": __version__,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["_raw-consumer"] and len(argv) in (5, 6):
        url, stream, results, name = argv[1:5]
        raw_consumer(url, stream, results, name, int(argv[5]) if len(argv) == 6 else RAW_COUNT)
        return 0
    print("internal use: _raw-consumer URL STREAM RESULTS NAME [COUNT]", file=sys.stderr)
    return 2
