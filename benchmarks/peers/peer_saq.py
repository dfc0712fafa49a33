"""saq (Redis queue) on the peer benchmark's no-op workload.

Worker: ``saq tasks_saq.settings --workers 1`` (one process) with saq's default
``concurrency=10`` (ten dequeue loops, each blocked in BLMOVE) and every other
setting at its default.

Throughput: saq has no bulk enqueue (``Queue.map`` enqueues with ``asyncio.gather``),
so the driver awaits ``asyncio.gather`` of ``queue.enqueue("noop")`` in batches of
100 (saq throttles a queue to 20 concurrent operations); completion is
``queue.count("incomplete")`` reaching 0 (a finished job leaves the queue's
``incomplete`` set). Latency: ``job = await queue.enqueue("noop")`` then
``await job.refresh(until_complete=...)``, which waits for the job's status
notification (Redis pub/sub), with one long-lived ``queue.listen`` on an unused key
keeping saq's pub/sub multiplexer subscribed, as in a client that waits on jobs
concurrently (see ``KeepSubscribed``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from typing import Any

import harness

#: saq.Worker's default concurrency
CONCURRENCY = int(os.environ.get("PEER_CONCURRENCY", "10"))
#: enqueue() calls awaited together
ENQUEUE_BATCH = 100
#: refresh(until_complete=...) slice: bounds the cost of a missed notification
REFRESH_SLICE = 1.0


async def enqueue_many(queue: Any, n: int) -> list[Any]:
    """``queue.enqueue("noop")`` n times, ``ENQUEUE_BATCH`` awaited together."""
    jobs: list[Any] = []
    for start in range(0, n, ENQUEUE_BATCH):
        size = min(ENQUEUE_BATCH, n - start)
        jobs.extend(await asyncio.gather(*(queue.enqueue("noop") for _ in range(size))))
    if any(job is None for job in jobs):
        raise harness.PeerError("enqueue returned None (duplicate job key)")
    return jobs


class KeepSubscribed:
    """A ``queue.listen`` on a key no job has, for the whole measurement.

    saq's RedisQueue shares one PSUBSCRIBE among all waiters and drops it when the
    last one leaves. A sequential caller is always the last one, so without this each
    ``refresh(until_complete=...)`` pays a PUNSUBSCRIBE and re-subscribes in the
    background after it has read the job: a notification sent in between is lost and
    the call sleeps until its timeout (about 1 in 500 calls here). A client that waits
    on jobs concurrently keeps the subscription, which this models.
    """

    KEY = "peer-benchmark-keepalive"

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> KeepSubscribed:
        self.task = asyncio.create_task(
            self.queue.listen([self.KEY], lambda *_: False, timeout=None)
        )
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class Waiter:
    """``job.refresh(until_complete=...)`` in slices, counting the slices that ran out
    (a status notification saq missed: it subscribes after reading the job)."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc
        self.missed = 0

    async def wait(self, job: Any, timeout: float = harness.TASK_TIMEOUT) -> None:
        from saq.job import Status

        deadline = harness.now() + timeout
        while True:
            try:
                await job.refresh(until_complete=REFRESH_SLICE)
            except TimeoutError:
                self.missed += 1
                await job.refresh()
            if job.completed:
                if job.status != Status.COMPLETE:
                    raise harness.PeerError(f"job {job.key} ended {job.status}: {job.error}")
                return
            harness.check_alive(self.proc)
            if harness.now() > deadline:
                raise harness.PeerError(f"job {job.key} not complete after {timeout:g}s")


async def check_jobs(queue: Any, jobs: list[Any]) -> None:
    """Untimed: every job of the batch is stored as complete."""
    from saq.job import Status

    keys = [job.key for job in jobs]
    for start in range(0, len(keys), 1000):
        for job in await queue.jobs(keys[start : start + 1000]):
            if job is None or job.status != Status.COMPLETE:
                raise harness.PeerError(f"a job is not complete: {job}")


async def has_worker(queue: Any) -> bool:
    """The worker has registered itself (what ``saq --check`` looks at)."""
    return bool((await queue.info())["workers"])


async def measure(
    args: argparse.Namespace, proc: Any
) -> tuple[float | None, list[float], dict[str, Any]]:
    """Readiness, warm-up, then the timed part; returns (seconds, samples, extra)."""
    from saq import Queue

    queue = Queue.from_url(args.url, name=args.prefix)
    await queue.connect()
    waiter = Waiter(proc)
    try:
        await harness.await_until(
            lambda: has_worker(queue), harness.READY_TIMEOUT, "the saq worker", proc=proc
        )
        for job in await enqueue_many(queue, args.warmup):
            await waiter.wait(job)
        waiter.missed = 0

        if args.mode == "latency":

            async def roundtrip(i: int) -> None:
                job = await queue.enqueue("noop")
                if job is None:
                    raise harness.PeerError("enqueue returned None")
                await waiter.wait(job)

            async with KeepSubscribed(queue):
                samples = await harness.ameasure_latency(roundtrip, args.n, proc=proc)
            return None, samples, {"missed_notifications": waiter.missed}

        if await queue.count("incomplete"):
            raise harness.PeerError("the queue is not empty before measuring")
        jobs: list[Any] = []

        enqueued: list[float] = []

        async def enqueue(n: int) -> None:
            t0 = harness.now()
            jobs.extend(await enqueue_many(queue, n))
            enqueued.append(harness.now() - t0)

        async def count() -> int:
            return int(args.n) - int(await queue.count("incomplete"))

        seconds = await harness.ameasure_throughput(enqueue, count, args.n, proc=proc)
        await check_jobs(queue, jobs)
        return seconds, [], {"enqueue_s": sum(enqueued)}
    finally:
        await queue.disconnect()


def main(args: argparse.Namespace) -> dict[str, Any]:
    extra = {"PEER_URL": args.url, "PEER_PREFIX": args.prefix}
    extra["PEER_CONCURRENCY"] = str(CONCURRENCY)
    os.environ.update(extra)
    version = harness.package_version("saq")
    patterns = [f"saq:{args.prefix}:*", f"saq:job:{args.prefix}:*"]
    harness.delete_keys(args.url, patterns)
    argv = [harness.bin_path("saq"), "tasks_saq.settings", "--workers", "1"]
    proc = harness.start_worker(argv, args.workdir, harness.worker_env(extra), name="saq")
    try:
        seconds, samples, more = asyncio.run(measure(args, proc))
    finally:
        harness.stop_worker(proc)
        harness.delete_keys(args.url, patterns)
    settings = {
        "concurrency": CONCURRENCY,
        "pool": "asyncio (concurrency)",
        "worker_processes": 1,
        "dequeue": "BLMOVE queued -> active, timeout 0 (default dequeue_timeout)",
        "job_defaults": "timeout 10 s, retries 1, ttl 600 s (saq defaults)",
        "enqueue": (
            f"asyncio.gather of queue.enqueue() in batches of {ENQUEUE_BATCH} "
            "(no bulk API; saq allows 20 concurrent operations per queue)"
        ),
        "log_level": "WARNING (saq's default without -v)",
    }
    notes = (
        "concurrency 10 is saq's default (Worker(concurrency=10)); saq documents no other "
        "value for I/O-bound jobs."
    )
    if args.mode == "latency":
        completion = (
            "await job.refresh(until_complete=1.0) (in a loop): saq's pub/sub notification "
            "of the job's status, then GET of the job"
        )
        notes += (
            " Latency: a long-lived queue.listen() on an unused key keeps saq's pub/sub "
            "multiplexer subscribed (as with concurrent waiters); without it each refresh "
            "re-subscribes and about 1 in 500 notifications is missed. "
            f"{more['missed_notifications']} refresh slice(s) of {REFRESH_SLICE:g} s ran out."
        )
    else:
        completion = (
            "queue.count('incomplete') (ZCARD) polled every 5 ms until 0; every job is "
            "checked to be stored as complete after the clock stops"
        )
    return harness.result(
        args,
        peer="saq",
        label=f"saq {version} (Redis)",
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
