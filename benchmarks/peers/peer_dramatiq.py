"""Dramatiq (Redis broker, Redis results backend) on the peer benchmark's workload.

Worker: ``dramatiq-gevent --processes 1 --threads 1024 tasks_dramatiq`` (Dramatiq's
own CLI help gives exactly this line for gevent, its answer to I/O-bound actors);
queue prefetch = 2 x threads (Dramatiq's default). The CLI runs a supervisor
process that forks the one worker process. Throughput: ``group(...).run()`` then
``group.wait()`` (blocking reads of each message's result). Latency:
``noop.send()`` then ``message.get_result(block=True)`` (BRPOPLPUSH, no polling).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import harness

RUNNER = os.environ.get("PEER_DRAMATIQ_RUNNER", "dramatiq-gevent")
THREADS = int(os.environ.get("PEER_CONCURRENCY", "1024"))


def main(args: argparse.Namespace) -> dict[str, Any]:
    extra = {"PEER_URL": args.url, "PEER_PREFIX": args.prefix}
    os.environ.update(extra)
    import dramatiq
    import tasks_dramatiq
    from dramatiq import group
    from dramatiq.results import ResultTimeout

    argv = [harness.bin_path(RUNNER), "--processes", "1", "--threads", str(THREADS)]
    argv += ["tasks_dramatiq", "--queues", args.prefix]
    proc = harness.start_worker(argv, args.workdir, harness.worker_env(extra), name="dramatiq")
    noop = tasks_dramatiq.noop

    def wait_result(message: Any, timeout: float) -> None:
        """Message.get_result(block=True) in 1 s slices (the result client's socket
        times out at 5 s), checking between them that the worker lives."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message.get_result(block=True, timeout=1000)
                return
            except ResultTimeout:
                harness.check_alive(proc)
                if time.monotonic() > deadline:
                    raise harness.PeerError(f"no result after {timeout:g}s") from None

    def roundtrip(timeout: float) -> None:
        wait_result(noop.send(), timeout)

    def wait_group(g: Any) -> None:
        """group.wait(), with the liveness check: each message's result in order."""
        for message in g.children:
            wait_result(message, harness.STALL)

    def run_all(n: int) -> Any:
        return group(noop.message() for _ in range(n))

    try:
        roundtrip(harness.READY_TIMEOUT)  # ready = one message went through
        if args.warmup:
            wait_group(run_all(args.warmup).run())
        settings = {
            "concurrency": THREADS,
            "pool": f"{RUNNER} --processes 1 --threads {THREADS} (greenlets)",
            "prefetch": f"{min(THREADS * 2, 65535)} (2 x threads, default)",
            "acks": "after the actor returns (default)",
            "result_backend": "dramatiq.results RedisBackend (same server)",
            "max_retries": 0,
            "worker_timeout": "1000 ms (default): an idle consumer polls the queue with "
            "exponential backoff up to this (the Redis broker has no blocking fetch)",
            "loglevel": "INFO (CLI default; logs nothing per message)",
        }
        label = f"Dramatiq {dramatiq.__version__} (Redis broker)"
        if args.mode == "throughput":
            g = run_all(args.n)
            t0 = harness.now()
            g.run()
            enqueued = harness.now() - t0
            wait_group(g)
            seconds = harness.now() - t0
            harness.check_alive(proc)
            return harness.result(
                args,
                peer="dramatiq",
                label=label,
                version=dramatiq.__version__,
                seconds=seconds,
                settings=settings,
                completion="group(...).run() then each message's get_result(block=True) in "
                "order, as group.wait() does (a blocking BRPOPLPUSH per result key)",
                notes="enqueue: group.run, one enqueue (Lua dispatch) per message",
                enqueue_s=enqueued,
            )
        samples = harness.measure_latency(
            lambda i: roundtrip(harness.TASK_TIMEOUT), args.n, proc=proc
        )
        return harness.result(
            args,
            peer="dramatiq",
            label=label,
            version=dramatiq.__version__,
            samples=samples,
            settings=settings,
            completion="noop.send() then Message.get_result(block=True): a blocking "
            "BRPOPLPUSH on the result key (no polling)",
        )
    finally:
        harness.stop_worker(proc)
        harness.delete_keys(args.url, [f"{args.prefix}:*", f"{args.prefix}-results:*"])


if __name__ == "__main__":
    harness.run_main(main, __doc__ or "")
