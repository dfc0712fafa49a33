"""arq on the peer benchmark's no-op workload.

Worker: ``arq tasks_arq.WorkerSettings`` (one asyncio process), ``max_jobs`` 10
(arq's default; its jobs are coroutines, so this is its I/O concurrency), the
default ``poll_delay`` of 0.5 s: the worker polls the queue (a sorted set) with
ZRANGEBYSCORE, reading up to ``queue_read_limit`` (100) job ids per poll, then
sleeps what is left of the poll delay. Job ids are ``<prefix>-<n>``, so every key
of the run contains the prefix. Throughput: ``enqueue_job`` in a loop (arq has no
bulk enqueue), completion = how many of the jobs' result keys exist (what
``Job.status()`` checks, batched into one EXISTS per poll). Latency:
``enqueue_job`` then ``Job.result(poll_delay=0.005)``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
from typing import Any

import harness

RESULT_POLL = 0.005
#: arq's default worker poll_delay (s)
DEFAULT_POLL_DELAY = 0.5


class Driver:
    """The enqueueing side: job ids ``<prefix>-<n>``, results by arq's own keys."""

    def __init__(self, pool: Any, queue: str, proc: Any) -> None:
        self.pool, self.queue, self.proc = pool, queue, proc
        self.seq = 0
        self.races = 0

    async def enqueue(self, n: int) -> list[str]:
        ids = []
        for _ in range(n):
            self.seq += 1
            job_id = f"{self.queue}-{self.seq}"
            job = await self.pool.enqueue_job("noop", _job_id=job_id, _queue_name=self.queue)
            if job is None:
                raise harness.PeerError(f"job {job_id} was not enqueued")
            ids.append(job_id)
        return ids

    async def wait_all(self, ids: list[str]) -> None:
        from arq.constants import result_key_prefix

        keys = [result_key_prefix + i for i in ids]

        async def count() -> int:
            return int(await self.pool.exists(*keys))

        await harness.apoll_until_count(count, len(keys), proc=self.proc)

    async def roundtrip(self, timeout: float) -> None:
        from arq.jobs import Job, ResultNotFound

        (job_id,) = await self.enqueue(1)
        job = Job(job_id, self.pool, _queue_name=self.queue)
        for attempt in range(2):
            try:
                await job.result(timeout=timeout, poll_delay=RESULT_POLL)
                return
            except ResultNotFound:
                # Job.result reads the result key and the queue score in two separate
                # round trips (not in its MULTI), so a job that finishes between them
                # looks lost; asking again finds the result
                self.races += 1
                if attempt:
                    raise
            except TimeoutError:
                harness.check_alive(self.proc)
                raise harness.PeerError(f"no result for {job_id} after {timeout:g}s") from None


async def amain(args: argparse.Namespace, extra: dict[str, str]) -> dict[str, Any]:
    import arq
    import tasks_arq
    from arq import create_pool

    argv = [harness.bin_path("arq"), "tasks_arq.WorkerSettings"]
    argv += ["--custom-log-dict", "tasks_arq.LOG_CONFIG"]
    proc = harness.start_worker(argv, args.workdir, harness.worker_env(extra), name="arq")
    pool = await create_pool(tasks_arq.WorkerSettings.redis_settings)
    d = Driver(pool, args.prefix, proc)
    enqueue, wait_all, roundtrip = d.enqueue, d.wait_all, d.roundtrip

    try:
        await roundtrip(harness.READY_TIMEOUT)  # ready = one job went through
        if args.warmup:
            await wait_all(await enqueue(args.warmup))
        settings = {
            "concurrency": tasks_arq.MAX_JOBS,
            "pool": "asyncio (max_jobs)",
            "prefetch": "queue_read_limit 100 (default: max(5 x max_jobs, 100)) ids per poll",
            "poll_delay": f"{tasks_arq.POLL_DELAY:g} s (worker; arq default 0.5 s)",
            "result_poll": f"{RESULT_POLL * 1000:g} ms (Job.result poll_delay; default 0.5 s)",
            "keep_result": "3600 s (default)",
            "serializer": "pickle (default)",
            "loglevel": "WARNING (--custom-log-dict)",
        }
        label = f"arq {arq.VERSION}"
        if tasks_arq.POLL_DELAY != DEFAULT_POLL_DELAY:
            label += f" (poll_delay {tasks_arq.POLL_DELAY:g} s)"
        if args.mode == "throughput":
            t0 = harness.now()
            ids = await enqueue(args.n)
            enqueued = harness.now() - t0
            await wait_all(ids)
            seconds = harness.now() - t0
            return harness.result(
                args,
                peer="arq",
                label=label,
                version=str(arq.VERSION),
                seconds=seconds,
                settings=settings,
                completion="EXISTS over the N jobs' arq:result keys (what Job.status() "
                "checks, batched), polled every 5 ms",
                notes="enqueue: ArqRedis.enqueue_job in a loop (no bulk API; one "
                "WATCH/MULTI transaction per job)",
                enqueue_s=enqueued,
            )
        rng = random.Random(6)

        async def pause(i: int) -> None:
            # untimed, uniform in [0, poll_delay): back to back, requests would
            # phase-lock with the worker's fixed poll cadence and all wait ~a full period
            await asyncio.sleep(rng.uniform(0, tasks_arq.POLL_DELAY))

        samples = await harness.ameasure_latency(
            lambda i: roundtrip(harness.TASK_TIMEOUT), args.n, proc=proc, before=pause
        )
        return harness.result(
            args,
            peer="arq",
            label=label,
            version=str(arq.VERSION),
            samples=samples,
            settings=settings,
            completion="enqueue_job then Job.result(poll_delay=0.005): polls the job's "
            "result key every 5 ms",
            notes="each request follows an untimed random pause in [0, poll_delay), so "
            "requests arrive at random points of the worker's poll cycle; Job.result "
            f"raised a spurious ResultNotFound {d.races} time(s) (a race in arq: it reads "
            "the result and the queue score in two round trips), each time asked again",
            result_not_found_races=d.races,
        )
    finally:
        await pool.aclose()
        harness.stop_worker(proc)
        harness.delete_keys(args.url, [f"arq:*{args.prefix}-*", f"{args.prefix}*"])


def main(args: argparse.Namespace) -> dict[str, Any]:
    extra = {"PEER_URL": args.url, "PEER_PREFIX": args.prefix}
    os.environ.update(extra)
    return asyncio.run(amain(args, extra))


if __name__ == "__main__":
    harness.run_main(main, __doc__ or "")
