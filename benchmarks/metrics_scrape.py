"""Cost of one Prometheus scrape of ``swarmstream metrics`` on a big swarm: 100 specs,
1,000 workers, over loopback, with a real HTTP client.

What is built (one fresh namespace, written through swarmstream's own API):

* ``--specs`` specs with ``--tasks-per-spec`` tasks each (``Swarm.submit_many``),
  their stats counters, and usage totals for ``--models`` models and two shards per
  spec in the fields ``swarmstream.accounting`` documents (what the Lua steps write);
  every tenth spec has a budget, and the namespace has one;
* ``--workers`` worker heartbeats (``Registry.heartbeat``, as a live worker writes
  them: a third busy, the rest idle or paused), each serving two specs;
* ``--shards`` memory shards (``ShardStore.register``).

What is measured:

1. ``swarmstream metrics --min-interval 0`` runs as a subprocess, so every scrape
   takes a fresh snapshot (the worst case: Prometheus replicas out of step, or a
   scrape interval longer than ``--min-interval``). ``--scrapes`` GET /metrics with
   urllib (a new connection each, as the server speaks HTTP/1.0), after a warm-up:
   wall time per scrape on the client, and the exporter's own
   ``swarmstream_scrape_duration_seconds`` (the snapshot alone);
2. Redis commands per scrape (INFO commandstats before and after; with
   ``--redis-url`` other clients of that server count too);
3. the size of the answer, plain and gzip (``Accept-Encoding: gzip``, as Prometheus
   asks), and its number of samples;
4. the same scrapes against a second exporter left at a long ``--min-interval``: all
   of them are served from one snapshot (0 Redis commands per scrape).

Without ``--redis-url`` the script starts its own redis-server (no persistence) on a
free port in a temporary directory and stops it at the end. Keys live in a fresh
namespace ``bench-<run>-metrics`` that is deleted at the end (SCAN + UNLINK); nothing
is flushed.

    python benchmarks/metrics_scrape.py              # 100 specs, 1,000 workers, 50 scrapes
    python benchmarks/metrics_scrape.py --quick      # CI smoke: 5 specs, 20 workers
    python benchmarks/metrics_scrape.py --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import gzip
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from swarmstream import Settings, Swarm, Task
from swarmstream.bench.raw import drop_namespace
from swarmstream.embedded import free_port
from swarmstream.keys import Keys
from swarmstream.models import WorkerInfo, WorkerState
from swarmstream.transport.shards import ShardStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (
    SPREAD_COLUMNS,
    Server,
    drive,
    machine_info,
    spread_cells,
    summarize,
)

console = Console() if sys.stdout.isatty() else Console(width=150)
MODELS = ("claude-sonnet", "claude-haiku", "gpt-large", "gpt-mini", "local-llama")


@dataclasses.dataclass
class Shape:
    specs: int
    workers: int
    tasks_per_spec: int
    models: int
    shards: int


def spec_name(i: int) -> str:
    return f"spec-{i:03d}"


# -- building the swarm -------------------------------------------------------------


async def load(swarm: Swarm, shape: Shape) -> dict[str, float]:
    """Write the swarm; returns seconds spent per phase."""
    phases: dict[str, float] = {}
    keys = swarm.keys
    specs = [spec_name(i) for i in range(shape.specs)]
    t0 = time.perf_counter()
    for i in range(0, len(specs), 10):
        batch = [
            Task(spec=s, text=f"question {j} about {s}")
            for s in specs[i : i + 10]
            for j in range(shape.tasks_per_spec)
        ]
        await swarm.submit_many(batch)
    phases["tasks"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    await add_counters_and_usage(swarm.client, keys, specs, shape)
    phases["usage"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    await add_workers(swarm, specs, shape)
    store = ShardStore(swarm.transport.link, keys)
    for h in range(shape.shards):
        await store.register(f"shard-{h:02d}", {"spec": specs[h % len(specs)], "tokens": 1000})
    phases["workers_shards"] = time.perf_counter() - t0
    return phases


async def add_counters_and_usage(client: Any, keys: Keys, specs: list[str], shape: Shape) -> None:
    """Stats counters, usage totals per model and shard, and some budgets."""
    async with client.pipeline(transaction=False) as pipe:
        for j, s in enumerate(specs):
            k = keys.spec(s)
            pipe.hset(k.stats, mapping={"ok": 1000 + j, "failed": j % 3, "retried": 5})
            usage: dict[str, str] = {}
            for prefix in ("", *(f"model:{m}:" for m in MODELS[: shape.models])):
                usage |= {f"{prefix}input": "12000", f"{prefix}output": "3400"}
                usage |= {f"{prefix}cost": "0.42", f"{prefix}attempts": "40"}
            for h in range(2):
                usage |= {f"shard:{s}-kb{h}:input": "6000", f"shard:{s}-kb{h}:cost": "0.2"}
            pipe.hset(k.usage, mapping=usage)
            if j % 10 == 0:
                pipe.hset(k.budget, mapping={"usd": "5.0", "tokens": "2000000"})
        pipe.hset(keys.budget, mapping={"usd": "500.0"})
        await pipe.execute()


async def add_workers(swarm: Swarm, specs: list[str], shape: Shape) -> None:
    """Worker heartbeats, as live workers publish them (Registry.heartbeat)."""
    now = time.time()
    states = (WorkerState.BUSY, WorkerState.IDLE, WorkerState.PAUSED)
    for w in range(shape.workers):
        state = states[w % 3]
        serves = (specs[w % len(specs)], specs[(w + 1) % len(specs)])
        info = WorkerInfo(
            name=f"bench-worker-{w:04d}",
            host="bench-host",
            pid=10_000 + w,
            specs=serves,
            state=state,
            concurrency=4,
            current=(Task(spec=serves[0], text="x").id,) if state is WorkerState.BUSY else (),
            busy_since=now - 1.5 if state is WorkerState.BUSY else None,
            done=w * 10,
            failed=w % 4,
            started=now - 600,
            heartbeat=now,
        )
        await swarm.registry.heartbeat(info, ttl=3600)


# -- the exporter and its scrapes ---------------------------------------------------


@contextlib.contextmanager
def exporter(url: str, ns: str, min_interval: float, log: Path) -> Iterator[str]:
    """``swarmstream metrics`` as a subprocess; yields its /metrics URL once it answers."""
    port = free_port()
    argv = [sys.executable, "-m", "swarmstream", "--redis-url", url, "--namespace", ns]
    argv += ["metrics", "--port", str(port), "--min-interval", str(min_interval)]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    metrics = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"exporter exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(urllib.error.URLError, OSError):
                get(metrics)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("exporter did not answer in 30 s")
            time.sleep(0.05)
        yield metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def get(url: str, gzipped: bool = False) -> bytes:
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        return bytes(r.read())


def samples(body: bytes) -> dict[str, float]:
    """Sample name -> value summed over its labels; ``__samples__``: how many samples."""
    out: dict[str, float] = {"__samples__": 0}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
            out["__samples__"] += 1
    return out


async def commands_executed(admin: Redis) -> int:
    """Commands the server has executed so far (INFO commandstats, INFO left out)."""
    stats = await admin.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def scrapes(admin: Redis, url: str, n: int, warmup: int = 3) -> dict[str, Any]:
    """``n`` timed scrapes (after ``warmup``): client ms, server snapshot ms, commands."""
    for _ in range(warmup):
        await asyncio.to_thread(get, url)
    wall, snapshot = [], []
    c0 = await commands_executed(admin)
    body = b""
    for _ in range(n):
        t0 = time.perf_counter()
        body = await asyncio.to_thread(get, url)
        wall.append((time.perf_counter() - t0) * 1000)
        snapshot.append(samples(body)["swarmstream_scrape_duration_seconds"] * 1000)
    c1 = await commands_executed(admin)
    return {"wall_ms": wall, "snapshot_ms": snapshot, "commands": (c1 - c0) / n, "body": body}


def check(values: dict[str, float], shape: Shape) -> None:
    specs, workers = values.get("swarmstream_specs"), values.get("swarmstream_workers")
    if values.get("swarmstream_up") != 1 or (specs, workers) != (shape.specs, shape.workers):
        raise RuntimeError(
            f"the scrape shows up={values.get('swarmstream_up')}, {specs} specs, {workers} "
            f"workers; expected up=1, {shape.specs} specs, {shape.workers} workers"
        )


async def run_all(args: argparse.Namespace, srv: Server) -> dict[str, Any]:
    shape = Shape(args.specs, args.workers, args.tasks_per_spec, args.models, args.shards)
    ns = f"bench-{uuid.uuid4().hex[:8]}-metrics"
    settings = Settings.from_flat({"url": srv.url, "namespace": ns})
    admin = Redis.from_url(srv.url)
    try:
        console.print(
            f"redis {srv.version} at {srv.url}; {shape.specs} specs x {shape.tasks_per_spec} "
            f"tasks, {shape.workers} workers, {shape.models} models, {shape.shards} shards",
            highlight=False,
        )
        async with Swarm(settings) as swarm:
            load_s = await load(swarm, shape)
        with exporter(srv.url, ns, 0.0, srv.tmp / "fresh.log") as url:
            fresh = await scrapes(admin, url, args.scrapes)
            values = samples(fresh["body"])
            check(values, shape)
            gz = await asyncio.to_thread(get, url, True)
            if not gzip.decompress(gz).startswith(b"# HELP"):
                raise RuntimeError("the gzip answer does not decompress to metrics")
        with exporter(srv.url, ns, 3600.0, srv.tmp / "cached.log") as url:
            cached = await scrapes(admin, url, args.scrapes)
    finally:
        with contextlib.suppress(Exception):
            await drop_namespace(admin, ns)
        await admin.aclose()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(srv.version),
        "config": dataclasses.asdict(shape)
        | {
            "scrapes": args.scrapes,
            "redis": "external" if args.redis_url else "embedded (appendonly no, save '')",
            "quick": args.quick,
        },
        "load_s": {k: round(v, 2) for k, v in load_s.items()},
        "fresh": {
            "wall_ms": summarize(fresh["wall_ms"]),
            "snapshot_ms": summarize(fresh["snapshot_ms"]),
            "commands_per_scrape": fresh["commands"],
        },
        "cached": {
            "wall_ms": summarize(cached["wall_ms"]),
            "commands_per_scrape": cached["commands"],
        },
        "bytes": len(fresh["body"]),
        "bytes_gzip": len(gz),
        "samples": int(values["__samples__"]),
    }


# -- report ---------------------------------------------------------------------------


def summary_line(r: dict[str, Any]) -> str:
    cfg, fresh, cached = r["config"], r["fresh"], r["cached"]
    w = fresh["wall_ms"]
    return (
        f"metrics scrape, {cfg['specs']} specs, {cfg['workers']:,} workers: median "
        f"{w['median']:.1f} ms (IQR {w['q1']:.1f}-{w['q3']:.1f}, min-max {w['min']:.1f}-"
        f"{w['max']:.1f}, n={int(w['n'])}), of which the snapshot "
        f"{fresh['snapshot_ms']['median']:.1f} ms; {r['bytes'] / 1024:,.0f} KiB "
        f"({r['bytes_gzip'] / 1024:,.0f} KiB gzip), {r['samples']:,} samples, "
        f"{fresh['commands_per_scrape']:,.0f} Redis commands per scrape; "
        f"from the cache: median {cached['wall_ms']['median']:.1f} ms, "
        f"{cached['commands_per_scrape']:.0f} commands"
    )


def print_report(r: dict[str, Any]) -> None:
    cfg = r["config"]
    t = Table(
        title=f"GET /metrics: {cfg['specs']} specs, {cfg['workers']:,} workers, "
        f"{cfg['specs'] * cfg['tasks_per_spec']:,} tasks (ms)"
    )
    for col in ("measurement", *SPREAD_COLUMNS):
        t.add_column(col, justify="left" if col == "measurement" else "right")
    t.add_row("scrape, fresh snapshot (client wall time)", *spread_cells(r["fresh"]["wall_ms"]))
    t.add_row("  of which the snapshot (exporter's own)", *spread_cells(r["fresh"]["snapshot_ms"]))
    t.add_row("scrape served from the cache", *spread_cells(r["cached"]["wall_ms"]))
    console.print(t)
    console.print(summary_line(r), highlight=False)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--specs", type=int, default=100)
    p.add_argument("--workers", type=int, default=1000)
    p.add_argument("--tasks-per-spec", type=int, default=100)
    p.add_argument("--models", type=int, default=3, help=f"models per spec (<= {len(MODELS)})")
    p.add_argument("--shards", type=int, default=20)
    p.add_argument("--scrapes", type=int, default=50, help="timed scrapes per exporter")
    p.add_argument(
        "--redis-url",
        help="use this server instead of starting one (keys are "
        "namespaced and deleted afterwards; nothing is flushed)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a CI smoke run")
    args = p.parse_args(argv)
    if args.quick:
        for name, value in (("specs", 5), ("workers", 20), ("shards", 2), ("scrapes", 5)):
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
    if min(args.specs, args.scrapes) < 1 or min(args.workers, args.tasks_per_spec) < 0:
        p.error("--specs and --scrapes must be at least 1, --workers and --tasks-per-spec >= 0")
    if not 0 <= args.models <= len(MODELS):
        p.error(f"--models must be between 0 and {len(MODELS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    async def measure(srv: Server) -> dict[str, Any]:
        return await run_all(args, srv)

    drive(args, measure, print_report, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
