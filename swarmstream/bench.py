"""``swarmstream bench``: swarmstream against plain redis-py on one Redis server, both
sides measured in the same run (interleaved, medians), in a few seconds.

* enqueue: ``Swarm.submit_many`` in batches of 1000 vs a pipelined XADD of the same bodies;
* consume: one worker process (``echo``, concurrency 128) vs a raw consumer process
  (XREADGROUP COUNT 100; one pipeline per batch: XADD a result per task, XACK). Both
  start first; each run pre-loads a staging stream (its group at 0) and releases it
  with one RENAME over the stream the consumer blocks on: start-up is never timed;
* latency: submit -> finding, one in flight, vs raw streams (XADD; the raw consumer
  answers; XREAD BLOCK on its results): p50 and p99;
* borrow: a cold ``ContextCache.borrow`` of a ~3.2 MB context vs a raw GET of the bytes.

No URL: an embedded redis-server on a free port. A URL: every key lives in a fresh
namespace ``bench-<hex>``, deleted with SCAN + UNLINK at the end; nothing is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import redis
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from swarmstream import __version__, codec
from swarmstream.client import Swarm
from swarmstream.embedded import EmbeddedRedis, free_port
from swarmstream.errors import ConfigError, SwarmstreamError
from swarmstream.keys import GROUP
from swarmstream.models import Task
from swarmstream.settings import Settings
from swarmstream.shard.borrow import ContextCache
from swarmstream.shard.shard import MemoryShard
from swarmstream.worker.process import spawn_worker

SPEC, ENQ_SPEC, SHARD = "tp", "enq", "ctx"
BATCH = 1000  # tasks per submit_many call / pipeline
RAW_COUNT, RAW_BLOCK_MS = 100, 1000
POLL = 0.002  # seconds between result counts while a consumer drains its backlog
STALL = 20.0  # seconds without progress that fail a run
BORROW_REPEATS, WARMUP = 40, 10
TARGETS = {"consume": 0.8, "latency_p50": 1.3, "borrow": 1.3}  # issue 6, swarmstream/raw
T = TypeVar("T")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Figure:
    """One comparison of swarmstream with raw redis-py, both measured in this run."""

    key: str
    label: str
    unit: str  # "tasks/s" (higher is better) or "ms" (lower is better)
    swarmstream: float
    raw: float
    samples: tuple[float, ...] = ()  # swarmstream's repeats (or latencies), in ``unit``
    raw_samples: tuple[float, ...] = ()

    @property
    def ratio(self) -> float:
        return self.swarmstream / self.raw

    @property
    def higher_is_better(self) -> bool:
        return self.unit == "tasks/s"

    @property
    def met(self) -> bool | None:
        """Whether the issue-6 target is met; None without a target."""
        t = TARGETS.get(self.key)
        if t is None:
            return None
        return self.ratio >= t if self.higher_is_better else self.ratio <= t

    @property
    def target(self) -> str | None:
        t = TARGETS.get(self.key)
        return None if t is None else f"{'>=' if self.higher_is_better else '<='} {t:g}x"


@dataclass(frozen=True)
class BenchConfig:
    """What a run measures, and where."""

    tasks: int = 10_000
    requests: int = 300
    repeats: int = 2
    concurrency: int = 128
    borrow_bytes: int = 3_200_000
    redis: str = "embedded"  # or "external"
    url: str = ""  # password redacted
    namespace: str = field(default_factory=lambda: f"bench-{secrets.token_hex(6)}")
    enqueue_batch: int = BATCH
    raw_count: int = RAW_COUNT
    borrow_repeats: int = BORROW_REPEATS


@dataclass(frozen=True)
class BenchReport:
    """What ``run_bench`` measured, with the machine and the configuration."""

    date: str
    seconds: float
    machine: dict[str, Any]
    config: BenchConfig
    figures: tuple[Figure, ...]

    def figure(self, key: str) -> Figure:
        return next(f for f in self.figures if f.key == key)

    def to_json(self) -> dict[str, Any]:
        figures = {
            f.key: asdict(f) | {"ratio": f.ratio, "target": f.target, "met": f.met}
            for f in self.figures
        }
        head = {"date": self.date, "seconds": round(self.seconds, 2), "machine": self.machine}
        return head | {"config": asdict(self.config), "figures": figures}


# -- the raw reference consumer (its own process: python -m swarmstream.bench) ----


def raw_consumer(url: str, stream: str, results: str, name: str) -> None:
    """Plain redis-py + hiredis: read up to RAW_COUNT tasks, then one pipeline per
    batch with an XADD of a small msgpack result per task and one XACK. SIGTERM ends it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    client: Any = redis.Redis.from_url(url, client_name=name)  # replies are bytes
    packb, unpackb = msgpack.packb, msgpack.unpackb
    while True:
        reply = client.xreadgroup(GROUP, name, {stream: ">"}, count=RAW_COUNT, block=RAW_BLOCK_MS)
        for _stream, entries in reply or ():
            pipe = client.pipeline(transaction=False)
            for _id, fields in entries:
                task = unpackb(fields[b"body"])
                out = {"task_id": task["id"], "status": "ok", "content": task["text"]}
                out |= {"worker": name, "finished": time.time()}
                pipe.xadd(results, {"task_id": task["id"], "status": "ok", "body": packb(out)})
            pipe.xack(stream, GROUP, *(entry[0] for entry in entries))
            pipe.execute()


# -- helpers ---------------------------------------------------------------------


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a child's process group, then SIGKILL it if it does not exit in time."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


async def xadd_batches(
    client: Redis, stream: str, entries: Iterable[dict[Any, Any]], batch: int = BATCH
) -> None:
    """XADD ``entries`` to ``stream``, ``batch`` per pipelined round trip."""
    items = iter(entries)
    while chunk := list(itertools.islice(items, batch)):
        async with client.pipeline(transaction=False) as pipe:
            for fields in chunk:
                pipe.xadd(stream, fields)
            await pipe.execute()


async def drop_namespace(client: Redis, namespace: str) -> int:
    """UNLINK every key of ``namespace`` (SCAN MATCH ns:*), and nothing else."""
    removed, batch = 0, []
    async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            removed, batch = removed + await client.unlink(*batch), []
    return removed + (await client.unlink(*batch) if batch else 0)


def machine_info(redis_version: str) -> dict[str, Any]:
    hiredis: Any = None
    with contextlib.suppress(ImportError):
        import hiredis
    return {
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "redis_py": redis.__version__,
        "hiredis": hiredis.__version__ if hiredis and redis.utils.HIREDIS_AVAILABLE else None,
        "swarmstream": __version__,
    }


async def _alternate(
    ours: Callable[[], Awaitable[T]], raw: Callable[[], Awaitable[T]], rounds: int
) -> tuple[list[T], list[T]]:
    """Both sides ``rounds`` times, alternating which one goes first."""
    a: list[T] = []
    b: list[T] = []
    for r in range(rounds):
        if r % 2:
            b.append(await raw())
        a.append(await ours())
        if not r % 2:
            b.append(await raw())
    return a, b


def _figure(key: str, label: str, unit: str, ab: tuple[list[float], list[float]]) -> Figure:
    a, b = ab
    return Figure(key, label, unit, statistics.median(a), statistics.median(b), (*a,), (*b,))


def _documents(total: int, count: int = 8) -> list[tuple[str, str]]:
    """``count`` deterministic text files of about ``total`` bytes in all."""
    phrase = "a worker borrows its shard's context by reference, cached by version"
    lines = max(1, total // count // len(f"0000000 {phrase}\n"))
    text = "".join(f"{i:07d} {phrase}\n" for i in range(lines))
    return [(f"docs/part_{d}.md", text) for d in range(count)]


@dataclass
class _Consumer:
    """A consumer process, the stream it blocks on, and how to count what it did."""

    client_name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stream: str
    done: Callable[[], Awaitable[int]]

    def check(self) -> None:
        if self.proc.poll() is not None:
            last = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            rc = self.proc.returncode
            raise SwarmstreamError(f"{self.client_name} exited early (code {rc}): {last[0]}")

    async def blocked(self, client: Redis, timeout: float = 30.0) -> None:
        """Wait until this consumer's connection is blocked in XREADGROUP."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                clients = await client.client_list()
            except NoPermissionError:  # an ACL user without CLIENT LIST: wait one block
                return await asyncio.sleep(RAW_BLOCK_MS / 1000 + 0.2)
            mine = (self.client_name, "xreadgroup")
            if any((c.get("name"), c.get("cmd")) == mine and "b" in c["flags"] for c in clients):
                return None
            await asyncio.sleep(0.01)
        raise SwarmstreamError(f"{self.client_name} did not wait for tasks within {timeout:g}s")


async def _count(reply: Awaitable[Any]) -> int:
    return int(await reply or 0)


# -- one run -------------------------------------------------------------------


@dataclass
class _Run:
    url: str
    tmp: Path
    cfg: BenchConfig
    progress: Progress
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def raw_key(self, tag: str, name: str) -> str:
        return f"{self.cfg.namespace}:raw:{{{tag}}}:{name}"

    def start(
        self, name: str, argv: list[str], settings: Settings
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """The raw consumer (``argv``), or with no argv a swarmstream worker process;
        returns it with its log file."""
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            proc = (
                subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
                if argv
                else spawn_worker([SPEC], "echo", settings, name=name, stdout=out, stderr=out)
            )
        self.procs.append(proc)
        return proc, log

    def stop_processes(self) -> None:
        for proc in self.procs:
            stop_process(proc)

    async def main(self) -> tuple[list[Figure], str]:
        ns, n = self.cfg.namespace, self.cfg.concurrency
        # retries 0: an unreachable server fails at once, and a measurement never
        # silently includes a reconnection (the worker process keeps its defaults)
        flat = {"url": self.url, "namespace": ns, "concurrency": n, "retries": 0}
        settings = Settings.from_flat(flat)
        swarm = Swarm(settings)
        try:
            await swarm.check()  # ConnectionFailed (exit 3) before anything is written
            version = str((await swarm.client.info("server")).get("redis_version", "?"))
            try:
                figures = [await self.enqueue(swarm)]
                figures += await self.consume(swarm, settings)
                figures.append(await self.borrow(swarm))
            finally:
                self.progress("cleaning up")
                self.stop_processes()  # before the keys go, so that nothing writes again
                await drop_namespace(swarm.client, ns)
        finally:
            await swarm.aclose()
        return figures, version

    async def enqueue(self, swarm: Swarm) -> Figure:
        n, client = self.cfg.tasks, swarm.client
        self.progress(f"enqueue: {n:,} tasks in batches of {BATCH}")
        ours_stream, raw_stream = swarm.keys.spec(ENQ_SPEC).tasks, self.raw_key(ENQ_SPEC, "tasks")
        await swarm.streams.ensure_group(ENQ_SPEC)
        tasks = [Task(spec=ENQ_SPEC, text=f"task {i}") for i in range(n)]
        # the raw side starts from the dicts that codec.encode_task packs
        bodies = [codec.unpack(codec.encode_task(t)[codec.BODY]) for t in tasks]
        packb = msgpack.packb

        async def ours() -> float:
            t0 = time.perf_counter()
            for i in range(0, n, BATCH):
                await swarm.submit_many(tasks[i : i + BATCH])
            return n / (time.perf_counter() - t0)

        async def raw() -> float:
            t0 = time.perf_counter()
            await xadd_batches(client, raw_stream, ({"body": packb(b)} for b in bodies))
            rate = n / (time.perf_counter() - t0)
            await client.xtrim(ours_stream, maxlen=0)
            await client.xtrim(raw_stream, maxlen=0)
            return rate

        ab = await _alternate(ours, raw, self.cfg.repeats)
        return _figure("enqueue", "enqueue", "tasks/s", ab)

    async def consume(self, swarm: Swarm, settings: Settings) -> list[Figure]:
        self.progress("starting a worker process and the raw consumer")
        client, k, ns = swarm.client, swarm.keys.spec(SPEC), self.cfg.namespace
        raw_tasks, raw_results = self.raw_key(SPEC, "tasks"), self.raw_key(SPEC, "results")
        await client.xgroup_create(raw_tasks, GROUP, id="$", mkstream=True)
        worker, raw_name = f"{ns}-worker", f"{ns}-raw"
        argv = [sys.executable, "-m", "swarmstream.bench", "_raw-consumer", self.url]
        argv += [raw_tasks, raw_results, raw_name]
        raw_done, ours_done = (
            lambda: _count(client.xlen(raw_results)),
            lambda: _count(client.hget(k.stats, "ok")),
        )
        raw = _Consumer(raw_name, *self.start(raw_name, argv, settings), raw_tasks, raw_done)
        ours_proc, log = self.start(worker, [], settings)
        ours = _Consumer(f"swarmstream:{worker}", ours_proc, log, k.tasks, ours_done)
        for c in (ours, raw):  # untimed warm-up: both answer, and neither runs cold
            await self.release(client, c, min(self.cfg.tasks, 1000))
        runs = {ours.client_name: 0, raw.client_name: 0}

        def run(c: _Consumer) -> Awaitable[float]:
            runs[c.client_name] += 1
            side = "swarmstream" if c is ours else "raw"
            self.progress(f"consume: {self.cfg.tasks:,} tasks, {side}, run {runs[c.client_name]}")
            return self.release(client, c, self.cfg.tasks)

        ab = await _alternate(lambda: run(ours), lambda: run(raw), self.cfg.repeats)
        consume = _figure("consume", "consume, 1 worker", "tasks/s", ab)
        return [consume, *await self.latency(swarm, raw_tasks, raw_results)]

    async def release(self, client: Any, c: _Consumer, n: int) -> float:
        """Pre-load ``n`` tasks into a staging stream (group at 0), wait until ``c`` is
        blocked in XREADGROUP, RENAME the staging stream over its stream, and time
        until ``n`` more results exist. Returns tasks/s."""
        staging = f"{c.stream}:staging"
        await client.xgroup_create(staging, GROUP, id="0", mkstream=True)
        tasks = (Task(spec=SPEC, text=f"task {i}") for i in range(n))
        await xadd_batches(client, staging, (codec.encode_task(t) for t in tasks))
        await c.blocked(client)
        target = await c.done() + n
        t0 = time.perf_counter()
        await client.rename(staging, c.stream)
        last, changed = -1, time.monotonic()
        while (done := await c.done()) < target:
            if done != last:
                last, changed = done, time.monotonic()
            elif time.monotonic() - changed > STALL:
                c.check()
                raise SwarmstreamError(f"{c.client_name} stalled at {done - target + n} of {n}")
            await asyncio.sleep(POLL)
        return n / (time.perf_counter() - t0)

    async def latency(self, swarm: Swarm, raw_tasks: str, raw_results: str) -> list[Figure]:
        """Round trips one at a time, swarmstream's and the raw one's alternating. The raw
        requester is synchronous redis-py (as in benchmarks/latency.py); it blocks this
        event loop, which has nothing else to do meanwhile."""
        self.progress(f"latency: {self.cfg.requests} round trips each, one in flight")
        sync: Any = redis.Redis.from_url(self.url)
        cursor = (sync.xrevrange(raw_results, count=1) or [(b"0-0",)])[0][0]

        def raw_once() -> float:
            nonlocal cursor
            want, deadline = f"raw-{secrets.token_hex(8)}", time.monotonic() + STALL
            t0 = time.perf_counter()
            sync.xadd(raw_tasks, {"body": msgpack.packb({"id": want, "text": "ping"})})
            while time.monotonic() < deadline:
                for _key, entries in sync.xread({raw_results: cursor}, block=1000) or ():
                    for entry_id, fields in entries:
                        cursor = entry_id
                        if fields[b"task_id"] == want.encode():
                            return (time.perf_counter() - t0) * 1e3
            raise SwarmstreamError(f"the raw consumer did not answer within {STALL:g}s")

        async def ours_once() -> float:
            t0 = time.perf_counter()
            await swarm.wait(await swarm.submit(SPEC, "ping"), timeout=STALL)
            return (time.perf_counter() - t0) * 1e3

        async def raw() -> float:
            return raw_once()

        try:
            await _alternate(ours_once, raw, WARMUP)
            ms, raw_ms = await _alternate(ours_once, raw, self.cfg.requests)
        finally:
            sync.close()
        q, rq = (statistics.quantiles(xs, n=100, method="inclusive") for xs in (ms, raw_ms))
        label = "round trip"
        return [
            Figure("latency_p50", f"{label}, p50", "ms", q[49], rq[49], (*ms,), (*raw_ms,)),
            Figure("latency_p99", f"{label}, p99", "ms", q[98], rq[98]),
        ]

    async def borrow(self, swarm: Swarm) -> Figure:
        size, client = self.cfg.borrow_bytes, swarm.client
        self.progress(f"borrow: a {size / 1e6:.1f} MB context, cold cache, vs GET")
        shard = MemoryShard(swarm, SHARD, SPEC)
        await shard.load_documents(_documents(size))
        ctx = await ContextCache(shard.store).borrow(shard.id)
        raw_key = self.raw_key(SHARD, "ctx")
        await client.set(raw_key, ctx.blob if ctx else b"")

        async def ours() -> float:
            t0 = time.perf_counter()
            await ContextCache(shard.store).borrow(shard.id)  # a fresh cache: cold
            return (time.perf_counter() - t0) * 1e3

        async def raw() -> float:
            t0 = time.perf_counter()
            await client.get(raw_key)
            return (time.perf_counter() - t0) * 1e3

        await _alternate(ours, raw, 4)  # untimed warm-up
        ab = await _alternate(ours, raw, BORROW_REPEATS)
        return _figure("borrow", f"borrow {size / 1e6:.1f} MB, cold", "ms", ab)


@contextlib.contextmanager
def _server(url: str | None, tmp: Path) -> Iterator[str]:
    """``url``, or an embedded redis-server (no persistence) stopped afterwards."""
    if url is not None:
        yield url
        return
    server = EmbeddedRedis(dir=tmp / "redis", port=free_port(), appendonly=False)
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C meanwhile, so that child processes, keys and the
    embedded server are cleaned up (in the main thread; restored afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_bench(
    url: str | None,
    tasks: int = 10_000,
    requests: int = 300,
    *,
    repeats: int = 5,
    concurrency: int = 128,
    borrow_mb: float = 3.2,
    progress: Progress | None = None,
) -> BenchReport:
    """Measure swarmstream against raw redis-py (see the module docstring).

    ``url`` None runs on an embedded redis-server. Raises ConfigError for bad sizes
    or a bad URL, ConnectionFailed when Redis cannot be reached."""
    if tasks < 10 or requests < 2 or not 1 <= repeats <= 100 or concurrency < 1:
        raise ConfigError(
            f"--tasks must be at least 10 (got {tasks}), --requests at least 2 (got "
            f"{requests}), --repeats 1 to 100 (got {repeats}), concurrency at least 1"
        )
    if not 0 < borrow_mb <= 512:
        raise ConfigError(f"the context size must be above 0 and at most 512 MB, not {borrow_mb}")
    redacted = Settings.from_flat({"url": url}).redis.redacted_url if url else ""  # checks it
    where = "external" if url else "embedded"
    cfg = BenchConfig(tasks, requests, repeats, concurrency, round(borrow_mb * 1e6), where)
    started, date = time.monotonic(), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with (
        _sigterm_unwinds(),
        tempfile.TemporaryDirectory(prefix="swarmstream-bench-") as tmp,
        _server(url, Path(tmp)) as server_url,
    ):
        cfg = replace(cfg, url=redacted or server_url)
        run = _Run(server_url, Path(tmp), cfg, progress or (lambda _: None))
        try:
            figures, version = asyncio.run(run.main())
        finally:
            run.stop_processes()  # done already, unless the run was interrupted
    return BenchReport(date, time.monotonic() - started, machine_info(version), cfg, (*figures,))


# -- rendering ---------------------------------------------------------------------


def _value(x: float, unit: str) -> str:
    return f"{x:,.0f}" if unit == "tasks/s" else f"{x:.3g}"


def render(report: BenchReport) -> RenderableType:
    """The report as a Rich table (80 columns), a verdict per issue-6 target, a footer."""
    m, cfg = report.machine, report.config
    load = "" if m["load_avg_1m"] is None else f", load {m['load_avg_1m']:.2f}"
    head = (
        f"swarmstream bench: redis {m['redis_server']} ({cfg.redis}), {m['cpu_count']} CPUs"
        f"{load}, python {m['python']}, redis-py {m['redis_py']}, hiredis {m['hiredis'] or 'no'}"
    )
    table = Table(header_style="bold")
    for col in ("measurement", "swarmstream", "raw redis-py", "ratio", "target"):
        table.add_column(col, justify="left" if col == "measurement" else "right")
    lines: list[RenderableType] = [Text(head, style="bold"), table]
    for f in report.figures:
        style = {True: "green", False: "red", None: "dim"}[f.met]
        ratio, target = Text(f"{f.ratio:.2f}x", style="bold"), Text(f.target or "-", style=style)
        label = f"{f.label} ({f.unit})"
        table.add_row(label, _value(f.swarmstream, f.unit), _value(f.raw, f.unit), ratio, target)
        if f.target:
            verdict = f"{'meets' if f.met else 'misses'} the {f.target} target"
            lines.append(Text(f"{f.label}: {f.ratio:.2f}x raw, ").append(verdict, style))
    foot = (
        f"ratio = swarmstream/raw, medians of {cfg.repeats} interleaved repeats of {cfg.tasks:,} "
        f"tasks and of {cfg.requests} round trips a side. The targets are informational, and "
        f"the figures move with machine load. {report.seconds:.1f} s in all."
    )
    return Group(*lines, Text(foot, style="dim"))


def _main(argv: list[str]) -> int:
    if argv[:1] == ["_raw-consumer"] and len(argv) == 5:
        raw_consumer(*argv[1:])
        return 0
    print("internal use: _raw-consumer URL STREAM RESULTS NAME", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
