"""Throughput and round trip of one worker placed 0-250 ms (RTT) away from Redis.

There is no kernel netem here, so the distance is a delay proxy:
``swarmstream.netproxy.FaultProxy`` with a fixed ``delay`` each way (a round trip
grows by twice that). It stamps every chunk on arrival and forwards it when due,
in order, by a writer per direction, so pipelined traffic stays pipelined: the
delay shifts traffic, it does not serialize it. The proxy runs in a process of its
own (not on the driver's loop or GIL), with reply framing off (no drops are
injected, so it forwards bytes without parsing RESP).

Per RTT (0 = no proxy, the worker talks to Redis directly):

* **throughput**: one worker process (``python -m swarmstream worker bench
  --handler echo --concurrency C``, started with ``spawn_worker``) whose URL is the
  proxy's. N tasks are pre-loaded by the driver *directly* (not through the proxy)
  into a staging stream; once the worker is blocked in XREADGROUP, one RENAME
  releases the whole backlog (as ``throughput.py`` does) and the clock runs until
  N findings exist (polled every 2 ms, directly). Two rates: the whole drain (N /
  its time: it includes the first read's and the last write's round trips, a fixed
  cost at a distance), and the rate while work is queued (findings 20% -> 80% of N
  over the time between; the issue's "while there is work queued"). Also recorded
  in the timed window: the worker's pending entries (delivered, not yet acked:
  XPENDING, sampled with every poll), Redis's command counts (XREADGROUP and EVALSHA calls, from
  ``INFO commandstats`` after a ``CONFIG RESETSTAT``; the server is the script's
  own) and the CPU of the worker and the proxy.
* **round trip**: a ``Swarm`` client that is itself behind the same proxy (a
  second connection through it) does ``submit`` then ``wait`` of one task, one
  at a time, with an idle worker (concurrency C) blocked in XREADGROUP; reported
  in ms and in RTT units (the floor is 2.0 RTT: task to Redis, to the worker,
  finding to Redis, to the client).

    python benchmarks/distance.py                          # 0,1,20,80,250 ms x 3 repeats
    python benchmarks/distance.py --quick                  # CI smoke
    python benchmarks/distance.py --json benchmarks/results/distance.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Server, describe, drive, machine_info, summarize
from benchmarks.throughput import (
    cpu_seconds,
    fmt_rate,
    stop_process,
    wait_consumer,
)
from swarmstream.bench.raw import drop_namespace
from swarmstream.client import Swarm
from swarmstream.keys import GROUP, Keys
from swarmstream.models import Task
from swarmstream.netproxy import FaultProxy
from swarmstream.settings import Settings
from swarmstream.worker.process import spawn_worker

SPEC = "bench"
POLL = 0.002
STALL = 60.0
#: the fractions of the findings between which the queued (steady) rate is taken
STEADY = (0.2, 0.8)
console = Console() if sys.stdout.isatty() else Console(width=150)


# -- the delay proxy, in a process of its own -----------------------------------


class DelayProxy(FaultProxy):
    """A FaultProxy that only delays: no drops, so replies need no framing."""

    def _filter(self, link: Any, data: bytes) -> tuple[bytes, bool]:
        return data, False


def proxy_child(upstream: str, delay: float) -> None:
    """``--proxy-child HOST:PORT DELAY``: run a DelayProxy until SIGTERM; print its port."""
    host, port = upstream.rsplit(":", 1)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with DelayProxy(host, int(port), delay=delay) as proxy:
            print(proxy.port, flush=True)
            await stop.wait()

    asyncio.run(main())


@dataclass
class ProxyProcess:
    proc: subprocess.Popen[bytes]
    port: int

    @classmethod
    def start(cls, host: str, port: int, one_way: float) -> ProxyProcess:
        argv = [sys.executable, __file__, "--proxy-child", f"{host}:{port}", repr(one_way)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            raise RuntimeError(f"delay proxy did not start (rc {proc.returncode})")
        return cls(proc, int(line))

    def stop(self) -> None:
        stop_process(self.proc)


# -- measurements -----------------------------------------------------------------


@dataclass
class Run:
    rtt_ms: float
    repeat: int
    tasks: int
    seconds: float
    tasks_per_s: float
    worker_cpu_s: float | None
    proxy_cpu_s: float | None
    mean_pending: float
    max_pending: int
    xreadgroup_calls: int
    evalsha_calls: int
    findings: int
    pending_after: int
    #: tasks/s while work was queued: findings 20% -> 80% of the tasks, over the
    #: time between (the first read's and the last write's round trips left out)
    steady_per_s: float | None = None
    note: str = ""


@dataclass
class Bench:
    url: str
    host: str
    port: int
    tmp: Path
    concurrency: int
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    seq: int = 0

    def namespace(self, kind: str) -> str:
        self.seq += 1
        return f"dist-{self.run_id}-{self.seq}-{kind}"

    async def client(self) -> Redis:
        return Redis.from_url(self.url, decode_responses=False)


def url_via(bench: Bench, proxy: ProxyProcess | None) -> str:
    return bench.url if proxy is None else f"redis://{bench.host}:{proxy.port}/0"


async def commandstats(client: Redis) -> dict[str, int]:
    info = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


async def measure_throughput(
    bench: Bench, proxy: ProxyProcess | None, rtt_ms: float, n: int, repeat: int
) -> Run:
    ns = bench.namespace(f"tp{rtt_ms:g}")
    settings = Settings.from_flat(
        {"url": url_via(bench, proxy), "namespace": ns, "concurrency": bench.concurrency}
    )
    k = Keys(ns).spec(SPEC)
    stage = Settings.from_flat({"url": bench.url, "namespace": f"{ns}-stage"})
    staging = Keys(f"{ns}-stage").spec(SPEC).tasks
    client = await bench.client()
    proc = None
    try:
        async with Swarm(stage, client=client) as swarm:
            tasks = [Task(spec=SPEC, text=f"task {i}") for i in range(n)]
            for i in range(0, n, 1000):
                await swarm.submit_many(tasks[i : i + 1000])
        name = f"dist-{ns}"
        log = bench.tmp / f"{name}.log"
        with log.open("wb") as out:
            proc = spawn_worker([SPEC], "echo", settings, name=name, stdout=out, stderr=out)
        await wait_consumer(client, f"swarmstream:{name}", proc, log)
        await asyncio.sleep(0.2)  # let start-up traffic (heartbeat, gate) settle

        ppid = proxy.proc.pid if proxy else None
        w0, p0 = cpu_seconds(proc.pid), cpu_seconds(ppid)
        await client.config_resetstat()
        pending: list[int] = []
        t0 = time.perf_counter()
        await client.rename(staging, k.tasks)
        last, last_change = -1, time.monotonic()
        marks: dict[float, float] = {}  # fraction of the findings -> when it was reached
        while True:
            async with client.pipeline(transaction=False) as pipe:
                pipe.xlen(k.findings)
                pipe.xpending(k.tasks, GROUP)
                done, pend = await pipe.execute()
            for fraction in STEADY:
                if fraction not in marks and done >= fraction * n:
                    marks[fraction] = time.perf_counter()
            if done >= n:
                elapsed = time.perf_counter() - t0
                break
            pending.append(int(pend["pending"]))
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > STALL:
                raise RuntimeError(f"stalled for {STALL:g}s at {done} of {n} findings")
            await asyncio.sleep(POLL)
        w1, p1 = cpu_seconds(proc.pid), cpu_seconds(ppid)
        stats = await commandstats(client)
        rc = stop_process(proc)
        summary = log.read_text(errors="replace").strip().splitlines()
        return Run(
            rtt_ms,
            repeat,
            n,
            elapsed,
            n / elapsed,
            w1 - w0 if w0 is not None and w1 is not None else None,
            p1 - p0 if p0 is not None and p1 is not None else None,
            statistics.fmean(pending) if pending else 0.0,
            max(pending, default=0),
            stats.get("xreadgroup", 0),
            stats.get("evalsha", 0),
            int(await client.xlen(k.findings)),
            int((await client.xpending(k.tasks, GROUP))["pending"]),
            steady_per_s=steady_rate(marks, n),
            note=(summary[-1] if summary else "") + (f" (rc {rc})" if rc else ""),
        )
    finally:
        if proc is not None:
            stop_process(proc)
        await drop_namespace(client, ns)
        await drop_namespace(client, f"{ns}-stage")
        await client.aclose()


async def measure_round_trip(
    bench: Bench, proxy: ProxyProcess | None, rtt_ms: float, samples: int
) -> list[float]:
    """Submit-to-finding of single tasks, client and worker both behind the proxy (s)."""
    ns = bench.namespace(f"rt{rtt_ms:g}")
    settings = Settings.from_flat(
        {"url": url_via(bench, proxy), "namespace": ns, "concurrency": bench.concurrency}
    )
    client = await bench.client()
    proc = None
    out: list[float] = []
    rng = random.Random(7)
    try:
        name = f"dist-{ns}"
        log = bench.tmp / f"{name}.log"
        with log.open("wb") as f:
            proc = spawn_worker([SPEC], "echo", settings, name=name, stdout=f, stderr=f)
        await wait_consumer(client, f"swarmstream:{name}", proc, log)
        async with Swarm(settings) as swarm:
            await swarm.check()
            first = await swarm.submit(SPEC, "warm-up")  # connections and scripts warm
            await swarm.wait(first, timeout=60)
            for i in range(samples):
                # an untimed pause, so samples do not phase-lock with the worker's
                # block timeout (a read re-sent every block + RTT)
                await asyncio.sleep(rng.uniform(0.02, 0.1) + rtt_ms / 1000)
                t0 = time.perf_counter()
                task = await swarm.submit(SPEC, f"task {i}")
                await swarm.wait(task, timeout=60)
                out.append(time.perf_counter() - t0)
        return out
    finally:
        if proc is not None:
            stop_process(proc)
        await drop_namespace(client, ns)
        await client.aclose()


# -- driver -------------------------------------------------------------------------


def steady_rate(marks: dict[float, float], n: int) -> float | None:
    lo, hi = STEADY
    if lo not in marks or hi not in marks or marks[hi] <= marks[lo]:
        return None
    return (hi - lo) * n / (marks[hi] - marks[lo])


def aggregate(runs: list[Run]) -> dict[str, Any]:
    rates = [r.tasks_per_s for r in runs]
    tasks = sum(r.tasks for r in runs)
    entry: dict[str, Any] = {"stats": summarize(rates), "runs": [asdict(r) for r in runs]}
    steady = [r.steady_per_s for r in runs if r.steady_per_s is not None]
    entry["steady"] = summarize(steady) if steady else None
    entry["tasks_per_read"] = tasks / max(1, sum(r.xreadgroup_calls for r in runs))
    entry["mean_pending"] = statistics.fmean(r.mean_pending for r in runs)
    secs = sum(r.seconds for r in runs)
    entry["reads_per_s"] = sum(r.xreadgroup_calls for r in runs) / secs
    for who in ("worker", "proxy"):
        values = [getattr(r, f"{who}_cpu_s") for r in runs]
        if values and all(v is not None for v in values):
            entry[f"{who}_cpu_per_task_us"] = sum(values) / tasks * 1e6
            entry[f"{who}_cpu_util"] = sum(values) / secs
    return entry


async def run_all(args: argparse.Namespace, srv: Server) -> dict[str, Any]:
    host, port = srv.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    bench = Bench(srv.url, host, int(port), srv.tmp, args.concurrency)
    rtts = [float(x) for x in args.rtt.split(",")]
    proxies: dict[float, ProxyProcess | None] = {}
    runs: dict[float, list[Run]] = {r: [] for r in rtts}
    trips: dict[float, list[float]] = {r: [] for r in rtts}
    try:
        for rtt in rtts:
            proxies[rtt] = ProxyProcess.start(host, int(port), rtt / 2000) if rtt > 0 else None
        # one untimed warm-up (imports, page cache, allocator)
        await measure_throughput(bench, None, 0, min(args.tasks, 1000), -1)
        for rep in range(args.repeat):
            order = rtts if rep % 2 == 0 else rtts[::-1]
            for rtt in order:
                run = await measure_throughput(bench, proxies[rtt], rtt, args.tasks, rep)
                runs[rtt].append(run)
                console.print(
                    f"  rep {rep + 1}/{args.repeat} rtt {rtt:>5g} ms {fmt_rate(run.tasks_per_s):>8}"
                    f" tasks/s ({run.seconds:.2f}s; reads {run.xreadgroup_calls}, evalsha "
                    f"{run.evalsha_calls}, mean pending {run.mean_pending:.0f}, max "
                    f"{run.max_pending}; findings {run.findings}, pending {run.pending_after})",
                    highlight=False,
                )
        for rtt in rtts:
            samples = args.samples if rtt < 100 else max(3, args.samples // 2)
            trips[rtt] = await measure_round_trip(bench, proxies[rtt], rtt, samples)
            p50 = statistics.median(trips[rtt]) * 1000
            console.print(
                f"  round trip rtt {rtt:>5g} ms: p50 {p50:.1f} ms"
                + (f" = {p50 / rtt:.2f} RTT" if rtt else ""),
                highlight=False,
            )
    finally:
        for p in proxies.values():
            if p is not None:
                p.stop()
    table: dict[str, Any] = {}
    for rtt in rtts:
        entry = aggregate(runs[rtt])
        ms = [x * 1000 for x in trips[rtt]]
        entry["round_trip_ms"] = summarize(ms)
        entry["round_trip_ms"]["mean"] = statistics.fmean(ms)
        if rtt > 0:
            entry["round_trip_rtt"] = {
                k: v / rtt for k, v in entry["round_trip_ms"].items() if k != "n"
            }
        entry["window_bound"] = args.concurrency / (rtt / 1000) if rtt else None
        table[f"{rtt:g}"] = entry
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(srv.version),
        "config": {
            "rtt_ms": rtts,
            "tasks": args.tasks,
            "repeat": args.repeat,
            "concurrency": args.concurrency,
            "samples": args.samples,
            "handler": "echo",
            "proxy": "swarmstream.netproxy.FaultProxy (delay only), own process",
            "quick": args.quick,
        },
        "rtt": table,
    }
    one = table.get("1")
    far = table.get("250")
    if one and far:
        ratio = far["stats"]["median"] / one["stats"]["median"]
        steady = None
        if one["steady"] and far["steady"]:
            steady = far["steady"]["median"] / one["steady"]["median"]
        trip = far.get("round_trip_rtt", {}).get("median")
        report["goal"] = {
            "throughput_250_over_1": ratio,
            "steady_250_over_1": steady,
            "throughput_met": steady is not None and steady >= 0.5,
            "round_trip_250_rtt": trip,
            "round_trip_met": trip is not None and trip <= 2.1,
        }
    return report


def show(report: dict[str, Any]) -> None:
    c = report["config"]
    t = Table(title=f"one worker, echo, concurrency {c['concurrency']}, {c['tasks']:,} tasks")
    cols = [
        "RTT ms",
        "tasks/s median",
        "min-max",
        "x 1 ms",
        "queued: tasks/s",
        "x 1 ms ",
        "c/RTT",
        "tasks/read",
        "reads/s",
        "mean pending",
        "worker CPU",
        "round trip p50 ms",
        "in RTT",
    ]
    for col in cols:
        t.add_column(col, justify="right")
    base = report["rtt"].get("1", {}).get("stats", {}).get("median")
    steady_base = (report["rtt"].get("1", {}).get("steady") or {}).get("median")
    for rtt, e in report["rtt"].items():
        s, rt = e["stats"], e["round_trip_ms"]
        q = (e.get("steady") or {}).get("median")
        cpu = e.get("worker_cpu_per_task_us")
        t.add_row(
            rtt,
            fmt_rate(s["median"]),
            f"{fmt_rate(s['min'])}-{fmt_rate(s['max'])}",
            f"{s['median'] / base:.2f}" if base else "-",
            fmt_rate(q) if q else "-",
            f"{q / steady_base:.2f}" if q and steady_base else "-",
            fmt_rate(e["window_bound"]) if e["window_bound"] else "-",
            f"{e['tasks_per_read']:.0f}",
            f"{e['reads_per_s']:.1f}",
            f"{e['mean_pending']:.0f}",
            f"{cpu:.0f} µs" if cpu is not None else "-",
            f"{rt['median']:.1f}",
            f"{e['round_trip_rtt']['median']:.2f}" if "round_trip_rtt" in e else "-",
        )
    console.print(t)
    if "goal" in report:
        g = report["goal"]
        steady = g.get("steady_250_over_1")
        console.print(
            f"250 ms / 1 ms throughput while work is queued: [bold]"
            f"{steady if steady is None else format(steady, '.2f')}[/] (goal >= 0.5: "
            f"{'met' if g['throughput_met'] else 'NOT met'}); whole drain of "
            f"{report['config']['tasks']:,} tasks: {g['throughput_250_over_1']:.2f} (it includes "
            "the first read's and the last write's round trips); round trip at 250 ms: "
            f"[bold]{g['round_trip_250_rtt']:.2f} RTT[/] (goal <= 2.1: "
            f"{'met' if g['round_trip_met'] else 'NOT met'})"
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rtt", default="0,1,20,80,250", help="round-trip delays in ms (0: no proxy)")
    p.add_argument("--tasks", type=int, default=40_000, help="tasks per throughput run")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--samples", type=int, default=20, help="round trips per RTT (half past 100)")
    p.add_argument("--redis-url", help="use this server (keys namespaced, deleted afterwards)")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--plot", metavar="PATH", help="write a PNG plot here")
    p.add_argument("--quick", action="store_true", help="CI smoke: 0,20 ms, 500 tasks, 1 repeat")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.repeat, args.samples = min(args.tasks, 500), 1, 3
        if args.rtt == p.get_default("rtt"):
            args.rtt = "0,20"
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--proxy-child"]:
        proxy_child(argv[1], float(argv[2]))
        return 0
    args = parse_args(argv)

    async def measure(srv: Server) -> dict[str, Any]:
        console.print(describe(srv, f"{args.tasks:,} tasks x {args.repeat}; "), highlight=False)
        return await run_all(args, srv)

    report = drive(args, measure, show, console)
    if args.plot:
        plot(report, Path(args.plot))
        console.print(f"wrote {args.plot}")
    return 0


def plot(report: dict[str, Any], path: Path) -> None:
    """Tasks/s against the round trip (whole drain and while queued, with the 0.5x
    goal), and the submit-to-finding round trip in RTTs (the 2.1 goal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(float(k), e) for k, e in report["rtt"].items() if float(k) > 0]
    x = [k for k, _ in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.plot(x, [e["stats"]["median"] for _, e in rows], "o-", label="whole drain")
    queued = [(e.get("steady") or {}).get("median") for _, e in rows]
    left.plot(x, [q if q is not None else float("nan") for q in queued], "s-", label="while queued")
    one = report["rtt"].get("1")
    if one and one.get("steady"):
        goal = 0.5 * one["steady"]["median"]
        left.axhline(goal, color="red", linestyle="--", label="goal: 0.5x the 1 ms queued rate")
    left.set_xscale("log")
    left.set_ylim(bottom=0)
    left.set_xlabel("round trip to Redis, ms")
    left.set_title("one worker, no-op tasks, tasks/s")
    left.legend()
    trips = [(e.get("round_trip_rtt") or {}).get("median") for _, e in rows]
    right.plot(x, [t if t is not None else float("nan") for t in trips], "o-")
    right.axhline(2.1, color="red", linestyle="--", label="goal 2.1")
    right.axhline(2.0, color="grey", linestyle=":", label="floor 2.0")
    right.set_xscale("log")
    right.set_xlabel("round trip to Redis, ms")
    right.set_title("submit -> finding, in round trips")
    right.legend()
    c = report["config"]
    fig.suptitle(f"distance: concurrency {c['concurrency']}, {c['tasks']:,} tasks")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
