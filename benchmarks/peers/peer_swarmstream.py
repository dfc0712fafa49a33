"""swarmstream on the peer benchmark's no-op workload (runs in the MAIN venv).

Worker: ``python -m swarmstream worker bench --handler echo --concurrency 256``,
one process, started with ``swarmstream.worker.process.spawn_worker`` in the
namespace ``<prefix>``. Throughput: ``Swarm.submit_many`` in batches of 1000,
completion = the spec's findings (``XLEN`` of the findings stream, or the ``ok``
counter past the stream's MAXLEN, as benchmarks/throughput.py counts them).
Latency: ``Swarm.submit`` then ``Swarm.wait`` (a blocking XREAD on the findings
stream, no polling).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import harness
from redis.asyncio import Redis

sys.path.insert(0, str(harness.REPO))
from benchmarks.throughput import findings_counter
from swarmstream.client import Swarm
from swarmstream.errors import WaitTimeout
from swarmstream.keys import Keys
from swarmstream.models import Task
from swarmstream.settings import Settings
from swarmstream.worker.process import spawn_worker

SPEC = "bench"
CONCURRENCY = 256
BATCH = 1000


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_flat(
        {"url": args.url, "namespace": args.prefix, "concurrency": CONCURRENCY}
    )
    k = Keys(args.prefix).spec(SPEC)
    client = Redis.from_url(args.url, decode_responses=False)
    log = args.workdir / "swarmstream.log"
    with log.open("ab") as out:
        proc = spawn_worker(
            [SPEC], "echo", settings, name=f"{args.prefix}-w", stdout=out, stderr=out
        )
    proc.log_path = log  # type: ignore[attr-defined]
    swarm = Swarm(settings, client=client)
    seq = 0

    def tasks(n: int) -> list[Task]:
        nonlocal seq
        seq += n
        return [Task(spec=SPEC, text=f"task {i}") for i in range(seq - n, seq)]

    async def submit_all(n: int) -> None:
        batch = tasks(n)
        for i in range(0, n, BATCH):
            await swarm.submit_many(batch[i : i + BATCH])

    def counter(n: int) -> Callable[[], Awaitable[int]]:
        """Counts findings: XLEN while the stream cannot have been trimmed yet (all
        findings so far, the readiness ping included, fit under its MAXLEN), else
        the spec's ``ok`` counter."""
        return findings_counter(client, k, seq + n + 1)

    async def run_batch(n: int) -> None:
        count = counter(n)
        base = await count()
        await submit_all(n)
        await harness.apoll_until_count(lambda: _minus(count, base), n, proc=proc)

    async def roundtrip(timeout: float) -> None:
        task = await swarm.submit(SPEC, "ping")
        deadline = asyncio.get_running_loop().time() + timeout
        while True:  # wait in 1 s slices, checking between them that the worker lives
            try:
                await swarm.wait(task, timeout=1.0)
                return
            except WaitTimeout:
                harness.check_alive(proc)
                if asyncio.get_running_loop().time() > deadline:
                    raise harness.PeerError(f"no finding after {timeout:g}s") from None

    try:
        await swarm.check()
        await roundtrip(harness.READY_TIMEOUT)  # ready = one task went through
        if args.warmup:
            await run_batch(args.warmup)
        settings_out = {
            "concurrency": CONCURRENCY,
            "pool": "asyncio (one process)",
            "prefetch": "XREADGROUP COUNT up to the free concurrency slots",
            "handler": "echo",
            "result": "one finding per task (findings stream), fenced Lua ack",
        }
        ver = version("swarmstream")
        label = f"swarmstream {ver}"
        if args.mode == "throughput":
            count = counter(args.n)
            base = await count()
            t0 = harness.now()
            await submit_all(args.n)
            enqueued = harness.now() - t0
            await harness.apoll_until_count(lambda: _minus(count, base), args.n, proc=proc)
            seconds = harness.now() - t0
            return harness.result(
                args,
                peer="swarmstream",
                label=label,
                version=ver,
                seconds=seconds,
                settings=settings_out,
                completion="findings count: XLEN of the spec's findings stream (the ok "
                "counter past its MAXLEN), polled every 5 ms",
                notes=f"enqueue: Swarm.submit_many in batches of {BATCH} (one pipeline each)",
                enqueue_s=enqueued,
            )
        samples = await harness.ameasure_latency(
            lambda i: roundtrip(harness.TASK_TIMEOUT), args.n, proc=proc
        )
        return harness.result(
            args,
            peer="swarmstream",
            label=label,
            version=ver,
            samples=samples,
            settings=settings_out,
            completion="Swarm.submit then Swarm.wait: blocking XREAD on the findings "
            "stream (no polling)",
        )
    finally:
        harness.stop_worker(proc)
        await client.aclose()
        harness.delete_keys(args.url, [f"{args.prefix}:*"])


async def _minus(count: Callable[[], Awaitable[int]], base: int) -> int:
    return await count() - base


def main(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(amain(args))


if __name__ == "__main__":
    harness.run_main(main, __doc__ or "")
