"""Shared test helpers: waiting on conditions with a deadline, worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import redis

from swarmstream import Settings
from swarmstream.keys import Keys
from swarmstream.worker import EphemeralWorker
from swarmstream.worker.process import spawn_worker

T = TypeVar("T")
TESTS = Path(__file__).resolve().parent


def wait_until(cond: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``cond`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


async def await_until(
    cond: Callable[[], Awaitable[T]], timeout: float = 20.0, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def spawn(
    settings: Settings,
    specs: list[str],
    handler: str = "echo",
    extra: tuple[str, ...] = (),
    name: str | None = None,
    stderr: int | IO[bytes] = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """A worker subprocess that can import tests/workload.py.

    Its stderr is a pipe that only :func:`stop` reads: a test whose worker logs more
    than a pipe holds (64 KiB) must pass a file instead, or the worker blocks on it."""
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return spawn_worker(
        specs,
        handler,
        settings,
        name=name,
        extra=(
            "--grace",
            str(settings.worker.grace),
            *extra,
        ),
        env={
            **env,
            "SWARMSTREAM_RECLAIM_INTERVAL": str(settings.worker.reclaim_interval),
            "SWARMSTREAM_HEARTBEAT_INTERVAL": str(settings.worker.heartbeat_interval),
            "SWARMSTREAM_RETRY_BASE": str(settings.worker.retry_base),
            "SWARMSTREAM_RETRY_MAX": str(settings.worker.retry_max),
            "SWARMSTREAM_BLOCK": str(settings.worker.block),
        },
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def kill9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker process (and its process group) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    if proc.stderr:
        proc.stderr.close()


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> str:
    """SIGTERM and wait; returns the process's stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill9(proc)
        raise
    return err.decode(errors="replace") if err else ""


def findings_of(raw: redis.Redis, settings: Settings, spec: str) -> list[dict[bytes, bytes]]:
    """Every finding entry of a spec, as raw field maps."""
    key = Keys(settings.redis.namespace).spec(spec).findings
    return [fields for _, fields in raw.xrange(key)]


def busy_task(raw: redis.Redis, settings: Settings, worker: str) -> str | None:
    """The task id a worker reports as current in its heartbeat, if any."""
    import json

    cur = raw.hget(Keys(settings.redis.namespace).worker(worker), "current")
    ids = json.loads(cur) if cur else []
    return ids[0] if ids else None


@contextlib.asynccontextmanager
async def running_worker(
    specs: str | Sequence[str], handler: Any, settings: Settings, concurrency: int | None = 2
) -> AsyncIterator[EphemeralWorker]:
    """An in-process worker of ``specs`` running ``handler`` until the block ends
    (``concurrency`` None: the settings' own)."""
    if concurrency is not None:
        settings = settings.with_worker(concurrency=concurrency)
    worker = EphemeralWorker(specs if isinstance(specs, str) else list(specs), handler, settings)
    job = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(job, 30)
