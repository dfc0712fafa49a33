"""A handler that does one Redis command per task: its own client, or worker_redis().

Three consumers, each in its own process, side by side on one Redis server:

* ``raw redis-py``: the reference. Sync redis-py + hiredis: XREADGROUP COUNT 100
  BLOCK, then per batch one pipeline of an INCR per task and one pipeline of an
  XADD of the finding (with the INCR's reply) and an XACK per task.
* ``own client``: one worker process (concurrency 64) whose async handler INCRs
  through a ``redis.asyncio.Redis`` of its own (what a handler does today;
  ``benchmarks.handlers:incr_own_client``).
* ``worker_redis()``: the same worker, the INCR through the worker's shared,
  auto-pipelined connection (``benchmarks.handlers:incr_shared``).
* ``no Redis call``: the same worker with an async no-op handler (no INCR): the
  ceiling, what the worker itself costs (``benchmarks.handlers:noop_async``).

Latency: one request in flight, timed from just before the submit (an XADD for raw)
to the moment the requester has the finding (``Swarm.wait``; an XREAD BLOCK of the
results for raw); the requesters are asyncio clients in this process. Throughput: a
backlog of N tasks pre-loaded in a staging stream (its group at 0) is RENAMEd over
the stream the consumer blocks on, and timed until N findings exist (as in
``throughput.py``). Every round runs the three consumers' latency and throughput
phases, in an order that flips each round; the ratios to raw come from the same run.
At the end each INCR counter must equal the number of tasks its consumer ran.

    python benchmarks/handler_redis.py                # 5 rounds, ~15 s
    python benchmarks/handler_redis.py --quick        # CI smoke, a few seconds
    python benchmarks/handler_redis.py --json benchmarks/results/handler_redis.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))
from benchmarks.common import Server, describe, drive, machine_info, summarize  # noqa: E402
from benchmarks.latency import pct  # noqa: E402
from benchmarks.throughput import (  # noqa: E402
    Bench,
    release_and_time,
    stop_process,
    wait_consumer,
)
from swarmstream.bench.raw import drop_namespace, xadd_batches  # noqa: E402
from swarmstream.client import Swarm  # noqa: E402
from swarmstream.keys import Keys  # noqa: E402
from swarmstream.models import Status, Task  # noqa: E402
from swarmstream.settings import Settings  # noqa: E402
from swarmstream.worker.process import spawn_worker  # noqa: E402

SPEC = "bench"
GROUP = "raw"
TIMEOUT = 60.0
RAW = "raw redis-py"
NOOP = "no Redis call"
HANDLERS = {
    "own client": "benchmarks.handlers:incr_own_client",
    "worker_redis()": "benchmarks.handlers:incr_shared",
    NOOP: "benchmarks.handlers:noop_async",
}
console = Console() if sys.stdout.isatty() else Console(width=150)


# -- the raw reference consumer (its own process) -------------------------------


def raw_consumer(url: str, stream: str, results: str, counter: str, name: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    client: Any = redis.Redis.from_url(url, client_name=name)
    while True:
        reply = client.xreadgroup(GROUP, name, {stream: ">"}, count=100, block=1000)
        for _key, entries in reply or ():
            pipe = client.pipeline(transaction=False)
            for _ in entries:
                pipe.incr(counter)
            hits = pipe.execute()
            pipe = client.pipeline(transaction=False)
            for (entry_id, fields), n in zip(entries, hits, strict=True):
                pipe.xadd(results, {"re": fields.get(b"id", b""), "content": n})
                pipe.xack(stream, GROUP, entry_id)
            pipe.execute()


# -- one consumer under test ---------------------------------------------------------


@dataclass
class Consumer:
    label: str
    proc: subprocess.Popen[bytes]
    log: Path
    conn_name: str  # its connection's name in CLIENT LIST
    counter: str  # the key its handler INCRs
    stream: str  # the stream it blocks on
    one: Callable[[], Awaitable[None]]  # one request, answered
    stage: Callable[[int], Awaitable[str]]  # N tasks in a staging stream (returned)
    done: Callable[[], Awaitable[int]]  # findings so far
    close: Callable[[], Awaitable[None]]
    prepare: Callable[[], Awaitable[None]] | None = None  # untimed, before latency
    ran: int = 0  # tasks it ran (its counter must say the same)
    latency_s: list[float] = field(default_factory=list)
    round_p50_s: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


async def start_raw(bench: Bench, client: Redis) -> Consumer:
    ns = bench.namespace("raw")
    stream, results, counter = f"{ns}:tasks", f"{ns}:results", f"{ns}:hits"
    await client.xgroup_create(stream, GROUP, id="$", mkstream=True)
    await client.xadd(results, {"re": b"", "content": b""})  # a real id to XREAD after
    name, log = f"raw-{ns}", bench.tmp / f"{ns}.log"
    argv = [sys.executable, str(HERE), "_raw", bench.url, stream, results, counter, name]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    seq, last = 0, b"0-0"

    async def prepare() -> None:  # read the results after the newest one
        nonlocal last
        newest: Any = await client.xrevrange(results, count=1)
        last = newest[0][0]

    async def one() -> None:
        nonlocal seq, last
        seq += 1
        await client.xadd(stream, {"id": str(seq)})
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            reply: Any = await client.xread({results: last}, count=100, block=1000)
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id
                    if fields[b"re"] == str(seq).encode():
                        return
        raise RuntimeError("raw: no finding")

    async def stage(n: int) -> str:
        staging = f"{ns}:staging"
        await client.xgroup_create(staging, GROUP, id="0", mkstream=True)
        await xadd_batches(client, staging, ({"id": f"b{i}"} for i in range(n)))
        return staging

    async def done() -> int:
        return int(await client.xlen(results)) - 1

    async def close() -> None:
        stop_process(proc)
        await drop_namespace(client, ns)

    return Consumer(RAW, proc, log, name, counter, stream, one, stage, done, close, prepare)


async def start_worker(bench: Bench, client: Redis, label: str, concurrency: int) -> Consumer:
    ns = bench.namespace({"own client": "own", NOOP: "noop"}.get(label, "shared"))
    settings = Settings.from_flat({"url": bench.url, "namespace": ns, "concurrency": concurrency})
    k = Keys(ns).spec(SPEC)
    counter, name, log = f"{ns}:hits", f"{ns}-w", bench.tmp / f"{ns}.log"
    env = {
        "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")])
    }
    with log.open("wb") as out:
        proc = spawn_worker(
            [SPEC], HANDLERS[label], settings, name=name, env=env, stdout=out, stderr=out
        )
    swarm = Swarm(settings)
    await swarm.check()
    stages = 0

    async def one() -> None:
        task = await swarm.submit(SPEC, counter)
        finding = await swarm.wait(task, timeout=TIMEOUT)
        if finding.status is not Status.OK:
            raise RuntimeError(f"{label}: {finding.error}")

    async def stage(n: int) -> str:
        nonlocal stages
        stages += 1
        staged = Settings.from_flat({"url": bench.url, "namespace": f"{ns}-stage{stages}"})
        async with Swarm(staged, client=client) as s:
            for i in range(0, n, 1000):
                await s.submit_many(
                    [Task(spec=SPEC, text=counter) for _ in range(i, min(n, i + 1000))]
                )
        return Keys(f"{ns}-stage{stages}").spec(SPEC).tasks

    async def done() -> int:
        return int(await client.hget(k.stats, "ok") or 0)

    async def close() -> None:
        await swarm.aclose()
        stop_process(proc)
        await drop_namespace(client, ns)
        for i in range(1, stages + 1):
            await drop_namespace(client, f"{ns}-stage{i}")

    conn = f"swarmstream:{name}"
    return Consumer(label, proc, log, conn, counter, k.tasks, one, stage, done, close)


# -- the run ---------------------------------------------------------------------------


async def latency_phase(c: Consumer, n: int) -> list[float]:
    if c.prepare is not None:
        await c.prepare()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await c.one()
        out.append(time.perf_counter() - t0)
    c.ran += n
    return out


async def throughput_phase(
    bench: Bench, client: Redis, c: Consumer, n: int
) -> tuple[float, float | None]:
    staging = await c.stage(n)
    await wait_consumer(client, c.conn_name, c.proc, c.log)
    before = await c.done()

    async def findings() -> int:
        return await c.done() - before

    seconds, cpu, _ = await release_and_time(
        client, staging, c.stream, findings, n, (c.proc.pid, bench.redis_pid)
    )
    c.ran += n
    return n / seconds, None if cpu is None else cpu / n * 1e6


async def run(args: argparse.Namespace, srv: Server) -> dict[str, Any]:
    bench = Bench(srv.url, srv.pid, srv.tmp)  # consumers' logs: removed with the server
    client = await bench.client()
    consumers: list[Consumer] = []
    try:
        consumers.append(await start_raw(bench, client))
        for label in HANDLERS:
            consumers.append(await start_worker(bench, client, label, args.concurrency))
        for c in consumers:
            await wait_consumer(client, c.conn_name, c.proc, c.log)
            await latency_phase(c, 20)  # untimed warm-up (also proves it answers)
        for rnd in range(args.rounds):
            for c in consumers if rnd % 2 == 0 else consumers[::-1]:
                lat = await latency_phase(c, args.seq)
                c.latency_s += lat
                c.round_p50_s.append(statistics.median(lat))
                rate, cpu = await throughput_phase(bench, client, c, args.tasks)
                c.rates.append(rate)
                if cpu is not None:
                    c.cpu_us.append(cpu)
                console.print(
                    f"  round {rnd + 1}/{args.rounds} {c.label:<15} p50 "
                    f"{statistics.median(lat) * 1e3:6.3f} ms  {rate:9,.0f} tasks/s",
                    highlight=False,
                )
        hits = {c.label: int(await client.get(c.counter) or 0) for c in consumers}
        for c in consumers:
            if c.label != NOOP and hits[c.label] != c.ran:
                raise RuntimeError(f"{c.label}: counter {hits[c.label]}, tasks run {c.ran}")
    finally:
        for c in consumers:
            await c.close()
        await client.aclose()
    results: dict[str, Any] = {}
    for c in consumers:
        ms = [x * 1e3 for x in c.latency_s]
        results[c.label] = {
            "p50_ms": pct(ms, 50),
            "p99_ms": pct(ms, 99),
            "round_p50_ms": summarize([x * 1e3 for x in c.round_p50_s]),
            "tasks_per_s": summarize(c.rates),
            "tasks_per_s_runs": c.rates,
            "worker_cpu_us_per_task": summarize(c.cpu_us) if c.cpu_us else None,
            "counter_checked": c.ran if c.label != NOOP else None,
        }
    raw = results[RAW]
    ratios = {
        label: {
            "p50": r["p50_ms"] / raw["p50_ms"],
            "p99": r["p99_ms"] / raw["p99_ms"],
            "throughput": r["tasks_per_s"]["median"] / raw["tasks_per_s"]["median"],
        }
        for label, r in results.items()
        if label != RAW
    }
    return {
        "benchmark": "handler_redis",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "server": describe(srv),
        "machine": machine_info(srv.version),
        "config": {
            "rounds": args.rounds,
            "seq": args.seq,
            "tasks": args.tasks,
            "concurrency": args.concurrency,
            "quick": args.quick,
        },
        "results": results,
        "ratios_to_raw": ratios,
    }


def show(report: dict[str, Any]) -> None:
    cfg = report["config"]
    t = Table(
        title=f"one INCR per task: {cfg['rounds']} rounds of {cfg['seq']} sequential "
        f"requests and a {cfg['tasks']:,}-task backlog (concurrency {cfg['concurrency']})"
    )
    cols = ("consumer", "p50 ms", "p99 ms", "round p50 min-max", "tasks/s median", "min-max")
    for col in (*cols, "p50 / raw", "tasks/s / raw"):
        t.add_column(col, justify="left" if col == "consumer" else "right")
    for label, r in report["results"].items():
        ratio = report["ratios_to_raw"].get(label)
        s, rp = r["tasks_per_s"], r["round_p50_ms"]
        t.add_row(
            label,
            f"{r['p50_ms']:.3f}",
            f"{r['p99_ms']:.3f}",
            f"{rp['min']:.3f}-{rp['max']:.3f}",
            f"{s['median']:,.0f}",
            f"{s['min']:,.0f}-{s['max']:,.0f}",
            f"{ratio['p50']:.2f}x" if ratio else "1",
            f"{ratio['throughput']:.2f}" if ratio else "1",
        )
    console.print(t)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--redis-url", help="use this server (default: start one)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seq", type=int, default=300, help="sequential requests per round")
    p.add_argument("--tasks", type=int, default=5000, help="backlog per throughput run")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="CI smoke: 1 round, 20 requests, 500 tasks")
    p.add_argument("--json", metavar="PATH", help="write the report here")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seq, args.tasks = 1, 20, 500
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_raw"]:
        raw_consumer(*argv[1:6])
        return 0
    args = parse_args(argv)
    drive(args, lambda srv: run(args, srv), show, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
