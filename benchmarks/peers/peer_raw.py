"""The hand-written redis-py stream loop on the peer benchmark's workload (MAIN venv).

Worker: ``swarmstream.bench.raw.raw_consumer`` in its own process (sync
redis-py + hiredis, msgpack bodies): ``XREADGROUP COUNT 100 BLOCK 1000``, then one
pipeline per batch with an ``XADD`` of a small result per task and one ``XACK``.
It is the floor of what redis-py can do, not a framework: no retries, no fencing,
no result lookup by id. Throughput: pipelined ``XADD`` of swarmstream-encoded task
bodies (1000 per pipeline), completion = ``XLEN`` of the results stream. Latency:
``XADD`` one task, then ``XREAD BLOCK`` on the results stream until its result.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.metadata import version
from typing import Any

import harness
import msgpack
import redis

sys.path.insert(0, str(harness.REPO))
from benchmarks.throughput import task_body
from swarmstream.bench.report import RAW_COUNT
from swarmstream.keys import GROUP

SPEC = "bench"
BATCH = 1000


class Driver:
    """The requester side: submits task bodies and reads the results stream."""

    def __init__(self, url: str, stream: str, results: str) -> None:
        self.client: Any = redis.Redis.from_url(url)
        self.stream, self.results = stream, results
        self.seq = 0
        self.cursor = "0-0"
        self.proc: Any = None

    def submitted(self) -> int:
        return int(self.client.xlen(self.results))

    def submit_all(self, n: int) -> None:
        bodies = [task_body(i, SPEC) for i in range(self.seq, self.seq + n)]
        self.seq += n
        for i in range(0, n, BATCH):
            pipe = self.client.pipeline(transaction=False)
            for body in bodies[i : i + BATCH]:
                pipe.xadd(self.stream, body)
            pipe.execute()

    def wait_count(self, base: int, n: int) -> None:
        harness.poll_until_count(lambda: self.submitted() - base, n, proc=self.proc)

    def roundtrip(self, timeout: float) -> None:
        body = task_body(self.seq, SPEC)
        self.seq += 1
        task_id = msgpack.unpackb(body["body"], raw=False)["id"]
        self.client.xadd(self.stream, body)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.client.xread({self.results: self.cursor}, count=100, block=1000)
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    self.cursor = entry_id
                    if fields[b"task_id"].decode() == task_id:
                        return
            harness.check_alive(self.proc)
            if time.monotonic() > deadline:
                raise harness.PeerError(f"no result for {task_id} after {timeout:g}s")


def main(args: argparse.Namespace) -> dict[str, Any]:
    stream, results = f"{args.prefix}:raw:tasks", f"{args.prefix}:raw:results"
    d = Driver(args.url, stream, results)
    d.client.xgroup_create(stream, GROUP, id="$", mkstream=True)
    argv = [sys.executable, "-m", "swarmstream.bench", "_raw-consumer"]
    argv += [args.url, stream, results, f"{args.prefix}-w", str(RAW_COUNT)]
    d.proc = proc = harness.start_worker(argv, args.workdir, name="raw", cwd=harness.REPO)
    try:
        d.roundtrip(harness.READY_TIMEOUT)  # ready = one task went through
        if args.warmup:
            base = d.submitted()
            d.submit_all(args.warmup)
            d.wait_count(base, args.warmup)
        d.cursor = d.client.xinfo_stream(results)["last-generated-id"]
        settings = {
            "concurrency": 1,
            "pool": "one sync loop (no handler concurrency)",
            "prefetch": f"XREADGROUP COUNT {RAW_COUNT}",
            "result": "XADD of a small msgpack result per task, one XACK per batch",
        }
        ver = f"redis-py {redis.__version__}"
        label = "raw redis-py stream loop"
        if args.mode == "throughput":
            base = d.submitted()
            t0 = harness.now()
            d.submit_all(args.n)
            enqueued = harness.now() - t0
            d.wait_count(base, args.n)
            seconds = harness.now() - t0
            return harness.result(
                args,
                peer="raw",
                label=label,
                version=ver,
                seconds=seconds,
                settings=settings,
                completion="XLEN of the results stream, polled every 5 ms",
                notes=f"enqueue: pipelined XADD, {BATCH} per pipeline; msgpack "
                f"{version('msgpack')}",
                enqueue_s=enqueued,
            )
        samples = harness.measure_latency(
            lambda i: d.roundtrip(harness.TASK_TIMEOUT), args.n, proc=proc
        )
        return harness.result(
            args,
            peer="raw",
            label=label,
            version=ver,
            samples=samples,
            settings=settings,
            completion="XADD then XREAD BLOCK on the results stream until the task's "
            "result (no polling)",
        )
    finally:
        harness.stop_worker(proc)
        d.client.close()
        harness.delete_keys(args.url, [f"{args.prefix}:*"])


if __name__ == "__main__":
    harness.run_main(main, __doc__ or "")
