"""Scale curve: throughput and Redis memory from 1k to 100k tasks, 1 to 64 workers.

Each cell of the grid (tasks x workers) runs like ``throughput.py``: N tasks are
pre-loaded into a staging stream, the worker processes are started and blocked in
XREADGROUP, one RENAME releases the backlog, and the clock runs until N findings
exist (the spec's ``ok`` counter, written by the same Lua call as the finding).
"workers" are concurrency slots: ``min(workers, --max-processes)`` worker processes
of ``workers / processes`` slots each (a 2-core machine cannot run 64 Python
processes usefully). The no-op ``echo`` handler measures the cost of the machinery;
an optional ``sleep`` curve (``--sleep-ms``, I/O-bound work) shows what many slots buy.

Redis ``used_memory`` is read before loading, after loading (the backlog), every
~50 ms during the run (the peak), when the last finding exists, and after the
workers' own trimming has run (task stream ``XTRIM MINID``, every ``trim_interval``);
with the findings stream capped at ``--findings-maxlen`` and one ``done:<task>``
marker per task (TTL ``done_ttl``), whose bytes are reported separately.

    python benchmarks/scale.py                  # 1k,10k,100k x 1,4,16,64 + sleep 5 ms curve
    python benchmarks/scale.py --quick          # CI smoke: 200,1000 x 1,4
    python benchmarks/scale.py --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Server, describe, drive, machine_info, summarize
from benchmarks.throughput import Bench, Layout, cpu_seconds, start_workers, stop_process
from swarmstream.bench.raw import drop_namespace
from swarmstream.client import Swarm
from swarmstream.keys import GROUP, Keys
from swarmstream.models import Task
from swarmstream.settings import Retention, Settings, WorkerSettings

SPEC = "scale"
POLL = 0.002  # completion poll
SAMPLE = 0.05  # memory sample interval
STALL = 30.0
BATCH = 1000  # submit_many batch when pre-loading
console = Console() if sys.stdout.isatty() else Console(width=150)


@dataclass(frozen=True)
class ScaleLayout(Layout):
    """A layout for a number of workers (concurrency slots) asked for."""

    workers: int = 0


def layout(workers: int, max_processes: int) -> ScaleLayout:
    processes = min(workers, max_processes)
    return ScaleLayout(processes, math.ceil(workers / processes), workers)


@dataclass
class Cell:
    kind: str  # "echo" or "sleep"
    tasks: int
    workers: int
    processes: int
    concurrency: int
    repeat: int
    sleep_ms: float
    seconds: float
    tasks_per_s: float
    us_per_task: float
    ideal_s: float
    preload_s: float
    worker_cpu_s: float | None
    redis_cpu_s: float | None
    # Redis used_memory (bytes, server-wide)
    mem_base: int
    mem_loaded: int
    mem_peak: int
    mem_end: int
    mem_after: int
    mem_samples: int
    # what is left after the run and the workers' trimming
    trim_wait_s: float
    trimmed: bool
    tasks_xlen_end: int
    tasks_xlen_after: int
    findings_xlen: int
    tasks_stream_bytes: int
    findings_stream_bytes: int
    done_keys: int
    done_key_bytes: float
    ok: int
    pending: int

    @property
    def label(self) -> str:
        return f"{self.kind} {self.tasks:,} x {self.workers}"


# -- Redis helpers -----------------------------------------------------------


async def used_memory(client: Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def settle(client: Redis, timeout: float = 5.0) -> int:
    """Wait until lazily freed objects (UNLINK) are gone and used_memory has stopped
    moving (serverCron shrinks the keyspace tables after a big delete); returns it."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        info = await client.info("memory")
        used = int(info["used_memory"])
        if int(info.get("lazyfree_pending_objects", 0)) == 0 and abs(used - last) < 16384:
            return used
        last = used
        await asyncio.sleep(0.1)
    return await used_memory(client)


async def memory_usage(client: Redis, key: str) -> int:
    """MEMORY USAGE of a key, every stream node counted (SAMPLES 0); 0 if absent."""
    return int(await client.memory_usage(key, samples=0) or 0)


async def done_markers(client: Redis, pattern: str, sample: int = 50) -> tuple[int, float]:
    """How many ``done:<task>`` keys exist, and the mean MEMORY USAGE of a few."""
    count, picked = 0, list[bytes]()
    async for key in client.scan_iter(match=pattern, count=10_000):
        count += 1
        if len(picked) < sample:
            picked.append(key)
    sizes = [int(await client.memory_usage(k) or 0) for k in picked]
    return count, (sum(sizes) / len(sizes) if sizes else 0.0)


def stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every worker first, then wait for each (a draining worker takes up to
    its XREADGROUP block, 1 s, to leave)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        stop_process(proc)


# -- one cell ------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    max_processes: int
    findings_maxlen: int
    done_ttl: int
    trim_interval: float
    heartbeat_interval: float


async def measure(
    bench: Bench, n: int, lay: ScaleLayout, sleep_ms: float, repeat: int, opt: Options
) -> Cell:
    kind = "sleep" if sleep_ms > 0 else "echo"
    ns = bench.namespace(f"scale-{kind}-{n}-{lay.workers}")
    flat: dict[str, Any] = {
        "url": bench.url,
        "namespace": ns,
        "concurrency": lay.concurrency,
        "findings_maxlen": opt.findings_maxlen,
        "done_ttl": opt.done_ttl,
        "trim_interval": opt.trim_interval,
        "heartbeat_interval": opt.heartbeat_interval,
    }
    settings = Settings.from_flat(flat)
    k = Keys(ns).spec(SPEC)
    stage_ns = f"{ns}-stage"
    staging = Keys(stage_ns).spec(SPEC).tasks
    client = await bench.client()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        mem_base = await settle(client)
        data = {"ms": sleep_ms} if sleep_ms > 0 else None
        t0 = time.perf_counter()
        async with Swarm(Settings.from_flat({"url": bench.url, "namespace": stage_ns})) as swarm:
            for i in range(0, n, BATCH):
                batch = [
                    Task(spec=SPEC, text=f"task {j}", data=data)
                    for j in range(i, min(n, i + BATCH))
                ]
                await swarm.submit_many(batch)
        preload = time.perf_counter() - t0
        mem_loaded = await used_memory(client)
        await start_workers(bench, client, settings, SPEC, kind, ns, lay.processes, procs)

        # -- timed: release the backlog, wait for n findings, sample memory
        cpu_w0 = [cpu_seconds(p.pid) for p in procs]
        cpu_r0 = cpu_seconds(bench.redis_pid)
        peak, samples = mem_loaded, 0
        t0 = time.perf_counter()
        await client.rename(staging, k.tasks)
        next_sample = t0
        last, last_change = -1, time.monotonic()
        while True:
            done = int(await client.hget(k.stats, "ok") or 0)
            if done >= n:
                seconds = time.perf_counter() - t0
                break
            now = time.perf_counter()
            if now >= next_sample:
                peak = max(peak, await used_memory(client))
                samples += 1
                next_sample = now + SAMPLE
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > STALL:
                raise RuntimeError(f"{kind} {n} x {lay.workers}: stalled at {done} of {n}")
            await asyncio.sleep(POLL)
        cpu_w1 = [cpu_seconds(p.pid) for p in procs]
        cpu_r1 = cpu_seconds(bench.redis_pid)
        mem_end = await used_memory(client)
        peak = max(peak, mem_end)
        xlen_end = int(await client.xlen(k.tasks))

        # -- after: wait for the workers' own trim of the task stream
        t1 = time.perf_counter()
        limit = opt.trim_interval + 2 * opt.heartbeat_interval + 2.0
        xlen_after = xlen_end
        while xlen_after > TRIMMED and time.perf_counter() - t1 < limit:
            await asyncio.sleep(0.05)
            xlen_after = int(await client.xlen(k.tasks))
        trim_wait = time.perf_counter() - t1
        mem_after = await used_memory(client)
        done_keys, done_bytes = await done_markers(client, f"{k.done('')}*")
        info = await client.xpending(k.tasks, GROUP)
        cell = Cell(
            kind=kind,
            tasks=n,
            workers=lay.workers,
            processes=lay.processes,
            concurrency=lay.concurrency,
            repeat=repeat,
            sleep_ms=sleep_ms,
            seconds=seconds,
            tasks_per_s=n / seconds,
            us_per_task=seconds / n * 1e6,
            ideal_s=n * sleep_ms / 1000 / lay.slots,
            preload_s=preload,
            worker_cpu_s=_cpu_delta(cpu_w0, cpu_w1),
            redis_cpu_s=_cpu_delta([cpu_r0], [cpu_r1]),
            mem_base=mem_base,
            mem_loaded=mem_loaded,
            mem_peak=peak,
            mem_end=mem_end,
            mem_after=mem_after,
            mem_samples=samples,
            trim_wait_s=trim_wait,
            trimmed=xlen_after <= TRIMMED,
            tasks_xlen_end=xlen_end,
            tasks_xlen_after=xlen_after,
            findings_xlen=int(await client.xlen(k.findings)),
            tasks_stream_bytes=await memory_usage(client, k.tasks),
            findings_stream_bytes=await memory_usage(client, k.findings),
            done_keys=done_keys,
            done_key_bytes=done_bytes,
            ok=int(await client.hget(k.stats, "ok") or 0),
            pending=int(info["pending"]),
        )
        check(cell, opt)
        return cell
    finally:
        stop_all(procs)
        await drop_namespace(client, ns)
        await drop_namespace(client, stage_ns)
        await settle(client)
        await client.aclose()


#: a task stream trimmed by ``XTRIM MINID ~`` keeps at most the last macro node
#: (``stream-node-max-entries``, 100 by default)
TRIMMED = 100


def _cpu_delta(before: list[float | None], after: list[float | None]) -> float | None:
    total = 0.0
    for b, a in zip(before, after, strict=True):
        if a is None or b is None:
            return None
        total += a - b
    return total


def check(cell: Cell, opt: Options) -> None:
    """Exactly N findings, nothing pending, one done marker per task, and the
    findings stream within its cap (MAXLEN ~ trims whole nodes: up to ~100 over)."""
    problems = []
    if cell.ok != cell.tasks:
        problems.append(f"{cell.ok} findings for {cell.tasks} tasks")
    if cell.pending:
        problems.append(f"{cell.pending} entries still pending")
    if cell.done_keys != cell.tasks:
        problems.append(f"{cell.done_keys} done markers for {cell.tasks} tasks")
    if cell.findings_xlen > min(cell.tasks, opt.findings_maxlen) + 2 * TRIMMED:
        problems.append(f"findings stream holds {cell.findings_xlen} (cap {opt.findings_maxlen})")
    if problems:
        raise AssertionError(f"{cell.label}: " + "; ".join(problems))


# -- summaries and tables ----------------------------------------------------

MIB = 1024 * 1024


def aggregate(cells: list[Cell]) -> dict[str, Any]:
    """Medians and spread over the repeats of one (kind, tasks, workers) cell."""
    c = cells[0]
    n = c.tasks

    def med(values: list[float]) -> dict[str, float]:
        return summarize(values)

    out: dict[str, Any] = {
        "kind": c.kind,
        "tasks": n,
        "workers": c.workers,
        "processes": c.processes,
        "concurrency": c.concurrency,
        "sleep_ms": c.sleep_ms,
        "ideal_s": c.ideal_s,
        "seconds": med([x.seconds for x in cells]),
        "tasks_per_s": med([x.tasks_per_s for x in cells]),
        "us_per_task": med([x.us_per_task for x in cells]),
        "preload_tasks_per_s": med([n / x.preload_s for x in cells]),
        "mem_loaded_delta": med([x.mem_loaded - x.mem_base for x in cells]),
        "mem_peak_delta": med([x.mem_peak - x.mem_base for x in cells]),
        "mem_end_delta": med([x.mem_end - x.mem_base for x in cells]),
        "mem_after_delta": med([x.mem_after - x.mem_base for x in cells]),
        "done_bytes": med([x.done_keys * x.done_key_bytes for x in cells]),
        "mem_other": med(
            [
                x.mem_after
                - x.mem_base
                - x.done_keys * x.done_key_bytes
                - x.tasks_stream_bytes
                - x.findings_stream_bytes
                for x in cells
            ]
        ),
        "mem_after_without_streams": med(
            [
                x.mem_after - x.mem_base - x.tasks_stream_bytes - x.findings_stream_bytes
                for x in cells
            ]
        ),
        "tasks_xlen_after": max(x.tasks_xlen_after for x in cells),
        "findings_xlen": max(x.findings_xlen for x in cells),
        "tasks_stream_bytes": max(x.tasks_stream_bytes for x in cells),
        "findings_stream_bytes": max(x.findings_stream_bytes for x in cells),
        "done_key_bytes": med([x.done_key_bytes for x in cells]),
        "trim_wait_s": med([x.trim_wait_s for x in cells]),
        "trimmed": all(x.trimmed for x in cells),
    }
    if c.sleep_ms > 0:
        out["efficiency"] = med([x.ideal_s / x.seconds for x in cells])
    for who, attr in (("worker", "worker_cpu_s"), ("redis", "redis_cpu_s")):
        values = [getattr(x, attr) for x in cells]
        if all(v is not None for v in values):
            out[f"{who}_cpu_us_per_task"] = sum(values) / (n * len(cells)) * 1e6
    return out


def linearity(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Per worker count (echo): µs per task at each size, and largest/smallest."""
    out: dict[str, Any] = {}
    for w in sorted({s["workers"] for s in summaries if s["kind"] == "echo"}):
        rows = sorted(
            (s for s in summaries if s["kind"] == "echo" and s["workers"] == w),
            key=lambda s: s["tasks"],
        )
        us = {str(s["tasks"]): s["us_per_task"]["median"] for s in rows}
        after = {str(s["tasks"]): s["mem_after_delta"]["median"] / s["tasks"] for s in rows}
        first, last = rows[0], rows[-1]
        span = last["tasks"] - first["tasks"]
        keys = last["mem_after_without_streams"]["median"]
        keys -= first["mem_after_without_streams"]["median"]
        out[str(w)] = {
            "us_per_task": us,
            "us_ratio_largest_smallest": last["us_per_task"]["median"]
            / first["us_per_task"]["median"],
            "after_bytes_per_task": after,
            # what one more task leaves behind once the streams are trimmed/capped
            "marginal_bytes_per_task_besides_streams": keys / span if span else None,
        }
    return out


def _mib(x: float) -> str:
    return f"{x / MIB:.2f}"


def _rate(s: dict[str, float]) -> str:
    if s["n"] == 1:
        return f"{s['median']:,.0f}"
    return f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f})"


def print_tables(report: dict[str, Any]) -> None:
    cfg = report["config"]
    echo = [s for s in report["summaries"] if s["kind"] == "echo"]
    sleep = [s for s in report["summaries"] if s["kind"] == "sleep"]
    t = Table(title=f"echo (no-op handler): throughput, {cfg['repeat']} run(s) per cell")
    cols: tuple[str, ...] = (
        "tasks",
        "workers",
        "procs x slots",
        "tasks/s",
        "µs/task",
        "worker CPU",
        "redis CPU",
    )
    for col in cols:
        t.add_column(col, justify="right")
    for s in echo:
        t.add_row(
            f"{s['tasks']:,}",
            str(s["workers"]),
            f"{s['processes']} x {s['concurrency']}",
            _rate(s["tasks_per_s"]),
            f"{s['us_per_task']['median']:.1f}",
            _us(s.get("worker_cpu_us_per_task")),
            _us(s.get("redis_cpu_us_per_task")),
        )
    console.print(t)
    m = Table(title="echo: Redis used_memory above the empty server (MiB; B/task)")
    cols = (
        "tasks",
        "workers",
        "loaded",
        "peak",
        "at end",
        "after trim",
        "B/task",
        "task stream",
        "findings stream",
        "done:*",
        "other",
        "tasks XLEN",
        "findings XLEN",
    )
    for col in cols:
        m.add_column(col, justify="right")
    for s in echo:
        n = s["tasks"]
        after = s["mem_after_delta"]["median"]
        m.add_row(
            f"{n:,}",
            str(s["workers"]),
            _mib(s["mem_loaded_delta"]["median"]),
            _mib(s["mem_peak_delta"]["median"]),
            _mib(s["mem_end_delta"]["median"]),
            _mib(after),
            f"{after / n:.0f}",
            _mib(s["tasks_stream_bytes"]),
            _mib(s["findings_stream_bytes"]),
            _mib(s["done_bytes"]["median"]),
            _mib(s["mem_other"]["median"]),
            f"{s['tasks_xlen_after']:,}" + ("" if s["trimmed"] else " (not trimmed)"),
            f"{s['findings_xlen']:,}",
        )
    console.print(m)
    if sleep:
        st = Table(title=f"sleep {cfg['sleep_ms']:g} ms per task (I/O-bound): concurrency scaling")
        cols = ("tasks", "workers", "procs x slots", "ideal s", "seconds", "tasks/s", "efficiency")
        for col in cols:
            st.add_column(col, justify="right")
        for s in sleep:
            st.add_row(
                f"{s['tasks']:,}",
                str(s["workers"]),
                f"{s['processes']} x {s['concurrency']}",
                f"{s['ideal_s']:.2f}",
                f"{s['seconds']['median']:.2f}",
                _rate(s["tasks_per_s"]),
                f"{s['efficiency']['median']:.0%}",
            )
        console.print(st)
    for w, lin in report["linearity"].items():
        us = ", ".join(f"{int(n):,}: {v:.1f}" for n, v in lin["us_per_task"].items())
        after = ", ".join(f"{int(n):,}: {v:.0f}" for n, v in lin["after_bytes_per_task"].items())
        marginal = lin["marginal_bytes_per_task_besides_streams"]
        console.print(
            f"  {w:>2} workers: µs/task {us} (largest/smallest "
            f"{lin['us_ratio_largest_smallest']:.2f}); B/task after trim {after}"
            + ("" if marginal is None else f"; besides the streams, +{marginal:.0f} B per task"),
            highlight=False,
        )
    console.print(
        f"findings MAXLEN ~{cfg['findings_maxlen']:,}; done:<task> TTL {cfg['done_ttl']:,} s; "
        f"workers trim every {cfg['trim_interval']:g} s (upkeep every "
        f"{cfg['heartbeat_interval']:g} s). 'loaded' is the backlog; 'after trim' waits for "
        "the workers' trim; streams and done:* by MEMORY USAGE (SAMPLES 0; done:* = count x "
        "mean of 50 keys); other = the rest (keyspace and expires tables, worker keys, "
        "connections).",
        highlight=False,
    )


def _us(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} µs/task"


# -- driver ------------------------------------------------------------------


def ints(text: str) -> list[int]:
    return [int(x.replace("_", "").replace("k", "000")) for x in str(text).split(",") if x]


async def run_all(args: argparse.Namespace, bench: Bench, redis_version: str) -> dict[str, Any]:
    opt = Options(
        max_processes=args.max_processes,
        findings_maxlen=args.findings_maxlen,
        done_ttl=args.done_ttl,
        trim_interval=args.trim_interval,
        heartbeat_interval=args.heartbeat_interval,
    )
    sizes, workers = ints(args.tasks), ints(args.workers)
    plan: list[tuple[int, int, float]] = [(n, w, 0.0) for n in sizes for w in workers]
    if args.sleep_ms > 0:
        plan += [(args.sleep_tasks, w, args.sleep_ms) for w in workers]
    layouts = {w: layout(w, opt.max_processes) for w in workers}
    console.print(
        f"tasks {', '.join(f'{n:,}' for n in sizes)} x workers "
        f"{', '.join(f'{w} ({layouts[w].label})' for w in workers)}"
        + (f"; sleep {args.sleep_ms:g} ms x {args.sleep_tasks:,} tasks" if args.sleep_ms else "")
        + f"; {args.repeat} repeat(s)",
        highlight=False,
    )
    if not args.quick:  # one untimed warm-up (imports, allocator, page cache)
        await measure(bench, min(sizes[0], 1000), layouts[workers[0]], 0.0, -1, opt)
    cells: dict[tuple[str, int, int], list[Cell]] = {}
    for rep in range(args.repeat):
        order = plan if rep % 2 == 0 else plan[::-1]
        for n, w, sleep_ms in order:
            cell = await measure(bench, n, layouts[w], sleep_ms, rep, opt)
            cells.setdefault((cell.kind, n, w), []).append(cell)
            console.print(
                f"  rep {rep + 1}/{args.repeat} {cell.kind:<5} {n:>7,} x {w:>2} "
                f"({layouts[w].label:>4}): {cell.seconds:7.3f}s {cell.tasks_per_s:>8,.0f}/s "
                f"{cell.us_per_task:7.1f} µs/task; mem +{_mib(cell.mem_loaded - cell.mem_base)} "
                f"loaded, +{_mib(cell.mem_peak - cell.mem_base)} peak, "
                f"+{_mib(cell.mem_after - cell.mem_base)} after "
                f"(trim {cell.trim_wait_s:.1f}s, tasks XLEN {cell.tasks_xlen_after}, "
                f"findings {cell.findings_xlen})",
                highlight=False,
            )
    summaries = [aggregate(cells[(("sleep" if s else "echo"), n, w)]) for n, w, s in plan]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(redis_version),
        "config": {
            "tasks": sizes,
            "workers": workers,
            "layouts": {str(w): asdict(x) for w, x in layouts.items()},
            "sleep_ms": args.sleep_ms,
            "sleep_tasks": args.sleep_tasks,
            "repeat": args.repeat,
            **asdict(opt),
            "poll_s": POLL,
            "memory_sample_s": SAMPLE,
            "redis": "external" if args.redis_url else "embedded (appendonly no, save '')",
            "quick": args.quick,
        },
        "runs": [asdict(c) for cs in cells.values() for c in cs],
        "summaries": summaries,
        "linearity": linearity(summaries),
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", default="1000,10000,100000", help="task counts (comma list)")
    p.add_argument("--workers", default="1,4,16,64", help="concurrency slots (comma list)")
    p.add_argument("--max-processes", type=int, default=4, help="worker processes at most")
    p.add_argument("--sleep-ms", type=float, default=5.0, help="sleep curve work per task; 0: off")
    p.add_argument("--sleep-tasks", type=int, default=2000, help="tasks of the sleep curve")
    p.add_argument("--repeat", type=int, default=2, help="runs per cell")
    p.add_argument(
        "--findings-maxlen",
        type=int,
        default=10_000,
        help=f"findings stream cap (library default {Retention().findings_maxlen:,})",
    )
    p.add_argument("--done-ttl", type=int, default=Retention().done_ttl, help="done:<task> TTL")
    p.add_argument(
        "--trim-interval",
        type=float,
        default=1.0,
        help="workers' task-stream trim interval, s "
        f"(library default {WorkerSettings().trim_interval:g})",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=0.5,
        help="workers' upkeep cadence, s: trims happen on these beats "
        f"(library default {WorkerSettings().heartbeat_interval:g})",
    )
    p.add_argument(
        "--redis-url",
        help="use this server instead of starting one (keys are namespaced and deleted "
        "afterwards; nothing is flushed; used_memory is then server-wide)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke: 200,1000 tasks x 1,4 workers, sleep 100 tasks, findings cap 500, "
        "trim every 0.5 s, no warm-up",
    )
    args = p.parse_args(list(argv))
    if args.quick:
        defaults = {k: p.get_default(k) for k in vars(args)}
        quick = {
            "tasks": "200,1000",
            "workers": "1,4",
            "sleep_tasks": 100,
            "findings_maxlen": 500,
            "trim_interval": 0.5,
            "heartbeat_interval": 0.25,
        }
        for key, value in quick.items():
            if getattr(args, key) == defaults[key]:
                setattr(args, key, value)
        args.repeat = 1
    if min(ints(args.tasks)) < 1 or min(ints(args.workers)) < 1 or args.repeat < 1:
        p.error("--tasks, --workers and --repeat must be at least 1")
    if args.max_processes < 1 or args.sleep_tasks < 1:
        p.error("--max-processes and --sleep-tasks must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    async def measure(srv: Server) -> dict[str, Any]:
        console.print(describe(srv), highlight=False)
        return await run_all(args, Bench(srv.url, srv.pid, srv.tmp), srv.version)

    def show(report: dict[str, Any]) -> None:
        print_tables(report)
        console.print(f"total {report['wall_s']:.1f} s")

    drive(args, measure, show, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
