"""Throughput of one swarmstream worker process against a hand-written redis-py loop.

Measured side by side, in one run, on one Redis server:

* ``raw``: a reference consumer in its own process (sync redis-py + hiredis,
  msgpack bodies): XREADGROUP COUNT 100 BLOCK, then one pipeline per batch with
  an XADD of a small result per task and one XACK of the batch.
* ``swarmstream cN``: one worker process (``python -m swarmstream worker SPEC
  --handler echo --concurrency N``, started with ``spawn_worker``).
* enqueue rate of ``Swarm.submit_many`` in batches (and of a raw pipelined XADD).

Each consumption measurement pre-loads N tasks, starts the consumer process, waits
until it is blocked in XREADGROUP, then releases the whole backlog at once and times
until N results exist (XLEN of the results/findings stream, polled every 2 ms). The
tasks wait in a staging stream whose consumer group sits at 0; one RENAME over the
stream the consumer blocks on wakes it. Process start-up and shutdown are outside
the timed window. Runs of all configurations are interleaved and repeated; every
namespace is deleted after use.

    python benchmarks/throughput.py                  # full: 20000 tasks x 5 repeats
    python benchmarks/throughput.py --quick          # CI smoke, a few seconds
    python benchmarks/throughput.py --json out.json --profile prof/
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from swarmstream import codec
from swarmstream.bench.raw import drop_namespace
from swarmstream.bench.report import RAW_BLOCK_MS, RAW_COUNT
from swarmstream.client import Swarm
from swarmstream.keys import GROUP, Keys, SpecKeys
from swarmstream.models import Task
from swarmstream.settings import Retention, Settings
from swarmstream.worker.process import spawn_worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Server, describe, drive, machine_info, summarize

SPEC = "bench"
POLL = 0.002
STALL = 30.0
console = Console() if sys.stdout.isatty() else Console(width=150)


# -- measuring helpers --------------------------------------------------------


def cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU seconds of a process so far (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    parts = stat[stat.rindex(")") + 2 :].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def cpu_total(pids: int | list[int] | None) -> float | None:
    """Summed CPU seconds of one or several processes, or None."""
    if pids is None or isinstance(pids, int):
        return cpu_seconds(pids)
    values = [cpu_seconds(p) for p in pids]
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)


@dataclass
class Run:
    kind: str  # "raw" or "swarmstream"
    concurrency: int | None
    repeat: int
    tasks: int
    seconds: float
    tasks_per_s: float
    consumer_cpu_s: float | None
    redis_cpu_s: float | None
    results: int
    pending_after: int
    note: str = ""
    processes: int = 1

    @property
    def label(self) -> str:
        if self.kind == "raw":
            return "raw redis-py"
        if self.processes > 1:
            return f"swarmstream {self.processes}p x c{self.concurrency}"
        return f"swarmstream c{self.concurrency}"


@dataclass
class Bench:
    url: str
    redis_pid: int | None
    tmp: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    seq: int = 0

    def namespace(self, kind: str) -> str:
        self.seq += 1
        return f"bench-{self.run_id}-{self.seq}-{kind}"

    async def client(self) -> Redis:
        return Redis.from_url(self.url, decode_responses=False)


async def wait_consumer(client: Redis, name: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until a connection named ``name`` is blocked in XREADGROUP (CLIENT LIST)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"consumer exited early (rc {proc.returncode}):\n{tail}")
        for c in await client.client_list():
            if c.get("name") == name and c.get("cmd") == "xreadgroup" and "b" in c["flags"]:
                return
        await asyncio.sleep(0.01)
    raise RuntimeError(f"consumer {name} never blocked in XREADGROUP")


async def start_workers(
    bench: Bench,
    client: Redis,
    settings: Settings,
    spec: str,
    handler: str,
    prefix: str,
    count: int,
    into: list[subprocess.Popen[bytes]],
) -> list[Path]:
    """Start ``count`` worker processes of ``spec`` named ``<prefix>-w<i>`` (appended to ``into`` as
    they start, so the caller's cleanup stops them all) and wait until each is blocked
    in XREADGROUP. Returns their log files."""
    logs = []
    for i in range(count):
        name = f"{prefix}-w{i}"
        logs.append(bench.tmp / f"{name}.log")
        with logs[-1].open("wb") as out:
            into.append(spawn_worker([spec], handler, settings, name=name, stdout=out, stderr=out))
    for i, (proc, log) in enumerate(zip(into[-count:], logs, strict=True)):
        await wait_consumer(client, f"swarmstream:{prefix}-w{i}", proc, log)
    return logs


@dataclass(frozen=True)
class Layout:
    """``processes`` worker processes of ``concurrency`` slots each."""

    processes: int
    concurrency: int

    @property
    def slots(self) -> int:
        return self.processes * self.concurrency

    @property
    def label(self) -> str:
        return f"{self.processes}x{self.concurrency}"


async def release_and_time(
    client: Redis,
    staging: str,
    stream: str,
    results: Callable[[], Awaitable[int]],
    n: int,
    pids: tuple[int | list[int] | None, int | None],
) -> tuple[float, float | None, float | None]:
    """RENAME the staging stream (its group at 0) over the one the consumers block on,
    which wakes them with the whole backlog; time until ``n`` results exist. Returns
    seconds, and CPU seconds of the consumers (summed) and of redis-server in the
    window."""
    consumer_pids, redis_pid = pids
    c0, r0 = cpu_total(consumer_pids), cpu_seconds(redis_pid)
    t0 = time.perf_counter()
    await client.rename(staging, stream)
    last, last_change = -1, time.monotonic()
    while True:
        done = await results()
        if done >= n:
            elapsed = time.perf_counter() - t0
            break
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > STALL:
            raise RuntimeError(f"stalled for {STALL:g}s at {done} of {n} results")
        await asyncio.sleep(POLL)
    c1, r1 = cpu_total(consumer_pids), cpu_seconds(redis_pid)
    cpu_c = c1 - c0 if c0 is not None and c1 is not None else None
    cpu_r = r1 - r0 if r0 is not None and r1 is not None else None
    return elapsed, cpu_c, cpu_r


def findings_counter(client: Redis, k: SpecKeys, n: int) -> Callable[[], Awaitable[int]]:
    """How many findings exist: XLEN of the findings stream, or, past its MAXLEN (the
    stream is trimmed), the spec's ``ok`` counter, written by the same Lua call."""

    async def xlen() -> int:
        return int(await client.xlen(k.findings))

    async def ok() -> int:
        return int(await client.hget(k.stats, "ok") or 0)

    return xlen if n <= Retention().findings_maxlen else ok


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout)


async def pending_count(client: Redis, stream: str) -> int:
    info = await client.xpending(stream, GROUP)
    return int(info["pending"])


def task_body(i: int, spec: str) -> dict[Any, Any]:
    """The fields of a task as swarmstream encodes them (also used by raw)."""
    return codec.encode_task(Task(spec=spec, text=f"task {i}"))


# -- one measurement of each kind ---------------------------------------------


def start_profiler(pid: int, out: Path, rate: int) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        console.print("[yellow]py-spy not found; run `pip install py-spy` to profile[/]")
        return None
    argv = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
    argv += ["--full-filenames", "-o", str(out)]  # on-CPU samples only (no --idle)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attach
    return proc


async def measure_raw(
    bench: Bench, n: int, repeat: int, profile: Path | None = None, rate: int = 250
) -> Run:
    ns = bench.namespace("raw")
    stream, results, staging = f"{ns}:raw:tasks", f"{ns}:raw:results", f"{ns}:raw:staging"
    client = await bench.client()
    log = bench.tmp / f"{ns}.log"
    proc = None
    prof = None
    try:
        await client.xgroup_create(staging, GROUP, id="0", mkstream=True)
        async with client.pipeline(transaction=False) as pipe:
            for i in range(n):
                pipe.xadd(staging, task_body(i, SPEC))
                if len(pipe) >= 1000:
                    await pipe.execute()
            await pipe.execute()
        await client.xgroup_create(stream, GROUP, id="$", mkstream=True)
        name = f"raw-{ns}"
        argv = [sys.executable, "-m", "swarmstream.bench", "_raw-consumer"]
        argv += [bench.url, stream, results, name, str(RAW_COUNT)]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
        await wait_consumer(client, name, proc, log)
        if profile is not None:
            prof = start_profiler(proc.pid, profile / "raw.txt", rate)
        seconds, cpu_c, cpu_r = await release_and_time(
            client, staging, stream, lambda: client.xlen(results), n, (proc.pid, bench.redis_pid)
        )
        stop_process(proc)
        if prof is not None:
            prof.wait(30)
        return Run(
            "raw",
            None,
            repeat,
            n,
            seconds,
            n / seconds,
            cpu_c,
            cpu_r,
            await client.xlen(results),
            await pending_count(client, stream),
        )
    finally:
        if proc is not None:
            stop_process(proc)
        await drop_namespace(client, ns)
        await client.aclose()


async def measure_swarmstream(
    bench: Bench,
    n: int,
    concurrency: int,
    repeat: int,
    profile: Path | None = None,
    rate: int = 250,
    processes: int = 1,
) -> Run:
    ns = bench.namespace(f"ss{processes}x{concurrency}")
    settings = Settings.from_flat({"url": bench.url, "namespace": ns, "concurrency": concurrency})
    k = Keys(ns).spec(SPEC)
    # the tasks are submitted to a staging namespace, then renamed into place
    stage = Settings.from_flat({"url": bench.url, "namespace": f"{ns}-stage"})
    staging = Keys(f"{ns}-stage").spec(SPEC).tasks
    client = await bench.client()
    procs: list[subprocess.Popen[bytes]] = []
    prof = None
    try:
        async with Swarm(stage, client=client) as swarm:
            tasks = [Task(spec=SPEC, text=f"task {i}") for i in range(n)]
            for i in range(0, len(tasks), 1000):
                await swarm.submit_many(tasks[i : i + 1000])
        logs = await start_workers(
            bench, client, settings, SPEC, "echo", f"ss-{ns}", processes, procs
        )
        if profile is not None:
            prof = start_profiler(procs[0].pid, profile / f"swarmstream-c{concurrency}.txt", rate)
        seconds, cpu_c, cpu_r = await release_and_time(
            client,
            staging,
            k.tasks,
            findings_counter(client, k, n),
            n,
            ([p.pid for p in procs], bench.redis_pid),
        )
        rcs = [stop_process(proc) for proc in procs]
        if prof is not None:
            prof.wait(30)
        summary = logs[0].read_text(errors="replace").strip().splitlines()
        bad = [rc for rc in rcs if rc != 0]
        return Run(
            "swarmstream",
            concurrency,
            repeat,
            n,
            seconds,
            n / seconds,
            cpu_c,
            cpu_r,
            await findings_counter(client, k, n)(),
            await pending_count(client, k.tasks),
            note=(summary[-1] if summary else "") + (f" (rc {bad})" if bad else ""),
            processes=processes,
        )
    finally:
        for proc in procs:
            stop_process(proc)
        await drop_namespace(client, ns)
        await drop_namespace(client, f"{ns}-stage")
        await client.aclose()


async def measure_enqueue(bench: Bench, n: int, batch: int) -> dict[str, float]:
    """Tasks/s of Swarm.submit_many in batches, and of a raw pipelined XADD (same bodies).

    Task objects are built before the clock starts; encoding is inside it for both."""
    out: dict[str, float] = {}
    client = await bench.client()
    try:
        ns = bench.namespace("enq")
        settings = Settings.from_flat({"url": bench.url, "namespace": ns})
        async with Swarm(settings, client=client) as swarm:
            await swarm.streams.ensure_group(SPEC)
            tasks = [Task(spec=SPEC, text=f"task {i}") for i in range(n)]
            t0 = time.perf_counter()
            for i in range(0, n, batch):
                await swarm.submit_many(tasks[i : i + batch])
            out["submit_many"] = n / (time.perf_counter() - t0)
        await drop_namespace(client, ns)

        ns = bench.namespace("enqraw")
        stream = f"{ns}:raw:tasks"
        bodies = [
            {"id": t.id, "spec": t.spec, "text": t.text, "max_attempts": 3, "created": t.created}
            for t in tasks
        ]
        packb = msgpack.packb
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            async with client.pipeline(transaction=False) as pipe:
                for body in bodies[i : i + batch]:
                    pipe.xadd(stream, {"body": packb(body)})
                await pipe.execute()
        out["raw_xadd"] = n / (time.perf_counter() - t0)
        await drop_namespace(client, ns)
    finally:
        await client.aclose()
    return out


# -- profile summary ------------------------------------------------------------


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/swarmstream/", "/benchmarks/"):
        if marker in path:
            rest = path.split(marker, 1)[1]
            return rest if marker == "site-packages/" else marker.strip("/") + "/" + rest
    parts = path.split("/")
    if len(parts) >= 2 and parts[-2] in ("asyncio", "concurrent"):
        return "/".join(parts[-2:])
    return parts[-1]


def _frame(frame: str) -> tuple[str, str]:
    """'func (/path/to/file.py:12)' -> ('func (file.py)', 'file.py:12 func')."""
    if " (" not in frame:
        return frame or "?", frame or "?"
    func, where = frame.split(" (", 1)
    path, _, line = where.rstrip(")").rpartition(":")
    short = _short_path(path)
    return f"{func} ({short})", f"{short}:{line} {func}"


#: frames every sample passes through (process entry, CLI, event loop driver)
_BOILERPLATE = ("runpy", "typer/", "click/", "asyncio/runners.py", "<module>", "base_events.py")


def summarize_profile(path: Path, top: int = 30) -> dict[str, Any]:
    """Shares of on-CPU samples from py-spy's raw (collapsed stacks) output: self time
    per function, inclusive time per function (entry and event-loop frames left out),
    and self time per source line of swarmstream's own code."""
    self_: dict[str, int] = defaultdict(int)
    incl: dict[str, int] = defaultdict(int)
    lines: dict[str, int] = defaultdict(int)
    total = 0
    for row in path.read_text().splitlines():
        if not row.strip():
            continue
        stack, _, count = row.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";")]
        c = int(count)
        total += c
        self_[frames[-1][0]] += c
        for func in {f for f, _ in frames}:
            if not any(b in func for b in _BOILERPLATE):
                incl[func] += c
        # the innermost frame of our own code: where swarmstream spent it, per line
        own = [ln for _, ln in frames if ln.startswith("swarmstream/")]
        if own:
            lines[own[-1]] += c
    total = total or 1

    def top_of(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {
        "samples": total,
        "self": top_of(self_),
        "inclusive": top_of(incl),
        "lines": top_of(lines),
    }


# -- driver -------------------------------------------------------------------


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def print_tables(report: dict[str, Any]) -> None:
    consume = report["consume"]
    raw_median = consume["raw"]["stats"]["median"]
    table = Table(title=f"consume {report['config']['tasks']:,} tasks (tasks/s)")
    for col in ("consumer", "median", "min-max", "IQR", "x raw", "consumer CPU", "redis CPU"):
        table.add_column(col, justify="left" if col == "consumer" else "right")
    for label, entry in consume.items():
        s = entry["stats"]
        table.add_row(
            entry["label"] + (" ★" if label == f"c{report.get('best_concurrency')}" else ""),
            fmt_rate(s["median"]),
            f"{fmt_rate(s['min'])}-{fmt_rate(s['max'])}",
            f"{fmt_rate(s['q1'])}-{fmt_rate(s['q3'])}",
            f"{s['median'] / raw_median:.2f}",
            _cpu(entry.get("consumer_cpu_per_task_us"), entry.get("consumer_cpu_util")),
            _cpu(entry.get("redis_cpu_per_task_us"), entry.get("redis_cpu_util")),
        )
    console.print(table)
    enq = Table(title=f"enqueue {report['config']['tasks']:,} tasks (tasks/s, median)")
    for col in ("batch", "Swarm.submit_many", "raw pipelined XADD", "x raw"):
        enq.add_column(col, justify="right")
    for batch, entry in report["enqueue"].items():
        sm, rx = entry["submit_many"]["median"], entry["raw_xadd"]["median"]
        enq.add_row(batch, fmt_rate(sm), fmt_rate(rx), f"{sm / rx:.2f}")
    console.print(enq)
    best = report.get("best_concurrency")
    console.print(
        f"swarmstream/raw (medians, best concurrency {best}): [bold]{report['ratio']:.2f}[/]"
    )


def _cpu(per_task_us: float | None, util: float | None) -> str:
    if per_task_us is None or util is None:
        return "-"
    return f"{per_task_us:.0f} µs/task, {util:.0%}"


def aggregate(runs: list[Run], label: str) -> dict[str, Any]:
    rates = [r.tasks_per_s for r in runs]
    entry: dict[str, Any] = {
        "label": label,
        "stats": summarize(rates),
        "runs": [asdict(r) for r in runs],
    }
    tasks = sum(r.tasks for r in runs)
    secs = sum(r.seconds for r in runs)
    for who, attr in (("consumer", "consumer_cpu_s"), ("redis", "redis_cpu_s")):
        values = [getattr(r, attr) for r in runs]
        if all(v is not None for v in values):
            cpu = sum(values)
            entry[f"{who}_cpu_per_task_us"] = cpu / tasks * 1e6
            entry[f"{who}_cpu_util"] = cpu / secs
    return entry


async def measure_processes(
    args: argparse.Namespace, bench: Bench, concurrency: int, processes: list[int]
) -> dict[str, Any]:
    """Several worker processes on one stream, at one concurrency each, interleaved."""
    runs: dict[int, list[Run]] = defaultdict(list)
    for rep in range(args.repeat if processes else 0):
        for p in processes if rep % 2 == 0 else processes[::-1]:
            run = await measure_swarmstream(bench, args.tasks, concurrency, rep, processes=p)
            runs[p].append(run)
            console.print(
                f"  rep {rep + 1}/{args.repeat} {run.label:<18} {fmt_rate(run.tasks_per_s):>8} "
                f"tasks/s ({run.seconds:.3f}s; results {run.results}, "
                f"pending {run.pending_after})",
                highlight=False,
            )
    return {f"p{p}": aggregate(runs[p], runs[p][0].label) for p in processes}


async def run_all(args: argparse.Namespace, bench: Bench, redis_version: str) -> dict[str, Any]:
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    batches = [int(b) for b in args.enqueue_batches.split(",")]
    runs: dict[str, list[Run]] = defaultdict(list)
    # one untimed warm-up of each kind (page cache, redis allocator, imports)
    warm = max(200, min(args.tasks // 10, 2000))
    await measure_raw(bench, warm, -1)
    await measure_swarmstream(bench, warm, concurrencies[0], -1)
    for rep in range(args.repeat):
        order: list[int | None] = [None, *concurrencies]
        if rep % 2:  # alternate the order so no configuration always runs first
            order = order[::-1]
        for c in order:
            if c is None:
                run = await measure_raw(bench, args.tasks, rep)
            else:
                run = await measure_swarmstream(bench, args.tasks, c, rep)
            runs["raw" if c is None else f"c{c}"].append(run)
            cpu = f" consumer cpu {run.consumer_cpu_s:.2f}s" if run.consumer_cpu_s else ""
            console.print(
                f"  rep {rep + 1}/{args.repeat} {run.label:<18} {fmt_rate(run.tasks_per_s):>8} "
                f"tasks/s ({run.seconds:.3f}s{cpu}; results {run.results}, "
                f"pending {run.pending_after})",
                highlight=False,
            )
            if run.results < run.tasks or run.pending_after:
                console.print(f"[red]  incomplete run: {run}[/]")
    consume = {"raw": aggregate(runs["raw"], "raw redis-py")}
    for c in concurrencies:
        consume[f"c{c}"] = aggregate(runs[f"c{c}"], f"swarmstream c{c}")
    raw_median = consume["raw"]["stats"]["median"]
    best = max(concurrencies, key=lambda c: consume[f"c{c}"]["stats"]["median"])
    processes = [p for p in (int(x) for x in args.processes.split(",") if x) if p > 1]
    consume.update(await measure_processes(args, bench, best, processes))
    enqueue: dict[str, Any] = {}
    for batch in batches:
        sm: list[float] = []
        rx: list[float] = []
        for _ in range(args.repeat):
            rates = await measure_enqueue(bench, args.tasks, batch)
            sm.append(rates["submit_many"])
            rx.append(rates["raw_xadd"])
        enqueue[str(batch)] = {"submit_many": summarize(sm), "raw_xadd": summarize(rx)}
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(redis_version),
        "config": {
            "tasks": args.tasks,
            "repeat": args.repeat,
            "concurrency": concurrencies,
            "raw_count": RAW_COUNT,
            "raw_block_ms": RAW_BLOCK_MS,
            "poll_s": POLL,
            "enqueue_batches": batches,
            "processes": [1, *processes],
            "redis": "external" if args.redis_url else "embedded (appendonly no, save '')",
            "quick": args.quick,
        },
        "consume": consume,
        "best_concurrency": best,
        "ratio": consume[f"c{best}"]["stats"]["median"] / raw_median,
        "ratios": {
            key: entry["stats"]["median"] / raw_median
            for key, entry in consume.items()
            if key != "raw"
        },
        "enqueue": enqueue,
    }
    if args.profile:
        report["profile"] = await run_profiles(args, bench, best)
    return report


async def run_profiles(args: argparse.Namespace, bench: Bench, best: int) -> dict[str, Any]:
    """One extra, untimed-for-the-table run of each kind with py-spy attached."""
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    n = args.profile_tasks
    console.print(f"profiling with py-spy ({n:,} tasks, {args.profile_rate} Hz) into {out}/")
    raw = await measure_raw(bench, n, -1, out, args.profile_rate)
    ss = await measure_swarmstream(bench, n, best, -1, out, args.profile_rate)
    console.print(
        f"  under py-spy: raw {fmt_rate(raw.tasks_per_s)}/s, swarmstream c{best} "
        f"{fmt_rate(ss.tasks_per_s)}/s",
        highlight=False,
    )
    report: dict[str, Any] = {"tasks": n, "rate_hz": args.profile_rate}
    for name, path in (("raw", out / "raw.txt"), ("swarmstream", out / f"swarmstream-c{best}.txt")):
        if path.exists():
            report[name] = summarize_profile(path)
            report[name]["file"] = str(path)
            print_profile(name, report[name])
    return report


def print_profile(name: str, prof: dict[str, Any], top: int = 20) -> None:
    table = Table(title=f"{name}: {prof['samples']} on-CPU samples (py-spy), % of those")
    for col in ("self %", "function (self time)", "incl %", "function (inclusive)"):
        table.add_column(col, justify="right" if "%" in col else "left")
    for (fs, ps), (fi, pi) in zip(prof["self"][:top], prof["inclusive"][:top], strict=False):
        table.add_row(f"{ps:.1%}", fs, f"{pi:.1%}", fi)
    console.print(table)
    if prof["lines"]:
        lines = Table(title=f"{name}: innermost swarmstream line of each sample (incl. callees)")
        lines.add_column("%", justify="right")
        lines.add_column("line")
        for ln, share in prof["lines"][:top]:
            lines.add_row(f"{share:.1%}", ln)
        console.print(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=20_000, help="tasks per measurement")
    p.add_argument("--repeat", type=int, default=5, help="measurements per configuration")
    p.add_argument(
        "--concurrency", default="32,64,128", help="worker concurrencies to try (comma list)"
    )
    p.add_argument("--enqueue-batches", default="100,1000,5000", help="submit_many batch sizes")
    p.add_argument(
        "--processes",
        default="1,2,4",
        help="worker processes (comma list); more than 1 runs at the best concurrency",
    )
    p.add_argument(
        "--redis-url",
        help="use this server instead of starting one (keys are "
        "namespaced and deleted afterwards; nothing is flushed)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a CI smoke run")
    p.add_argument("--profile", metavar="DIR", help="also profile both consumers with py-spy")
    p.add_argument("--profile-tasks", type=int, default=100_000)
    p.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.repeat = min(args.tasks, 500), 1
        if args.concurrency == p.get_default("concurrency"):
            args.concurrency = "64"
        if args.enqueue_batches == p.get_default("enqueue_batches"):
            args.enqueue_batches = "100"
        if args.processes == p.get_default("processes"):
            args.processes = "1,2"
    if args.tasks < 2 or args.repeat < 1:
        p.error("--tasks must be at least 2 and --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    async def measure(srv: Server) -> dict[str, Any]:
        detail = f"{args.tasks:,} tasks x {args.repeat} repeats; "
        console.print(describe(srv, detail), highlight=False)
        return await run_all(args, Bench(srv.url, srv.pid, srv.tmp), srv.version)

    drive(args, measure, print_tables, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
