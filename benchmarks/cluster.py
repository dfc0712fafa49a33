"""Redis Cluster and Sentinel: what they cost in throughput, how long a failover
stalls the swarm, and what a failover loses with and without ``durable_replicas``.

Everything runs on real local topologies (``swarmstream.topology``: every node its
own ``redis-server`` on loopback), in one run, on one machine:

1. **Throughput**, end to end: N no-op tasks (``echo``) spread round-robin over 6
   specs (chosen so that each of the cluster's 3 primaries owns 2 of them) are
   submitted with ``Swarm.submit_many`` (batches of 500) and waited for with
   ``Swarm.wait_many``; the clock runs from the first submit to the last finding.
   Against one standalone redis-server and against a 3-primary cluster (no
   replicas), with 1 worker process on all 6 specs and with 3 worker processes (one
   per primary's 2 specs; the same split on the standalone server). Workers are
   started and answer one warm-up task per spec before the clock starts. The four
   configurations are interleaved, their order reversed every round.
2. **Failover gap**: a fresh Cluster (3 primaries, 2 replicas each) or Sentinel
   group (a primary, 2 replicas, 3 sentinels); 2 worker processes run and 4
   producer coroutines submit batches of 25 tasks at full speed, each batch
   retried with the same task ids until acknowledged (as tests/test_failover.py).
   After ``--kill-after`` (0.5) s, the primary holding the spec gets SIGKILL while
   the producers' batches are in flight; they keep submitting (retrying through
   the failover) until ``--after-kill`` (1500) more tasks are in. The gap is the
   time from the kill to the first finding recorded after it (the finding entry
   id's millisecond timestamp); the producer gap is the time from the kill to the
   first batch acknowledged by a submit sent after it.
3. **Loss**: the same scenario with ``durable_replicas=0`` and ``=1``. Once the
   failover is over and every task entry has been delivered and acknowledged (or no
   new finding came for ``--quiet`` s), the findings stream is read whole: *lost* =
   acknowledged tasks with no finding, *duplicates* = tasks with more than one.
   *At risk* = tasks whose submit returned in the ``--risk-ms`` (100) before the kill;
   *in flight* = tasks of batches sent before the kill and acknowledged after it.

No timing asserts: the run fails only if a configuration cannot finish at all.

    python benchmarks/cluster.py                   # 5 rounds (~4-5 min on 2 cores)
    python benchmarks/cluster.py --quick           # CI smoke (< 1 min)
    python benchmarks/cluster.py --json out.json --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis
from redis.crc import key_slot
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Server, describe, drive, machine_info, summarize
from swarmstream import Settings, Swarm, Task
from swarmstream.keys import GROUP, Keys
from swarmstream.topology import HOST, SLOTS, LocalCluster, LocalSentinel
from swarmstream.worker.process import spawn_worker

PRIMARIES = 3
SPECS_PER_PRIMARY = 2
SUBMIT_BATCH = 500
FAILOVER_SPEC = "failover"
FAILOVER_BATCH = 25
PRODUCERS = 4
#: one entry of a stream, as redis-py returns it (bytes)
Row = tuple[bytes, dict[bytes, bytes]]
console = Console() if sys.stdout.isatty() else Console(width=150)


# -- processes ------------------------------------------------------------------


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM (a worker drains), then SIGKILL after ``timeout``; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout)


@contextlib.contextmanager
def workers(
    groups: list[list[str]], settings: Settings, prefix: str, logs: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One ``echo`` worker process per spec group, stopped on the way out."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, specs in enumerate(groups):
            with (logs / f"{prefix}-w{i}.log").open("wb") as out:
                name = f"{prefix}-w{i}"
                procs.append(
                    spawn_worker(specs, "echo", settings, name=name, stdout=out, stderr=out)
                )
        yield procs
    finally:
        for proc in procs:
            stop_worker(proc)


def log_tail(logs: Path, prefix: str, chars: int = 1500) -> str:
    parts = []
    for log in sorted(logs.glob(f"{prefix}-w*.log")):
        text = log.read_text(errors="replace").strip()
        if text:
            parts.append(f"--- {log.name}\n{text[-chars:]}")
    return "\n".join(parts)


@contextlib.contextmanager
def started(topology: LocalCluster | LocalSentinel) -> Iterator[Any]:
    """Start a topology, and kill all its processes on the way out."""
    try:
        yield topology.start()
    finally:
        topology.stop()


def cluster_url(cluster: LocalCluster) -> str:
    """Every node in the URL (any of them may be the one that dies)."""
    return "redis+cluster://" + ",".join(f"{HOST}:{n.port}" for n in cluster.nodes)


def drop_namespace(urls: list[str], ns: str) -> None:
    """UNLINK every key of ``ns`` on each server (one key per command: on a cluster
    node, keys of several slots cannot share one)."""
    for url in urls:
        r = redis.Redis.from_url(url)
        try:
            keys = list(r.scan_iter(match=f"{ns}:*", count=1000))
            with r.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.unlink(key)
                pipe.execute()
        finally:
            r.close()


# -- 1. throughput --------------------------------------------------------------


def slot_range(slot: int, primaries: int = PRIMARIES) -> int:
    """Which primary owns ``slot`` in LocalCluster's even split of the slots."""
    return max(i for i in range(primaries) if i * SLOTS // primaries <= slot)


def pick_specs(per_primary: int = SPECS_PER_PRIMARY) -> list[str]:
    """Spec names ``s0, s1, ...`` taken in order until each primary's slot range
    holds ``per_primary`` of them (deterministic), ordered by primary."""
    chosen: list[list[str]] = [[] for _ in range(PRIMARIES)]
    i = 0
    while any(len(g) < per_primary for g in chosen):
        name = f"s{i}"
        owner = slot_range(key_slot(Keys("x").spec(name).tasks.encode()))
        if len(chosen[owner]) < per_primary:
            chosen[owner].append(name)
        i += 1
    return [s for g in chosen for s in g]


def split(specs: list[str], parts: int) -> list[list[str]]:
    """``specs`` (ordered by primary) in ``parts`` contiguous groups."""
    size, extra = divmod(len(specs), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(specs[start:end])
        start = end
    return out


@dataclass
class Target:
    """A server to measure throughput on: its URL and the servers holding keys."""

    name: str
    url: str
    servers: list[str]


async def throughput_once(
    target: Target, specs: list[str], n_workers: int, n: int, args: argparse.Namespace
) -> float:
    """Tasks/s of one end-to-end run (submit N, wait for N findings)."""
    ns = f"cl{uuid.uuid4().hex[:8]}"
    settings = Settings.from_flat(
        {"url": target.url, "namespace": ns, "concurrency": args.concurrency}
    )
    try:
        with workers(split(specs, n_workers), settings, ns, args.logs):
            async with Swarm(settings) as swarm:
                warm = [Task(spec=s, text="warm", id=f"warm-{s}") for s in specs]
                await swarm.submit_many(warm)
                if len(await swarm.wait_many(warm, timeout=60)) != len(warm):
                    raise RuntimeError(f"workers never answered:\n{log_tail(args.logs, ns)}")
                tasks = [
                    Task(spec=specs[i % len(specs)], text=f"t{i}", id=f"t{i:07d}") for i in range(n)
                ]
                t0 = time.perf_counter()
                for i in range(0, n, SUBMIT_BATCH):
                    await swarm.submit_many(tasks[i : i + SUBMIT_BATCH])
                found = await swarm.wait_many(tasks, timeout=args.stall)
                seconds = time.perf_counter() - t0
                if len(found) != n:
                    raise RuntimeError(
                        f"{target.name}: {len(found)} of {n} findings after {args.stall:g}s\n"
                        + log_tail(args.logs, ns)
                    )
                ok = [await swarm.client.hget(Keys(ns).spec(s).stats, "ok") for s in specs]
                if sum(int(v or 0) for v in ok) != n + len(specs):
                    raise RuntimeError(f"{target.name}: ok counters {ok}, expected {n} + warm-up")
        return n / seconds
    finally:
        with contextlib.suppress(redis.RedisError, OSError):  # keep the first error
            drop_namespace(target.servers, ns)


async def measure_throughput(
    args: argparse.Namespace, srv: Server
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Interleaved rounds of every (topology, workers) configuration."""
    specs = pick_specs()
    configs = [(t, w) for w in args.workers for t in ("standalone", "cluster")]
    samples: dict[str, list[float]] = {f"{t}-{w}w": [] for t, w in configs}
    with started(LocalCluster(args.tmp / "tp-cluster", primaries=PRIMARIES, replicas=0)) as c:
        owners = {s: c.primary_for_key(Keys("x").spec(s).tasks) for s in specs}
        primaries = list(dict.fromkeys(owners[s] for s in specs))  # in spec order
        spread = {str(p): [s for s in specs if owners[s] == p] for p in primaries}
        console.print(f"specs by cluster primary (port: specs): {spread}", highlight=False)
        node_urls = [f"redis://{HOST}:{p}/0" for p in primaries]
        targets = {
            "standalone": Target("standalone", srv.url, [srv.url]),
            "cluster": Target("cluster", cluster_url(c), node_urls),
        }
        if args.warmup:
            for target in targets.values():
                await throughput_once(target, specs, 1, min(args.tasks, 1000), args)
        for rnd in range(args.rounds):
            for t, w in configs if rnd % 2 == 0 else configs[::-1]:
                rate = await throughput_once(targets[t], specs, w, args.tasks, args)
                samples[f"{t}-{w}w"].append(rate)
                console.print(
                    f"round {rnd + 1}/{args.rounds} {t:<10} {w} worker(s): {rate:,.0f} tasks/s",
                    highlight=False,
                )
    results: dict[str, dict[str, Any]] = {
        key: {
            "topology": key.split("-")[0],
            "workers": int(key.split("-")[1][:-1]),
            "stats": summarize(v),
            "samples": v,
        }
        for key, v in samples.items()
    }
    ratios = {
        f"cluster_over_standalone_{w}w": results[f"cluster-{w}w"]["stats"]["median"]
        / results[f"standalone-{w}w"]["stats"]["median"]
        for w in args.workers
    }
    groups = {f"{w}w": split(specs, w) for w in args.workers}
    spread_info = {"specs": specs, "by_primary_port": spread, "worker_groups": groups}
    return {"results": results, "ratios": ratios}, spread_info


# -- 2 and 3. failover ------------------------------------------------------------


@dataclass
class Batch:
    """One submit_many call of the failover producer, with its times (unix s)."""

    ids: list[str]
    first: float = 0.0  # start of the first attempt
    sent: float = 0.0  # start of the attempt that was acknowledged
    acked: float = 0.0
    attempts: int = 0


@dataclass
class Production:
    batches: list[Batch]
    killed_at: float = 0.0
    kill_took: float = 0.0
    acked_at_kill: int = 0
    started: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)


def failover_settings(url: str, durable: int, concurrency: int) -> Settings:
    """Those of tests/test_failover.py: short leases, retries and blocks."""
    return Settings.from_flat(
        {
            "url": url,
            "namespace": f"fo{uuid.uuid4().hex[:6]}",
            "concurrency": concurrency,
            "claim_idle": 3.0,
            "reclaim_interval": 0.2,
            "heartbeat_interval": 0.5,
            "retry_base": 0.05,
            "retry_max": 0.2,
            "block": 0.2,
            "grace": 5.0,
            "durable_replicas": durable,
            "durable_timeout": 2.0,
        }
    )


async def produce(
    settings: Settings, kill_after: float, after_kill: int, kill: Callable[[], None]
) -> Production:
    """``PRODUCERS`` coroutines submit batches of new tasks at full speed, each batch
    retried (same task ids) until acknowledged. ``kill_after`` seconds in, ``kill``
    runs while the other coroutines' batches are in flight; they keep submitting
    until ``after_kill`` more tasks were taken. The kill time is taken once ``kill``
    returned (the process is dead and reaped)."""
    prod = Production([])
    taken = after = 0

    def take() -> tuple[list[Task], Batch] | None:
        nonlocal taken, after
        if prod.killed_at:
            if after >= after_kill:
                return None
            after += FAILOVER_BATCH
        ids = [f"task-{i:07d}" for i in range(taken, taken + FAILOVER_BATCH)]
        taken += FAILOVER_BATCH
        prod.batches.append(Batch(ids))
        return [Task(spec=FAILOVER_SPEC, text=i, id=i) for i in ids], prod.batches[-1]

    async def submitter(swarm: Swarm) -> None:
        while work := take():
            chunk, batch = work
            deadline = time.monotonic() + 60
            while True:
                batch.attempts += 1
                batch.sent = time.time()
                batch.first = batch.first or batch.sent
                try:
                    await swarm.submit_many(chunk)
                    batch.acked = time.time()
                    break
                except Exception as exc:
                    prod.errors[type(exc).__name__] += 1
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"a batch was never acknowledged: {exc}") from exc
                    await asyncio.sleep(0.05)

    async def killer() -> None:
        prod.started = time.time()
        await asyncio.sleep(kill_after)
        prod.acked_at_kill = sum(len(b.ids) for b in prod.batches if b.acked)
        before = time.time()
        kill()  # blocks the loop for the kill's ~ms only; the others' batches are in flight
        prod.killed_at = time.time()
        prod.kill_took = prod.killed_at - before

    async with Swarm(settings) as swarm:
        warm = Task(spec=FAILOVER_SPEC, text="warm", id="warm")
        await swarm.submit_many([warm])
        if not await swarm.wait_many([warm], timeout=60):
            raise RuntimeError("the workers never answered the warm-up task")
        kill_task = asyncio.create_task(killer())
        try:
            await asyncio.gather(*(submitter(swarm) for _ in range(PRODUCERS)))
            await kill_task
        finally:
            kill_task.cancel()
    return prod


@dataclass
class Settled:
    how: str  # "drained", "quiet" or "deadline"
    seconds: float
    rows: list[Row]
    pending: int
    dead: int


def settle(port: int, settings: Settings, quiet: float, drained_quiet: float) -> Settled:
    """Wait until every task entry was delivered and acknowledged and no finding came
    for ``drained_quiet`` s, or no finding came for ``quiet`` s (a lost entry never
    comes), or 120 s; then read the whole findings stream from the primary."""
    k = Keys(settings.redis.namespace).spec(FAILOVER_SPEC)
    r = redis.Redis(HOST, port, socket_timeout=10)
    try:
        t0 = last_change = time.monotonic()
        seen, how, pending = -1, "deadline", -1
        while time.monotonic() - t0 < 120:
            count = int(r.xlen(k.findings))
            if count != seen:
                seen, last_change = count, time.monotonic()
            group = next(g for g in r.xinfo_groups(k.tasks) if g["name"] == GROUP.encode())
            pending = int(group["pending"])
            last_id = r.xinfo_stream(k.tasks)["last-generated-id"]
            drained = group["last-delivered-id"] == last_id and pending == 0
            idle = time.monotonic() - last_change
            if drained and idle >= drained_quiet:
                how = "drained"
                break
            if idle >= quiet:
                how = "quiet"
                break
            time.sleep(0.1)
        rows: list[Row] = []
        cursor = "-"
        while batch := cast(list[Row], r.xrange(k.findings, cursor, "+", count=5000)):
            rows += batch
            cursor = "(" + batch[-1][0].decode()
        return Settled(how, time.monotonic() - t0, rows, pending, int(r.xlen(k.dead)))
    finally:
        r.close()


def lost_batches(prod: Production, lost: set[str]) -> list[dict[str, Any]]:
    """The batches with lost tasks: their times in ms relative to the kill."""
    kill = prod.killed_at
    return [
        {
            "lost": len(lost.intersection(b.ids)),
            "first_sent_ms": round((b.first - kill) * 1000, 2),
            "sent_ms": round((b.sent - kill) * 1000, 2),
            "acked_ms": round((b.acked - kill) * 1000, 2),
            "attempts": b.attempts,
        }
        for b in prod.batches
        if lost.intersection(b.ids)
    ]


def tally(prod: Production, done: Settled, risk_ms: float) -> dict[str, Any]:
    """Lost, duplicates, at-risk and the gaps of one failover round."""
    kill = prod.killed_at
    per_task = Counter(f[b"task_id"].decode() for _, f in done.rows)
    per_task.pop("warm", None)
    acked_at = {i: b.acked for b in prod.batches if b.acked for i in b.ids}
    lost = sorted(set(acked_at) - set(per_task))
    after = [int(i.decode().split("-")[0]) / 1000 for i, _ in done.rows]
    first_after = min((t for t in after if t >= kill), default=None)
    resumed = min((b.acked for b in prod.batches if b.sent > kill), default=None)
    window = kill - risk_ms / 1000
    return {
        "acked": len(acked_at),
        "acked_at_kill": prod.acked_at_kill,
        "submit_rate_before_kill": prod.acked_at_kill / (kill - prod.kill_took - prod.started),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "lost_batches": lost_batches(prod, set(lost)),
        "duplicates": sum(1 for n in per_task.values() if n > 1),
        "extra_findings": sum(n - 1 for n in per_task.values() if n > 1),
        "unknown_findings": len(set(per_task) - set(acked_at)),
        "at_risk": sum(len(b.ids) for b in prod.batches if window <= b.acked <= kill),
        "in_flight": sum(len(b.ids) for b in prod.batches if b.sent < kill < b.acked),
        "gap_s": None if first_after is None else first_after - kill,
        "producer_gap_s": None if resumed is None else resumed - kill,
        "kill_took_ms": round(prod.kill_took * 1000, 2),
        "submit_errors": dict(prod.errors),
        "retried_batches": sum(1 for b in prod.batches if b.attempts > 1),
        "settled": done.how,
        "settle_s": round(done.seconds, 2),
        "pending_after": done.pending,
        "dead_letters": done.dead,
    }


async def failover_once(
    kind: str, durable: int, rnd: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One failover round on a fresh topology."""
    where = args.tmp / f"fo-{kind}-d{durable}-r{rnd}"
    topo: LocalCluster | LocalSentinel = (
        LocalCluster(where, primaries=PRIMARIES, replicas=2)
        if kind == "cluster"
        else LocalSentinel(where, replicas=2, sentinels=3)
    )
    with started(topo):
        url = cluster_url(topo) if isinstance(topo, LocalCluster) else topo.url
        settings = failover_settings(url, durable, args.concurrency)
        ns = settings.redis.namespace
        if isinstance(topo, LocalCluster):
            old = topo.primary_for_key(Keys(ns).spec(FAILOVER_SPEC).tasks)
        else:
            old = topo.primary_port
        with workers([[FAILOVER_SPEC]] * 2, settings, ns, args.logs) as procs:
            prod = await produce(
                settings, args.kill_after, args.after_kill, lambda: topo.kill9(old)
            )
            new = topo.wait_failover(old, timeout=60)
            done = settle(new, settings, args.quiet, args.drained_quiet)
            died = sum(1 for p in procs if p.poll() is not None)
        out = tally(prod, done, args.risk_ms)
        out |= {"topology": kind, "durable_replicas": durable, "round": rnd + 1}
        out |= {"old_port": old, "new_port": new, "workers_died": died}
        return out


def summarize_cell(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    gaps = [r["gap_s"] for r in rounds if r["gap_s"] is not None]
    producer = [r["producer_gap_s"] for r in rounds if r["producer_gap_s"] is not None]
    return {
        "topology": rounds[0]["topology"],
        "durable_replicas": rounds[0]["durable_replicas"],
        "rounds": len(rounds),
        "gap_s": summarize(gaps) if gaps else None,
        "producer_gap_s": summarize(producer) if producer else None,
        "lost": [r["lost"] for r in rounds],
        "duplicates": [r["duplicates"] for r in rounds],
        "at_risk": [r["at_risk"] for r in rounds],
        "in_flight": [r["in_flight"] for r in rounds],
        "acked": [r["acked"] for r in rounds],
        "submit_rate_before_kill": summarize([r["submit_rate_before_kill"] for r in rounds]),
        "lost_total": sum(r["lost"] for r in rounds),
        "duplicates_total": sum(r["duplicates"] for r in rounds),
        "workers_died": sum(r["workers_died"] for r in rounds),
    }


async def measure_failover(args: argparse.Namespace) -> dict[str, Any]:
    cells = [(k, d) for k in ("cluster", "sentinel") for d in args.durable]
    runs: dict[str, list[dict[str, Any]]] = {f"{k}-d{d}": [] for k, d in cells}
    for rnd in range(args.failover_rounds):
        for kind, durable in cells if rnd % 2 == 0 else cells[::-1]:
            r = await failover_once(kind, durable, rnd, args)
            runs[f"{kind}-d{durable}"].append(r)
            gap = "-" if r["gap_s"] is None else f"{r['gap_s']:.2f}s"
            console.print(
                f"round {rnd + 1}/{args.failover_rounds} {kind:<8} durable_replicas={durable}: "
                f"gap {gap}, lost {r['lost']}/{r['acked']}, duplicates {r['duplicates']}, "
                f"at risk {r['at_risk']}, in flight {r['in_flight']} "
                f"(settled: {r['settled']} in {r['settle_s']:.1f}s)",
                highlight=False,
            )
            for b in r["lost_batches"]:
                console.print(
                    f"  lost {b['lost']} of a batch sent {b['sent_ms']:+.2f} ms and acknowledged "
                    f"{b['acked_ms']:+.2f} ms from the kill ({b['attempts']} attempt(s))",
                    highlight=False,
                )
    gaps = {
        kind: summarize(v)
        for kind in ("cluster", "sentinel")
        if (
            v := [
                r["gap_s"]
                for c, rs in runs.items()
                if c.startswith(kind)
                for r in rs
                if r["gap_s"] is not None
            ]
        )
    }
    return {
        "cells": {c: summarize_cell(rs) for c, rs in runs.items()},
        "gap_s": gaps,
        "runs": runs,
    }


# -- driver -----------------------------------------------------------------------


async def measure(args: argparse.Namespace, srv: Server) -> dict[str, Any]:
    console.print(describe(srv, f"{args.tasks:,} tasks x {args.rounds} rounds; "), highlight=False)
    args.tmp = srv.tmp
    args.logs = srv.tmp / "logs"
    args.logs.mkdir(exist_ok=True)
    throughput, spread = await measure_throughput(args, srv)
    failover = await measure_failover(args) if args.failover_rounds else {}
    return {
        "benchmark": "cluster",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": {
            "tasks": args.tasks,
            "rounds": args.rounds,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "submit_batch": SUBMIT_BATCH,
            "primaries": PRIMARIES,
            "kill_after_s": args.kill_after,
            "after_kill_tasks": args.after_kill,
            "failover_rounds": args.failover_rounds,
            "failover_batch": FAILOVER_BATCH,
            "producers": PRODUCERS,
            "risk_ms": args.risk_ms,
            "quiet_s": args.quiet,
            "quick": args.quick,
        },
        "spread": spread,
        "throughput": throughput,
        "failover": failover,
        "machine": machine_info(srv.version),
    }


def _rate(s: dict[str, float]) -> tuple[str, str]:
    return f"{s['median']:,.0f}", f"{s['min']:,.0f}-{s['max']:,.0f}"


def _secs(s: dict[str, float] | None) -> str:
    return "-" if s is None else f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def show(report: dict[str, Any]) -> None:
    cfg = report["config"]
    table = Table(title=f"end to end, {cfg['tasks']:,} echo tasks over 6 specs (tasks/s)")
    for col in ("topology", "worker processes", "median", "min-max", "rounds"):
        table.add_column(col, justify="left" if col == "topology" else "right")
    for v in report["throughput"]["results"].values():
        table.add_row(v["topology"], str(v["workers"]), *_rate(v["stats"]), str(v["stats"]["n"]))
    console.print(table)
    for key, ratio in report["throughput"]["ratios"].items():
        console.print(f"{key}: {ratio:.2f}x (medians, same run)", highlight=False)
    console.print(f"specs by primary: {report['spread']['by_primary_port']}", highlight=False)
    if not report["failover"]:
        return
    fo = Table(title="failover: kill -9 of the spec's primary while producing")
    for col in (
        "topology",
        "durable",
        "gap s",
        "producer gap s",
        "submits/s before kill",
        "lost",
        "duplicates",
        f"at risk ({cfg['risk_ms']:g} ms), median",
        "in flight, median",
        "acked, median",
    ):
        fo.add_column(col, justify="left" if col == "topology" else "right")
    for c in report["failover"]["cells"].values():
        fo.add_row(
            c["topology"],
            str(c["durable_replicas"]),
            _secs(c["gap_s"]),
            _secs(c["producer_gap_s"]),
            f"{c['submit_rate_before_kill']['median']:,.0f}",
            ",".join(map(str, c["lost"])),
            ",".join(map(str, c["duplicates"])),
            f"{statistics.median(c['at_risk']):,.0f}",
            f"{statistics.median(c['in_flight']):,.0f}",
            f"{statistics.median(c['acked']):,.0f}",
        )
    console.print(fo)
    for kind, s in report["failover"]["gap_s"].items():
        console.print(f"failover gap, {kind} (all rounds): {_secs(s)} s", highlight=False)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=30000, help="tasks per throughput run")
    p.add_argument("--rounds", type=int, default=5, help="rounds of every configuration")
    p.add_argument("--workers", type=_ints, default=[1, 3], help="worker processes (1,3)")
    p.add_argument("--concurrency", type=int, default=64, help="slots per worker process")
    p.add_argument(
        "--kill-after", type=float, default=0.5, help="s of full-speed submitting before the kill"
    )
    p.add_argument("--after-kill", type=int, default=1500, help="tasks submitted after the kill")
    p.add_argument(
        "--failover-rounds", type=int, help="rounds of each failover cell (default --rounds)"
    )
    p.add_argument("--durable", type=_ints, default=[0, 1], help="durable_replicas values (0,1)")
    p.add_argument("--risk-ms", type=float, default=100.0, help="the window at risk before a kill")
    p.add_argument("--quiet", type=float, default=10.0, help="settled: no new finding for this")
    p.add_argument(
        "--drained-quiet",
        type=float,
        default=2.0,
        help="settled: all entries delivered and acknowledged, and no new finding for this",
    )
    p.add_argument("--stall", type=float, default=120.0, help="give up a throughput run after")
    p.add_argument("--no-warmup", dest="warmup", action="store_false")
    p.add_argument("--quick", action="store_true", help="CI smoke: tiny sizes, 1 round")
    p.add_argument("--redis-url", help="the standalone server (default: an embedded one)")
    p.add_argument("--json", help="write the report here")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.rounds, args.kill_after, args.after_kill = 600, 1, 0.2, 300
        args.warmup, args.quiet, args.drained_quiet = False, 5.0, 1.0
    if args.failover_rounds is None:
        args.failover_rounds = args.rounds
    if args.tasks < 1 or args.rounds < 1 or args.kill_after <= 0 or args.after_kill < 1:
        p.error("--tasks, --rounds, --kill-after and --after-kill must be positive")
    specs = PRIMARIES * SPECS_PER_PRIMARY
    if not all(1 <= w <= specs for w in args.workers):
        p.error(f"--workers: from 1 to {specs} worker processes (one spec each at most)")
    if any(d not in (0, 1) for d in args.durable):
        p.error("--durable: 0 or 1 (a failover leaves the new primary 1 of its 2 replicas)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    drive(args, lambda srv: measure(args, srv), show, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
