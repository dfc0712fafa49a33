"""What usage accounting costs on the hot path: one worker process draining no-op
tasks whose handler reports usage (model, four token counts, a cost), next to the
same handler reporting none.

With usage, each task's usage is normalized and written into its finding, and the
completion's Lua step (``complete.lua``) adds it to the spec's totals per spec,
model, shard and worker. Both handlers are the same Python callable path
(``benchmarks.handlers``); runs of the two are interleaved and repeated on one Redis
server, with the measurement of ``throughput.py`` (backlog pre-loaded, released at
once, timed until every finding exists). The figure is the ratio of the medians.

    python benchmarks/accounting.py                 # 20000 tasks x 5 repeats, ~1 min
    python benchmarks/accounting.py --quick         # CI smoke
    python benchmarks/accounting.py --json benchmarks/results/accounting.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))
from benchmarks.common import Server, describe, drive, machine_info, summarize  # noqa: E402
from benchmarks.throughput import (  # noqa: E402
    SPEC,
    Bench,
    findings_counter,
    release_and_time,
    stop_process,
    wait_consumer,
)
from swarmstream.bench.raw import drop_namespace  # noqa: E402
from swarmstream.client import Swarm  # noqa: E402
from swarmstream.keys import Keys  # noqa: E402
from swarmstream.models import Task  # noqa: E402
from swarmstream.settings import Settings  # noqa: E402
from swarmstream.worker.process import spawn_worker  # noqa: E402

console = Console() if sys.stdout.isatty() else Console(width=150)
HANDLERS = {
    "without usage": "benchmarks.handlers:plain",
    "with usage": "benchmarks.handlers:with_usage",
}


async def measure(bench: Bench, label: str, n: int, concurrency: int) -> dict[str, Any]:
    ns = bench.namespace("acct")
    settings = Settings.from_flat({"url": bench.url, "namespace": ns, "concurrency": concurrency})
    k = Keys(ns).spec(SPEC)
    stage = Settings.from_flat({"url": bench.url, "namespace": f"{ns}-stage"})
    staging = Keys(f"{ns}-stage").spec(SPEC).tasks
    client = await bench.client()
    proc: subprocess.Popen[bytes] | None = None
    try:
        async with Swarm(stage, client=client) as swarm:
            tasks = [Task(spec=SPEC, text=f"task {i}") for i in range(n)]
            for i in range(0, n, 1000):
                await swarm.submit_many(tasks[i : i + 1000])
        log = bench.tmp / f"{ns}.log"
        env = {
            "PYTHONPATH": os.pathsep.join(
                [str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")]
            )
        }
        with log.open("wb") as out:
            proc = spawn_worker(
                [SPEC], HANDLERS[label], settings, name=f"{ns}-w", env=env, stdout=out, stderr=out
            )
        await wait_consumer(client, f"swarmstream:{ns}-w", proc, log)
        seconds, cpu_worker, cpu_redis = await release_and_time(
            client, staging, k.tasks, findings_counter(client, k, n), n, (proc.pid, bench.redis_pid)
        )
        totals = {a.decode(): b.decode() for a, b in (await client.hgetall(k.usage)).items()}
        if label == "with usage" and int(totals.get("attempts", 0)) != n:
            raise RuntimeError(f"totals count {totals.get('attempts')} attempts for {n} tasks")
        return {
            "label": label,
            "tasks_per_s": n / seconds,
            "worker_cpu_us": None if cpu_worker is None else cpu_worker / n * 1e6,
            "redis_cpu_us": None if cpu_redis is None else cpu_redis / n * 1e6,
        }
    finally:
        if proc is not None:
            stop_process(proc)
        await drop_namespace(client, ns)
        await drop_namespace(client, f"{ns}-stage")
        await client.aclose()


async def run(args: argparse.Namespace, srv: Server) -> dict[str, Any]:
    import tempfile

    bench = Bench(srv.url, srv.pid, Path(tempfile.mkdtemp(prefix="swarmstream-acct-")))
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in HANDLERS}
    for repeat in range(args.repeats):
        order = list(HANDLERS) if repeat % 2 == 0 else list(reversed(HANDLERS))
        for label in order:
            runs[label].append(await measure(bench, label, args.tasks, args.concurrency))
            console.print(
                f"  {label:14} repeat {repeat + 1}: {runs[label][-1]['tasks_per_s']:,.0f} tasks/s"
            )
    out: dict[str, Any] = {
        "benchmark": "accounting",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "server": describe(srv),
        "machine": machine_info(srv.version),
        "tasks": args.tasks,
        "repeats": args.repeats,
        "concurrency": args.concurrency,
        "results": {},
    }
    for label, rows in runs.items():
        out["results"][label] = {
            "tasks_per_s": summarize([r["tasks_per_s"] for r in rows]),
            "worker_cpu_us": summarize(
                [r["worker_cpu_us"] for r in rows if r["worker_cpu_us"]] or [0.0]
            ),
            "redis_cpu_us": summarize(
                [r["redis_cpu_us"] for r in rows if r["redis_cpu_us"]] or [0.0]
            ),
        }
    with_u = out["results"]["with usage"]["tasks_per_s"]["median"]
    without = out["results"]["without usage"]["tasks_per_s"]["median"]
    out["ratio"] = with_u / without
    # the same ratio per repeat (runs of one repeat were measured back to back)
    per = [
        a["tasks_per_s"] / b["tasks_per_s"]
        for a, b in zip(runs["with usage"], runs["without usage"], strict=True)
    ]
    out["ratio_per_repeat"] = summarize(per)
    return out


def show(report: dict[str, Any]) -> None:
    title = (
        f"usage accounting, {report['tasks']} no-op tasks, "
        f"concurrency {report['concurrency']}, {report['repeats']} repeats"
    )
    t = Table(title=title)
    for col in (
        "handler",
        "tasks/s median",
        "spread (min-max)",
        "worker CPU us/task",
        "redis CPU us/task",
    ):
        t.add_column(col, justify="right")
    for label, r in report["results"].items():
        s = r["tasks_per_s"]
        t.add_row(
            label,
            f"{s['median']:,.0f}",
            f"{s['min']:,.0f}-{s['max']:,.0f}",
            f"{r['worker_cpu_us']['median']:.1f}",
            f"{r['redis_cpu_us']['median']:.1f}",
        )
    console.print(t)
    per = report["ratio_per_repeat"]
    console.print(
        f"with usage / without: {report['ratio']:.3f} (ratio of medians); per repeat "
        f"median {per['median']:.3f}, range {per['min']:.3f}-{per['max']:.3f}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--redis-url", help="use this server (default: start one)")
    p.add_argument("--tasks", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="CI smoke: 1000 tasks x 2")
    p.add_argument("--json", help="write the report here")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.repeats = 1000, 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    drive(args, lambda srv: run(args, srv), show, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
