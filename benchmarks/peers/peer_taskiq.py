"""taskiq with taskiq-redis's stream broker on the peer benchmark's no-op workload.

Worker: ``taskiq worker tasks_taskiq:broker --workers 1 --max-async-tasks 100`` (one
worker process under taskiq's supervisor process; 100 is taskiq's default and the
only concurrency knob for async tasks), broker ``RedisStreamBroker`` with its
defaults (XREADGROUP COUNT 100 BLOCK 2000), results in ``RedisAsyncResultBackend``,
ack after the result is saved (taskiq's default ``when_saved``).

Throughput: ``noop.kiq()`` has no bulk form, so the driver awaits ``asyncio.gather``
of ``kiq()`` calls in batches of 100; completion is the result backend's readiness
check (``EXISTS`` of the result key, what ``task.is_ready()`` does), pipelined for a
window of the oldest unfinished tasks. Latency: ``await noop.kiq()`` then
``await task.wait_result(check_interval=0.001)``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
from typing import Any

import harness

#: taskiq worker's default --max-async-tasks
CONCURRENCY = int(os.environ.get("PEER_CONCURRENCY", "100"))
#: kiq() calls awaited together
ENQUEUE_BATCH = 100
#: how often wait_result() checks the result backend in latency mode (seconds)
CHECK_INTERVAL = 0.001
#: result keys checked per pipelined readiness poll in throughput mode
WINDOW = 200
#: seconds between SIGTERM and SIGKILL of the worker
STOP_TIMEOUT = 3.0


class Completion:
    """Counts finished tasks of one batch by the result backend's readiness check
    (``EXISTS <result key>``), pipelined over the oldest unfinished tasks."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.pending: collections.deque[str] = collections.deque()
        self.total = 0

    def track(self, keys: list[str]) -> None:
        """Count these result keys (the batch just enqueued)."""
        self.pending.extend(keys)
        self.total += len(keys)

    async def count(self) -> int:
        while self.pending:
            window = [self.pending[i] for i in range(min(WINDOW, len(self.pending)))]
            async with self.client.pipeline(transaction=False) as pipe:
                for key in window:
                    pipe.exists(key)
                found = await pipe.execute()
            done = {k for k, f in zip(window, found, strict=True) if f}
            for _ in range(len(window)):
                key = self.pending.popleft()
                if key not in done:
                    self.pending.append(key)
            if len(done) < len(window):
                break
        return self.total - len(self.pending)


async def kick(noop: Any, n: int) -> list[Any]:
    """``noop.kiq()`` n times, ``ENQUEUE_BATCH`` awaited together."""
    tasks: list[Any] = []
    for start in range(0, n, ENQUEUE_BATCH):
        size = min(ENQUEUE_BATCH, n - start)
        tasks.extend(await asyncio.gather(*(noop.kiq() for _ in range(size))))
    return tasks


async def probe(noop: Any, proc: Any) -> None:
    """Readiness: one task goes through (Redis 7.0 creates the group's consumer only
    when XREADGROUP returns entries, so there is nothing else to observe)."""
    task = await noop.kiq()
    await harness.await_until(
        task.is_ready, harness.READY_TIMEOUT, "the first task's result", proc=proc
    )


async def check_results(client: Any, backend: Any, keys: list[str]) -> int:
    """Untimed: every result exists and none is an error; returns the count."""
    ok = 0
    for start in range(0, len(keys), 1000):
        for raw in await client.mget(keys[start : start + 1000]):
            if raw is None:
                raise harness.PeerError("a result is missing")
            if backend.serializer.loadb(raw).get("is_err"):
                raise harness.PeerError("a task failed")
            ok += 1
    return ok


async def measure(
    args: argparse.Namespace, proc: Any
) -> tuple[float | None, list[float], dict[str, Any]]:
    """Readiness, warm-up, then the timed part; returns (seconds, samples, extra)."""
    import redis.asyncio as aioredis
    import tasks_taskiq as app

    client = aioredis.Redis.from_url(args.url)
    backend = app.broker.result_backend
    await app.broker.startup()
    try:
        await probe(app.noop, proc)
        for task in await kick(app.noop, args.warmup):
            await task.wait_result(check_interval=CHECK_INTERVAL, timeout=harness.TASK_TIMEOUT)

        if args.mode == "latency":

            async def roundtrip(i: int) -> None:
                task = await app.noop.kiq()
                res = await task.wait_result(
                    check_interval=CHECK_INTERVAL, timeout=harness.TASK_TIMEOUT
                )
                if res.is_err:
                    raise harness.PeerError(f"task failed: {res.error}")

            return None, await harness.ameasure_latency(roundtrip, args.n, proc=proc), {}

        tasks: list[Any] = []
        completion = Completion(client)

        enqueued: list[float] = []

        async def enqueue(n: int) -> None:
            t0 = harness.now()
            tasks.extend(await kick(app.noop, n))
            enqueued.append(harness.now() - t0)
            completion.track([f"{app.RESULT_PREFIX}:{t.task_id}" for t in tasks])

        seconds = await harness.ameasure_throughput(enqueue, completion.count, args.n, proc=proc)
        await check_results(client, backend, [f"{app.RESULT_PREFIX}:{t.task_id}" for t in tasks])
        return seconds, [], {"enqueue_s": sum(enqueued)}
    finally:
        await app.broker.shutdown()
        await client.aclose()


def main(args: argparse.Namespace) -> dict[str, Any]:
    extra = {"PEER_URL": args.url, "PEER_PREFIX": args.prefix}
    os.environ.update(extra)
    import taskiq_redis  # noqa: F401  (fails early if missing)

    version = harness.package_version("taskiq")
    redis_version = harness.package_version("taskiq-redis")
    patterns = [f"{args.prefix}:*", f"autoclaim:*:{args.prefix}:*"]
    harness.delete_keys(args.url, patterns)
    argv = [harness.bin_path("taskiq"), "worker", "tasks_taskiq:broker", "--workers", "1"]
    argv += ["--max-async-tasks", str(CONCURRENCY), "--log-level", "WARNING"]
    proc = harness.start_worker(argv, args.workdir, harness.worker_env(extra), name="taskiq")
    try:
        seconds, samples, more = asyncio.run(measure(args, proc))
    finally:
        # taskiq 0.13 + taskiq-redis 1.2.4 does not exit on SIGTERM while the stream is
        # empty (the broker's listen() only yields on messages), hence the short wait
        # before the SIGKILL
        harness.stop_worker(proc, timeout=STOP_TIMEOUT)
        harness.delete_keys(args.url, patterns)
    settings = {
        "concurrency": CONCURRENCY,
        "pool": "asyncio (--max-async-tasks)",
        "worker_processes": "1 (--workers 1: one worker process under taskiq's supervisor)",
        "max_async_tasks": CONCURRENCY,
        "max_prefetch": 0,
        "broker": "RedisStreamBroker (xread_count 100, xread_block 2000 ms: defaults)",
        "ack_type": "when_saved (default)",
        "result_backend": "RedisAsyncResultBackend (pickle, kept without expiry)",
        "enqueue": f"asyncio.gather of kiq() in batches of {ENQUEUE_BATCH} (no bulk API)",
        "wait_result_check_interval_s": CHECK_INTERVAL,
        "log_level": "WARNING",
    }
    notes = (
        "--max-async-tasks 100 is taskiq's default and its only concurrency setting for "
        "async tasks; per-task INFO logging off (--log-level WARNING). wait_result() polls "
        "the backend (EXISTS) every check_interval; 1 ms is the smallest sensible value "
        "(default 0.2 s)."
    )
    if args.mode == "latency":
        completion = (
            "await task.wait_result(check_interval=0.001): the result backend's EXISTS "
            "polled every 1 ms, then GET of the result"
        )
    else:
        completion = (
            "result backend readiness (EXISTS of each task's result key, as "
            "task.is_ready()), pipelined over the 200 oldest unfinished tasks every 5 ms; "
            "every result is checked (not an error) after the clock stops"
        )
    return harness.result(
        args,
        peer="taskiq",
        label=f"taskiq {version} + taskiq-redis {redis_version} (RedisStreamBroker)",
        version=version,
        settings=settings,
        completion=completion,
        seconds=seconds,
        samples=samples if args.mode == "latency" else None,
        notes=notes,
        **more,
    )


if __name__ == "__main__":
    harness.run_main(main, __doc__ or "")
