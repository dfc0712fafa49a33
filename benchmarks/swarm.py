"""Swarm scale: N workers, each holding C long tasks, and what the control plane costs.

Real ``EphemeralWorker``s (own consumer name, Transport, leases, heartbeats, reclaim
and upkeep loops), many per process (``benchmarks/swarm_worker.py``), each running a
handler that sleeps for the whole run. Per size N x C, once every task is in flight:

- a steady window: Redis commands/s (``INFO commandstats``, by command), Redis CPU
  (``INFO cpu``), bytes/s (``INFO stats``), worker-process CPU (``/proc``), Redis memory
  over an empty baseline (``INFO memory``), all also per in-flight task;
- one monitor ``collect()`` and one ``swarmstream status --json`` (a process);
- reclaim: one worker alone in its own process is killed with SIGKILL at the start
  of the window; the time until the group lists none of its entries under it any
  more (all taken over by live workers), against ``claim_idle`` + 1 s;
- at the largest size, ``collect()`` again with 100 specs registered.

Workers are filled to exactly C (concurrency C), then given ``--spare`` free slots,
so that they read and reclaim as a swarm with spare capacity does.

    .venv/bin/python benchmarks/swarm.py            # 10, 100, 1,000 workers x 10 tasks (~8 min)
    .venv/bin/python benchmarks/swarm.py --quick    # CI smoke (~30 s)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Server, describe, drive, machine_info
from swarmstream.client import Swarm
from swarmstream.keys import GROUP, Keys
from swarmstream.models import Task
from swarmstream.monitor.snapshot import collect
from swarmstream.settings import Settings
from swarmstream.transport.connection import connect
from swarmstream.transport.link import Link
from swarmstream.transport.stats import StatsReader

SPEC = "swarm"
CHILD = Path(__file__).resolve().parent / "swarm_worker.py"
console = Console() if sys.stdout.isatty() else Console(width=200)


# -- Redis and process counters ---------------------------------------------


async def sample(admin: Redis) -> dict[str, Any]:
    """The server counters a window is measured with."""
    info = await admin.info("all")
    cmds = {
        k.removeprefix("cmdstat_"): {"calls": v["calls"], "usec": v["usec"]}
        for k, v in info.items()
        if k.startswith("cmdstat_")
    }
    return {
        "t": time.monotonic(),
        "cmds": cmds,
        "cpu": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        "net_in": int(info["total_net_input_bytes"]),
        "net_out": int(info["total_net_output_bytes"]),
        "used_memory": int(info["used_memory"]),
        "dataset": int(info["used_memory_dataset"]),
        "clients_mem": int(info.get("mem_clients_normal", 0)),
        "clients": int(info["connected_clients"]),
    }


def proc_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (from /proc)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def window(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Rates between two samples (``INFO`` itself left out)."""
    secs = b["t"] - a["t"]
    by_cmd = {}
    for name, v in b["cmds"].items():
        if name == "info":
            continue
        old = a["cmds"].get(name, {"calls": 0, "usec": 0})
        calls = v["calls"] - old["calls"]
        if calls:
            by_cmd[name] = {"per_s": calls / secs, "usec_per_s": (v["usec"] - old["usec"]) / secs}
    return {
        "seconds": secs,
        "commands_per_s": sum(c["per_s"] for c in by_cmd.values()),
        "by_command": dict(sorted(by_cmd.items(), key=lambda kv: -kv[1]["usec_per_s"])),
        "redis_cpu_pct": 100 * (b["cpu"] - a["cpu"]) / secs,
        "bytes_in_per_s": (b["net_in"] - a["net_in"]) / secs,
        "bytes_out_per_s": (b["net_out"] - a["net_out"]) / secs,
    }


async def pending_by_consumer(admin: Redis, key: str) -> dict[str, int]:
    summary = await admin.xpending(key, GROUP)
    return {c["name"].decode(): int(c["pending"]) for c in summary.get("consumers") or []}


# -- worker processes ----------------------------------------------------------


class Child:
    """One worker process of the swarm."""

    def __init__(self, proc: asyncio.subprocess.Process, workers: int) -> None:
        self.proc = proc
        self.workers = workers

    @classmethod
    async def start(cls, flat: dict[str, Any], names: str, count: int, spare: int) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            "--settings",
            json.dumps(flat),
            "--spec",
            SPEC,
            "--names",
            names,
            "--spare",
            str(spare),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc, count)

    async def expect(self, word: str, timeout: float) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line.decode().startswith(word):
            raise RuntimeError(f"worker process {self.proc.pid}: expected {word!r}, got {line!r}")

    async def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def reap(self) -> None:
        self.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 10)


def layout(n: int, procs: int) -> list[int]:
    """Workers per process: the victim alone, the others spread over ``procs``."""
    rest = n - 1
    parts = min(procs, rest) if rest else 0
    return [1] + [rest // parts + (1 if i < rest % parts else 0) for i in range(parts)]


# -- the monitor ---------------------------------------------------------------


async def time_collect(settings: Settings, runs: int) -> dict[str, Any]:
    client = connect(settings.redis, client_name="swarmstream:swarm-bench")
    reader = StatsReader(Link(client, settings.redis), Keys(settings.redis.namespace))
    try:
        snap = await collect(reader)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            snap = await collect(reader, snap)
            times.append(1000 * (time.perf_counter() - t0))
        return {
            "ms": times,
            "median_ms": statistics.median(times),
            "workers_seen": len(snap.workers),
            "specs_seen": len(snap.specs),
        }
    finally:
        await client.aclose()


async def time_status(url: str, ns: str, runs: int) -> dict[str, Any]:
    times, size, workers = [], 0, 0
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "swarmstream",
            "--redis-url",
            url,
            "--namespace",
            ns,
            "status",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        times.append(1000 * (time.perf_counter() - t0))
        if proc.returncode != 0:
            raise RuntimeError(f"status --json failed: {err.decode()[-500:]}")
        size = len(out)
        workers = len(json.loads(out).get("workers") or [])
    return {"ms": times, "median_ms": statistics.median(times), "bytes": size, "workers": workers}


async def add_specs(admin: Redis, ns: str, count: int, tasks: int) -> None:
    """Register ``count`` more specs, each with a stream, group and some queued tasks."""
    settings = Settings.from_flat({"url": "redis://unused", "namespace": ns})
    async with Swarm(settings, client=admin) as swarm:
        batch = [
            Task(spec=f"extra{s:03d}", text=f"queued {i}", id=f"extra{s:03d}-{i}")
            for s in range(count)
            for i in range(tasks)
        ]
        await swarm.submit_many(batch)


# -- one size --------------------------------------------------------------------


async def watch_reclaim(
    admin: Redis, key: str, victim: str, killed: float, held: int, limit: float, idle_ms: int
) -> dict[str, Any]:
    """Poll the group until none of the victim's entries is pending under it; also
    note when all of them had become claimable (idle >= claim_idle)."""
    first = last = claimable = None
    left = held
    while time.monotonic() - killed < limit:
        by = await pending_by_consumer(admin, key)
        left = by.get(victim, 0)
        if left < held and first is None:
            first = time.monotonic() - killed
        if left == 0:
            last = time.monotonic() - killed
            break
        if claimable is None:
            rows = await admin.xpending_range(key, GROUP, "-", "+", held, consumername=victim)
            if rows and min(int(r["time_since_delivered"]) for r in rows) >= idle_ms:
                claimable = time.monotonic() - killed
        await asyncio.sleep(0.1)
    total = sum((await pending_by_consumer(admin, key)).values())
    return {
        "first_s": first,
        "all_s": last,
        "claimable_s": claimable,
        "left": left,
        "held": held,
        "pending_after": total,
    }


async def run_size(
    srv: Server, args: argparse.Namespace, admin: Redis, n: int, c: int
) -> dict[str, Any]:
    ns = f"swarmbench{n}x{c}"
    if srv.embedded:
        await admin.flushall()
    await asyncio.sleep(1.0)
    # the server's own cost with no swarm (its cron, the driver's connection): the
    # steady window's Redis CPU is also reported net of it
    b0 = await sample(admin)
    await asyncio.sleep(args.baseline)
    base = await sample(admin)
    flat: dict[str, Any] = {
        "url": srv.url,
        "namespace": ns,
        "concurrency": c,
        "claim_idle": args.claim_idle,
        "heartbeat_interval": args.heartbeat_interval,
        "reclaim_interval": args.reclaim_interval,
    }
    settings = Settings.from_flat({"url": srv.url, "namespace": ns})
    keys = Keys(ns)
    stream = keys.spec(SPEC).tasks
    children: list[Child] = []
    out: dict[str, Any] = {"workers": n, "per_worker": c, "in_flight": n * c}
    try:
        t0 = time.monotonic()
        first = 0
        for count in layout(n, args.procs):
            children.append(await Child.start(flat, f"w:{first}:{count}", count, args.spare))
            first += count
        for child in children:
            await child.expect("ready", 60 + n * 0.2)
        out["start_s"] = time.monotonic() - t0
        idle = await sample(admin)
        # everything in flight: N x C tasks, one read of C by each worker
        t0 = time.monotonic()
        async with Swarm(settings, client=admin) as swarm:
            tasks = [Task(spec=SPEC, text=f"t{i}", id=f"t{i}") for i in range(n * c)]
            for i in range(0, len(tasks), 1000):
                await swarm.submit_many(tasks[i : i + 1000])
        while True:
            by = await pending_by_consumer(admin, stream)
            if sum(by.values()) == n * c and len(by) == n and max(by.values()) == c:
                break
            if time.monotonic() - t0 > 60 + n * 0.1:
                raise RuntimeError(f"not all in flight: {sum(by.values())} over {len(by)}")
            await asyncio.sleep(0.2)
        out["fill_s"] = time.monotonic() - t0
        for child in children:
            await child.tell("spare")
        for child in children:
            await child.expect("spared", 30)
        await asyncio.sleep(args.settle)
        victim, workers = children[0], children[1:]
        pids = [ch.proc.pid for ch in workers]
        rows = await admin.xpending_range(stream, GROUP, "-", "+", c, consumername="w00000")
        idle_at_kill = max(int(r["time_since_delivered"]) for r in rows) / 1000
        s0, cpu0 = await sample(admin), proc_cpu(pids)
        victim.kill()
        killed = time.monotonic()
        limit = args.claim_idle + args.reclaim_extra
        watcher = asyncio.create_task(
            watch_reclaim(admin, stream, "w00000", killed, c, limit, int(args.claim_idle * 1000))
        )
        await asyncio.sleep(args.window)
        s1, cpu1 = await sample(admin), proc_cpu(pids)
        out["reclaim"] = await watcher | {"idle_at_kill_s": idle_at_kill}
        w = window(s0, s1)
        live = (n - 1) * c or c
        w["worker_cpu_pct"] = 100 * (cpu1 - cpu0) / w["seconds"]
        w["worker_processes"] = len(pids)
        out["steady"] = w
        out["idle_before_fill"] = window(base, idle) | {"note": "start-up, not steady"}
        out["baseline"] = window(b0, base) | {"note": "no swarm: the server alone"}
        out["live_in_flight"] = live
        out["memory"] = {
            "used": s1["used_memory"] - base["used_memory"],
            "dataset": s1["dataset"] - base["dataset"],
            "clients": s1["clients_mem"] - base["clients_mem"],
            "connected_clients": s1["clients"],
            "per_worker": (s1["used_memory"] - base["used_memory"]) / n,
            "per_task": (s1["used_memory"] - base["used_memory"]) / (n * c),
            "dataset_per_task": (s1["dataset"] - base["dataset"]) / (n * c),
        }
        out["collect"] = await time_collect(settings, args.collect_runs)
        out["status"] = await time_status(srv.url, ns, args.status_runs)
        if n == max(s[0] for s in args.size_list) and args.specs > 1:
            await add_specs(admin, ns, args.specs - 1, 10)
            out["collect_specs"] = await time_collect(settings, args.collect_runs) | {
                "specs": args.specs
            }
    finally:
        for child in children:
            await child.reap()
    return out


# -- report ----------------------------------------------------------------------


def per_k(value: float, tasks: int) -> float:
    return value / (tasks / 1000)


def derive(r: dict[str, Any]) -> dict[str, float]:
    s, tasks = r["steady"], r["live_in_flight"]
    idle = r.get("baseline", {}).get("redis_cpu_pct", 0.0)
    return {
        "cmds_per_task": s["commands_per_s"] / tasks,
        "redis_cpu_per_k": per_k(s["redis_cpu_pct"], tasks),
        "redis_net_cpu_per_k": per_k(max(0.0, s["redis_cpu_pct"] - idle), tasks),
        "bytes_per_task": (s["bytes_in_per_s"] + s["bytes_out_per_s"]) / tasks,
        "worker_cpu_per_k": per_k(s["worker_cpu_pct"], tasks),
    }


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals. ``met`` is None where this run's sizes are too small to
    judge a goal (the smoke run): the goals are set at 1,000 workers and 100 specs."""
    runs = report["runs"]
    small, big = derive(runs[0]), derive(runs[-1])
    growth = {k: big[k] / small[k] if small[k] else float("inf") for k in small}
    worst = max(runs, key=lambda r: derive(r)["redis_net_cpu_per_k"])
    top = runs[-1]
    full = top["workers"] >= 1000
    snap = top.get("collect_specs", top["collect"])
    rec = top["reclaim"]
    bound = report["config"]["claim_idle"] + 1
    return [
        {
            "goal": "control traffic per in-flight task flat or falling (largest / smallest size)",
            "measured": f"commands {growth['cmds_per_task']:.2f}x, bytes "
            f"{growth['bytes_per_task']:.2f}x, Redis CPU {growth['redis_cpu_per_k']:.2f}x",
            "met": max(growth["cmds_per_task"], growth["bytes_per_task"]) <= 1.25,
        },
        {
            "goal": "Redis CPU <= 5% of a core per 1,000 tasks in flight (every size; net of "
            "the server's idle CPU)",
            "measured": f"worst {derive(worst)['redis_net_cpu_per_k']:.2f}% net "
            f"({derive(worst)['redis_cpu_per_k']:.2f}% gross, idle server "
            f"{worst.get('baseline', {}).get('redis_cpu_pct', 0.0):.2f}%) at "
            f"{worst['workers']:,} workers",
            "met": derive(worst)["redis_net_cpu_per_k"] <= 5.0 if full else None,
        },
        {
            "goal": f"monitor collect() < 100 ms with {top['workers']:,} workers and "
            f"{snap.get('specs', 1)} specs",
            "measured": f"{snap['median_ms']:.1f} ms",
            "met": (snap["median_ms"] < 100) if full and snap.get("specs", 1) >= 100 else None,
        },
        {
            "goal": f"dead worker's tasks reclaimed within claim_idle + 1 s = {bound:g} s "
            f"at {top['in_flight']:,} in flight",
            "measured": (
                f"{rec['all_s']:.1f} s"
                if rec["all_s"] is not None
                else f"{rec['left']} of {rec['held']} not reclaimed after {rec['limit_s']:.0f} s"
            ),
            "met": rec["all_s"] is not None and rec["all_s"] <= bound,
        },
    ]


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def show(report: dict[str, Any]) -> None:
    cfg = report["config"]
    console.print(
        f"claim_idle {cfg['claim_idle']} s (lease every {cfg['claim_idle'] / 4:g} s), heartbeat "
        f"{cfg['heartbeat_interval']} s, reclaim {cfg['reclaim_interval']} s, window "
        f"{cfg['window']} s, spare slots {cfg['spare']}",
        highlight=False,
    )
    t = Table(
        title="swarm control plane in steady state (every task sleeping); per task: per live "
        "in-flight task; per 1k: per 1,000 of them; MiB: Redis used_memory over an empty server"
    )
    for col in (
        "N x C",
        "tasks",
        "procs",
        "conns",
        "cmds/s",
        "per task",
        "redis CPU%",
        "idle srv",
        "net per 1k",
        "KB/s",
        "B/s/task",
        "wkr CPU%",
        "per 1k",
        "MiB",
        "KiB/wkr",
        "B/task",
        "collect ms",
        "status ms",
        "reclaim",
    ):
        t.add_column(col, justify="right")
    for r in report["runs"]:
        s, m, d, rec = r["steady"], r["memory"], derive(r), r["reclaim"]
        t.add_row(
            f"{r['workers']:,} x {r['per_worker']}",
            f"{r['in_flight']:,}",
            str(s["worker_processes"] + 1),
            f"{m['connected_clients']:,}",
            f"{s['commands_per_s']:,.0f}",
            f"{d['cmds_per_task']:.3f}",
            f"{s['redis_cpu_pct']:.1f}",
            f"{r.get('baseline', {}).get('redis_cpu_pct', 0.0):.2f}",
            f"{d['redis_net_cpu_per_k']:.2f}",
            f"{(s['bytes_in_per_s'] + s['bytes_out_per_s']) / 1024:,.0f}",
            f"{d['bytes_per_task']:.0f}",
            f"{s['worker_cpu_pct']:.1f}",
            f"{d['worker_cpu_per_k']:.1f}",
            f"{m['used'] / 2**20:.1f}",
            f"{m['per_worker'] / 1024:.1f}",
            f"{m['per_task']:.0f}",
            f"{r['collect']['median_ms']:.1f}",
            f"{r['status']['median_ms']:.0f}",
            _s(rec["all_s"]) if rec["all_s"] is not None else f"{rec['left']}/{rec['held']} left",
        )
    console.print(t)
    top = report["runs"][-1]
    c = Table(title=f"Redis commands at {top['workers']:,} workers (steady window), by CPU")
    for col in ("command", "calls/s", "per task/s", "usec/s", "share (EVALSHA includes its calls)"):
        c.add_column(col, justify="right")
    by = top["steady"]["by_command"]
    total = sum(v["usec_per_s"] for v in by.values()) or 1
    for name, v in list(by.items())[:12]:
        c.add_row(
            name,
            f"{v['per_s']:,.0f}",
            f"{v['per_s'] / top['live_in_flight']:.4f}",
            f"{v['usec_per_s']:,.0f}",
            f"{100 * v['usec_per_s'] / total:.1f}%",
        )
    console.print(c)
    if "collect_specs" in top:
        cs = top["collect_specs"]
        console.print(
            f"collect() with {cs['workers_seen']} workers and {cs['specs_seen']} specs: "
            f"{cs['median_ms']:.1f} ms median (min {min(cs['ms']):.1f}, max {max(cs['ms']):.1f})",
            highlight=False,
        )
    for r in report["runs"]:
        rec = r["reclaim"]
        console.print(
            f"reclaim at {r['workers']:,} workers: oldest lease idle {rec['idle_at_kill_s']:.1f} s "
            f"at the kill; all claimable {_s(rec.get('claimable_s'))}, first taken "
            f"{_s(rec['first_s'])}, all {_s(rec['all_s'])} after it; "
            f"{rec['left']} of {rec['held']} left; pending after {rec['pending_after']:,}",
            highlight=False,
        )
    for v in report["verdicts"]:
        mark = {True: "met", False: "NOT MET", None: "not judged at this size"}[v["met"]]
        console.print(f"goal: {v['goal']}: {v['measured']} -> {mark}", highlight=False)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    x = [r["in_flight"] for r in runs]
    d = [derive(r) for r in runs]
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    panels = [
        ("Redis commands/s per task", [v["cmds_per_task"] for v in d], None),
        (
            "Redis CPU net of idle, % of a core per 1k tasks",
            [v["redis_net_cpu_per_k"] for v in d],
            5.0,
        ),
        ("bytes/s per task (in + out)", [v["bytes_per_task"] for v in d], None),
        ("worker CPU, % of a core per 1k tasks", [v["worker_cpu_per_k"] for v in d], None),
        ("Redis memory per task (B)", [r["memory"]["per_task"] for r in runs], None),
    ]
    for ax, (title, ys, goal) in zip(axes.flat, panels, strict=False):
        ax.plot(x, ys, "o-")
        if goal is not None:
            ax.axhline(goal, color="red", linestyle="--", label="goal")
            ax.legend()
        ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel("tasks in flight")
    ax = axes.flat[5]
    ax.plot(x, [r["collect"]["median_ms"] for r in runs], "o-", label="collect() ms")
    ax.plot(x, [r["status"]["median_ms"] for r in runs], "s-", label="status --json ms")
    rec = [r["reclaim"]["all_s"] for r in runs]
    ax.plot(x, [1000 * v if v is not None else float("nan") for v in rec], "^-", label="reclaim ms")
    ax.axhline(100, color="red", linestyle="--", label="100 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title("monitor and reclaim times")
    ax.set_xlabel("tasks in flight")
    ax.legend(fontsize=8)
    fig.suptitle(f"swarm control plane, claim_idle {report['config']['claim_idle']} s")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- main ------------------------------------------------------------------------


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        n, c = part.lower().split("x")
        out.append((int(n), int(c)))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="10x10,100x10,1000x10", help="workers x tasks each")
    p.add_argument("--procs", type=int, default=2, help="worker processes besides the victim")
    p.add_argument("--spare", type=int, default=2, help="free slots per worker after filling")
    p.add_argument("--claim-idle", type=float, default=60.0)
    p.add_argument("--heartbeat-interval", type=float, default=2.0)
    p.add_argument("--reclaim-interval", type=float, default=1.0)
    p.add_argument("--window", type=float, default=60.0, help="steady window, s")
    p.add_argument("--baseline", type=float, default=10.0, help="idle-server window, s")
    p.add_argument("--settle", type=float, default=3.0, help="wait after filling, s")
    p.add_argument("--reclaim-extra", type=float, default=15.0, help="wait past claim_idle")
    p.add_argument("--specs", type=int, default=100, help="specs for the top size's collect()")
    p.add_argument("--collect-runs", type=int, default=5)
    p.add_argument("--status-runs", type=int, default=3)
    p.add_argument("--json", help="write the report here")
    p.add_argument("--plot", help="write a PNG plot here")
    p.add_argument("--redis-url", help="use this server (no FLUSHALL; memory then approximate)")
    p.add_argument("--quick", action="store_true", help="CI smoke: tiny sizes, claim_idle 3 s")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.procs, args.claim_idle, args.window = "3x2,6x2", 1, 3.0, 2.0
        args.settle, args.reclaim_extra, args.specs, args.baseline = 0.5, 5.0, 5, 1.0
        args.collect_runs, args.status_runs = 2, 1
    args.size_list = parse_sizes(args.sizes)
    if any(n < 2 for n, _ in args.size_list):
        p.error("each size needs at least 2 workers (one is killed)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    async def measure(srv: Server) -> dict[str, Any]:
        console.print(describe(srv), highlight=False)
        admin = Redis.from_url(srv.url, decode_responses=False)
        runs = []
        try:
            for n, c in args.size_list:
                console.print(f"{n} workers x {c} tasks ...", highlight=False)
                r = await run_size(srv, args, admin, n, c)
                r["reclaim"]["limit_s"] = args.claim_idle + args.reclaim_extra
                runs.append(r)
                console.print(
                    f"  start {r['start_s']:.1f} s, fill {r['fill_s']:.1f} s, "
                    f"{r['steady']['commands_per_s']:,.0f} cmds/s, redis "
                    f"{r['steady']['redis_cpu_pct']:.1f}% CPU",
                    highlight=False,
                )
        finally:
            await admin.aclose()
        report: dict[str, Any] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine_info(srv.version),
            "config": {
                k: getattr(args, k)
                for k in (
                    "sizes",
                    "procs",
                    "spare",
                    "claim_idle",
                    "heartbeat_interval",
                    "reclaim_interval",
                    "window",
                    "settle",
                    "specs",
                    "quick",
                )
            },
            "runs": runs,
        }
        report["verdicts"] = verdicts(report)
        return report

    report = drive(args, measure, show, console)
    if args.plot:
        plot(report, Path(args.plot))
        console.print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
