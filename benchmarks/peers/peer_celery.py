"""Celery (Redis broker, Redis result backend) on the peer benchmark's no-op workload.

Worker: ``celery -A tasks_celery worker --pool gevent --concurrency 1000`` (one
process; Celery's docs recommend the eventlet/gevent pools for I/O-bound tasks and
show ``-P gevent -c 1000``), default prefetch multiplier 4, default acks (on
receipt). Throughput: ``group(...).apply_async()`` then ``join_native()`` on the
Redis result backend (pub/sub notification per task). Latency: ``noop.delay()``
then ``AsyncResult.get()``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import harness

POOL = os.environ.get("PEER_CELERY_POOL", "gevent")
#: the concurrency of Celery's gevent documentation (`celery -A proj worker -P gevent -c 1000`)
CONCURRENCY = int(os.environ.get("PEER_CONCURRENCY", "1000"))


def wait_result(res: Any, proc: Any, timeout: float) -> Any:
    """``res.get()`` in short slices, checking between them that the worker lives."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    deadline = time.monotonic() + timeout
    while True:
        try:
            return res.get(timeout=min(0.5, max(deadline - time.monotonic(), 0.01)))
        except CeleryTimeout:
            harness.check_alive(proc)
            if time.monotonic() > deadline:
                raise harness.PeerError(f"no result after {timeout:g}s") from None


def main(args: argparse.Namespace) -> dict[str, Any]:
    extra = {"PEER_URL": args.url, "PEER_PREFIX": args.prefix}
    os.environ.update(extra)
    import celery
    import tasks_celery
    from celery import group

    argv = [harness.bin_path("celery"), "-A", "tasks_celery", "worker"]
    argv += ["--pool", POOL, "--concurrency", str(CONCURRENCY), "--queues", args.prefix]
    argv += ["--hostname", f"{args.prefix}@%h", "--loglevel", "WARNING"]
    proc = harness.start_worker(argv, args.workdir, harness.worker_env(extra), name="celery")
    noop = tasks_celery.noop
    try:
        # ready = one task went through (the worker has started consuming)
        wait_result(noop.delay(), proc, harness.READY_TIMEOUT)
        if args.warmup:
            group(noop.s() for _ in range(args.warmup)).apply_async().join_native(timeout=60)
        settings = {
            "concurrency": CONCURRENCY,
            "pool": POOL,
            "prefetch": f"worker_prefetch_multiplier 4 (default) x {CONCURRENCY}",
            "acks": "on receipt (task_acks_late False, default)",
            "result_backend": "redis (same server)",
            "serializer": "json",
            "loglevel": "WARNING",
        }
        if args.mode == "throughput":
            sigs = group(noop.s() for _ in range(args.n))
            t0 = harness.now()
            res = sigs.apply_async()
            enqueued = harness.now() - t0
            values = res.join_native(
                timeout=harness.STALL, on_interval=lambda: harness.check_alive(proc)
            )
            seconds = harness.now() - t0
            if len(values) != args.n:
                raise harness.PeerError(f"{len(values)} results for {args.n} tasks")
            return harness.result(
                args,
                peer="celery",
                label=f"Celery {celery.__version__} (Redis broker)",
                version=celery.__version__,
                seconds=seconds,
                settings=settings,
                completion="group(...).apply_async() then GroupResult.join_native() "
                "on the Redis result backend (results pushed over pub/sub, MGET for "
                "those already stored)",
                notes="enqueue: group.apply_async, one LPUSH per task over one producer",
                enqueue_s=enqueued,
            )
        samples = harness.measure_latency(
            lambda i: wait_result(noop.delay(), proc, harness.TASK_TIMEOUT), args.n, proc=proc
        )
        return harness.result(
            args,
            peer="celery",
            label=f"Celery {celery.__version__} (Redis broker)",
            version=celery.__version__,
            samples=samples,
            settings=settings,
            completion="noop.delay() then AsyncResult.get() on the Redis result backend "
            "(pub/sub notification, no polling interval)",
        )
    finally:
        harness.stop_worker(proc)
        harness.delete_keys(args.url, [f"{args.prefix}:*", f"{args.prefix}"])


if __name__ == "__main__":
    harness.run_main(main, __doc__ or "")
