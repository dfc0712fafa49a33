"""One ``swarmstream bench`` run: the processes, the measurements, ``run_bench``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import redis
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from swarmstream import codec
from swarmstream.bench.raw import drop_namespace, machine_info, stop_process, xadd_batches
from swarmstream.bench.report import (
    BATCH,
    BORROW_REPEATS,
    RAW_BLOCK_MS,
    BenchConfig,
    BenchReport,
    Figure,
)
from swarmstream.client import Swarm
from swarmstream.embedded import EmbeddedRedis, free_port
from swarmstream.errors import ConfigError, SwarmstreamError
from swarmstream.keys import GROUP, Keys
from swarmstream.models import Task
from swarmstream.settings import Settings
from swarmstream.shard.borrow import ContextCache
from swarmstream.shard.shard import MemoryShard
from swarmstream.worker.process import spawn_worker

SPEC, ENQ_SPEC, SHARD = "tp", "enq", "ctx"
POLL = 0.002  # seconds between result counts while a consumer drains its backlog
STALL = 20.0  # seconds without progress that fail a run
WARMUP = 10
T = TypeVar("T")
Progress = Callable[[str], None]


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
        return Keys(self.cfg.namespace).raw(tag, name)

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
    problems = [
        f"--tasks must be at least 10 (got {tasks})" if tasks < 10 else "",
        f"--requests must be at least 2 (got {requests})" if requests < 2 else "",
        f"--repeats must be 1 to 100 (got {repeats})" if not 1 <= repeats <= 100 else "",
        f"concurrency must be at least 1 (got {concurrency})" if concurrency < 1 else "",
    ]
    if any(problems):
        raise ConfigError(", ".join(p for p in problems if p))
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
