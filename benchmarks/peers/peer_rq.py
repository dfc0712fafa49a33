"""RQ on the peer benchmark's no-op workload.

Worker: ``rq worker`` with the default ``Worker`` class, the one RQ's docs run in
production: one job at a time, each in a freshly forked work horse (RQ has no
in-process concurrency; more throughput means more worker processes, which this
benchmark does not allow). Keys live under ``RQ_KEY_PREFIX=<prefix>``.
Throughput: ``Queue.enqueue_many`` (one pipeline), completion = the queue's
``FinishedJobRegistry`` count. Latency: ``Queue.enqueue`` then
``Job.latest_result(timeout=...)`` (a blocking XREAD on the job's result stream).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import harness

WORKER_CLASS = os.environ.get("PEER_RQ_WORKER_CLASS", "rq.worker.Worker")


def main(args: argparse.Namespace) -> dict[str, Any]:
    extra = {"RQ_KEY_PREFIX": args.prefix}
    os.environ.update(extra)  # read when rq is imported
    import redis
    import rq
    import tasks_rq
    from rq import Queue

    argv = [harness.bin_path("rq"), "worker", "--url", args.url, "--name", f"{args.prefix}-w"]
    argv += ["--worker-class", WORKER_CLASS, "--logging_level", "WARNING", args.prefix]
    proc = harness.start_worker(argv, args.workdir, harness.worker_env(extra), name="rq")
    conn = redis.Redis.from_url(args.url)
    queue = Queue(args.prefix, connection=conn)
    finished = queue.finished_job_registry
    failed = queue.failed_job_registry

    def done() -> int:
        if failed.get_job_count(cleanup=False):
            raise harness.PeerError(f"{failed.get_job_count(cleanup=False)} jobs failed")
        return int(finished.get_job_count(cleanup=False))

    def run_many(n: int) -> None:
        queue.enqueue_many([Queue.prepare_data(tasks_rq.noop) for _ in range(n)])

    def roundtrip(timeout: float) -> None:
        job = queue.enqueue(tasks_rq.noop)
        res = job.latest_result(timeout=int(timeout))
        if res is None or res.type != res.Type.SUCCESSFUL:
            raise harness.PeerError(f"job {job.id}: no successful result ({res})")

    try:
        roundtrip(harness.READY_TIMEOUT)  # ready = one job went through
        if args.warmup:
            base = done()
            run_many(args.warmup)
            harness.poll_until_count(lambda: done() - base, args.warmup, proc=proc)
        settings = {
            "concurrency": 1,
            "pool": f"{WORKER_CLASS} (fork a work horse per job)",
            "prefetch": "none (BLPOP one job at a time)",
            "result_ttl": "500 s (default)",
            "serializer": "pickle (default)",
            "loglevel": "WARNING",
        }
        label = f"RQ {rq.__version__}"
        if args.mode == "throughput":
            base = done()
            t0 = harness.now()
            run_many(args.n)
            enqueued = harness.now() - t0
            harness.poll_until_count(lambda: done() - base, args.n, proc=proc)
            seconds = harness.now() - t0
            return harness.result(
                args,
                peer="rq",
                label=label,
                version=rq.__version__,
                seconds=seconds,
                settings=settings,
                completion="the queue's FinishedJobRegistry count (ZCARD), polled every 5 ms",
                notes="enqueue: Queue.enqueue_many (one pipeline); one job at a time per "
                "worker process, forked per job",
                enqueue_s=enqueued,
            )
        samples = harness.measure_latency(
            lambda i: roundtrip(harness.TASK_TIMEOUT), args.n, proc=proc
        )
        return harness.result(
            args,
            peer="rq",
            label=label,
            version=rq.__version__,
            samples=samples,
            settings=settings,
            completion="Queue.enqueue then Job.latest_result(timeout=30): a blocking XREAD "
            "on the job's result stream (no polling)",
        )
    finally:
        harness.stop_worker(proc)
        conn.close()
        harness.delete_keys(args.url, [f"{args.prefix}:*"])


if __name__ == "__main__":
    harness.run_main(main, __doc__ or "")
