"""Coordination overhead of the 8-pass x 40-task workflow.

The workflow of ``configs/workflow-8pass.toml`` (8 passes; 8 domains x 5 templates =
40 tasks per pass; each pass waits for all 40 findings, synthesizes them, and the
next pass's tasks carry that synthesis) runs through the library's own coordinator,
``WorkflowRunner``, against real worker processes (``spawn_worker``), with 0 ms of
simulated work per task (handler ``echo``) and 50 ms (handler ``sleep``, every task
carrying ``data.ms = 50``).

    ideal    = passes x ceil(tasks per pass / total concurrency) x work time
    overhead = wall time of WorkflowRunner.run() - ideal

The wall time is split per pass from the runner's progress events and the findings'
``started``/``finished`` timestamps: post + run (pass start to the last handler's
end, less the ideal work), notice (last handler end to the runner holding every
finding: worker flush, the runner's wake-up and reads), synthesize, plus the run's
setup and end. Worker start-up is not timed: every worker is blocked in XREADGROUP
before the clock starts.

    python benchmarks/workflow.py                  # 8 x 40, 0 and 50 ms, 1x40 and 4x10, 3 repeats
    python benchmarks/workflow.py --quick          # CI smoke: 2 passes x 5 tasks, 1 repeat
    python benchmarks/workflow.py --json out.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Server, describe, drive, machine_info, summarize
from benchmarks.throughput import Bench, Layout, start_workers, stop_process
from swarmstream.bench.raw import drop_namespace
from swarmstream.client import Swarm
from swarmstream.models import Finding, Status
from swarmstream.settings import Settings
from swarmstream.shard.synthesis import Knowledge
from swarmstream.workflow.model import Workflow, load_workflow, task_id
from swarmstream.workflow.runner import Progress, WorkflowRunner, WorkflowSummary

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKFLOW = ROOT / "configs" / "workflow-8pass.toml"
SPEC = "wf"
SHARD = "bench"
console = Console() if sys.stdout.isatty() else Console(width=150)


@dataclass
class PassTiming:
    """One pass, in seconds from the start of the run (wall clock)."""

    number: int
    start: float  # the previous pass's synthesis (or the runner's start event)
    posted: float  # all tasks posted and the pass state recorded
    first_start: float  # the first handler started
    last_finish: float  # the last handler finished
    seen: float  # the runner holds every finding of the pass
    synthesized: float  # the synthesis is stored
    ideal: float  # this pass's share of the ideal time

    def phases(self) -> dict[str, float]:
        return {
            "post_run": self.last_finish - self.start - self.ideal,
            "notice": self.seen - self.last_finish,
            "synthesize": self.synthesized - self.seen,
            "post": self.posted - self.start,
            "first_start": self.first_start - self.start,
            "pass": self.synthesized - self.start,
        }


@dataclass
class Run:
    layout: str
    processes: int
    concurrency: int
    work_ms: float
    repeat: int
    passes: int
    tasks_per_pass: int
    wall_s: float
    ideal_s: float
    overhead_s: float
    setup_s: float
    end_s: float
    pass_phases: list[dict[str, float]] = field(default_factory=list)
    findings: int = 0
    syntheses: int = 0
    wakeups: int = 0
    commands: dict[str, int] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return self.passes * self.tasks_per_pass


# -- the workflow under test -------------------------------------------------


def bench_workflow(path: Path, work_ms: float, domains: int | None, passes: int | None) -> Workflow:
    """The workflow of ``path`` on spec ``wf`` and shard ``bench``; with ``work_ms`` > 0
    every task carries ``data.ms`` for the ``sleep`` handler. ``domains``/``passes``
    cut it down (``--quick``: 1 domain x 5 templates = 5 tasks, 2 passes)."""
    wf = load_workflow(path)
    if domains is not None:
        wf = replace(wf, domains=wf.domains[:domains])
    chosen = wf.passes[:passes] if passes is not None else wf.passes
    data: dict[str, Any] = {"ms": work_ms} if work_ms > 0 else {}
    return replace(
        wf,
        spec=SPEC,
        shard=SHARD,
        passes=tuple(replace(p, spec=SPEC, data={**p.data, **data}) for p in chosen),
    )


def tasks_per_pass(wf: Workflow) -> int:
    counts = {p.tasks or len(p.templates) * max(1, len(wf.domains)) for p in wf.passes}
    if len(counts) != 1:
        raise SystemExit(f"every pass must have the same number of tasks, got {sorted(counts)}")
    return counts.pop()


def ideal_seconds(passes: int, per_pass: int, slots: int, work_ms: float) -> float:
    return passes * math.ceil(per_pass / slots) * work_ms / 1000


# -- one run -----------------------------------------------------------------


async def check(
    swarm: Swarm, wf: Workflow, summary: WorkflowSummary, per_pass: int, work_ms: float
) -> tuple[list[Finding], dict[int, Knowledge]]:
    """Exactly one ok finding per task of every pass, and one synthesis per pass;
    raises AssertionError otherwise. Returns the findings and the syntheses."""
    run_id = summary.run_id
    findings = await swarm.results.findings(SPEC)
    counts = Counter(f.task_id for f in findings)
    expected = {task_id(run_id, p.number, i) for p in wf.passes for i in range(1, per_pass + 1)}
    assert set(counts) == expected, (
        f"findings for {len(set(counts) & expected)} of {len(expected)} tasks, "
        f"{len(set(counts) - expected)} unexpected"
    )
    twice = [t for t, n in counts.items() if n != 1]
    assert not twice, f"{len(twice)} task(s) with more than one finding, e.g. {twice[0]}"
    bad = [f for f in findings if f.status is not Status.OK]
    assert not bad, f"{len(bad)} finding(s) not ok, e.g. {bad[0].task_id}: {bad[0].error}"
    if work_ms > 0:
        short = [f for f in findings if f.finished - f.started < work_ms / 1000 * 0.95]
        assert not short, f"{len(short)} task(s) did not sleep {work_ms:g} ms"
        assert all(f.content.startswith(f"slept {work_ms / 1000:g}s") for f in findings)
    assert len(summary.passes) == len(wf.passes), "a pass summary is missing"
    for ps in summary.passes:
        assert ps.tasks == per_pass and ps.ok == per_pass and not ps.missing, f"pass {ps}"
    stored = await swarm.transport.shards.knowledge(SHARD)
    syntheses = {number: Knowledge.from_bytes(raw) for number, raw in stored.items()}
    assert sorted(syntheses) == [p.number for p in wf.passes], f"syntheses {sorted(syntheses)}"
    for number, k in syntheses.items():
        assert k.findings == per_pass and not k.missing, f"synthesis of pass {number}: {k}"
    return findings, syntheses


async def measure(
    bench: Bench,
    workflow_path: Path,
    layout: Layout,
    work_ms: float,
    repeat: int,
    tick: float,
    cut: tuple[int | None, int | None] = (None, None),
) -> Run:
    """One run: fresh namespace, workers started and blocked in XREADGROUP, then
    ``WorkflowRunner.run()`` timed, then checked; workers stopped, keys deleted."""
    wf = bench_workflow(workflow_path, work_ms, *cut)
    per_pass = tasks_per_pass(wf)
    ns = bench.namespace(f"wf{layout.label}-{work_ms:g}ms")
    settings = Settings.from_flat(
        {"url": bench.url, "namespace": ns, "concurrency": layout.concurrency}
    )
    handler = "sleep" if work_ms > 0 else "echo"
    client: Redis = await bench.client()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await start_workers(bench, client, settings, SPEC, handler, ns, layout.processes, procs)
        events: list[tuple[float, Progress]] = []
        async with Swarm(settings) as swarm:
            runner = WorkflowRunner(
                swarm, wf, on_progress=lambda p: events.append((time.time(), p)), tick=tick
            )
            calls0 = await command_calls(client)
            t0_wall, t0 = time.time(), time.perf_counter()
            summary = await runner.run()
            wall = time.perf_counter() - t0
            calls1 = await command_calls(client)
            findings, syntheses = await check(swarm, wf, summary, per_pass, work_ms)
        run = build_run(layout, work_ms, repeat, wf, per_pass, wall, t0_wall, events, findings)
        run.syntheses = len(syntheses)
        diff = {c: n - calls0.get(c, 0) for c, n in calls1.items()}
        diff["info"] = diff.get("info", 0) - 1  # the second INFO itself
        run.commands = dict(sorted(((c, n) for c, n in diff.items() if n > 0), key=lambda x: -x[1]))
        return run
    finally:
        stop_all(procs)
        await drop_namespace(client, ns)
        await client.aclose()


async def command_calls(client: Redis) -> dict[str, int]:
    """Commands the server has executed so far, by name (INFO commandstats): the
    runner's and the workers' together (and any other client's on a shared server)."""
    info = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


def stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every worker first, then wait for each: a draining worker takes up to
    its XREADGROUP block (1 s) to leave, so stopping them one by one adds up."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        stop_process(proc)


def build_run(
    layout: Layout,
    work_ms: float,
    repeat: int,
    wf: Workflow,
    per_pass: int,
    wall: float,
    t0: float,
    events: list[tuple[float, Progress]],
    findings: list[Finding],
) -> Run:
    """Split the wall time per pass from the progress events and the findings."""
    n = len(wf.passes)
    ideal = ideal_seconds(n, per_pass, layout.slots, work_ms)

    def at(state: str, number: int) -> float:
        times = [
            t
            for t, p in events
            if p.state == state
            and p.pass_no == number
            and (state != "waiting" or p.findings == p.tasks)
        ]
        assert times, f"no {state!r} event for pass {number}"
        return times[0] - t0

    started = at("start", 0)
    timings = []
    begin = started
    for p in wf.passes:
        mine = [f for f in findings if f.pass_no == p.number]
        timing = PassTiming(
            number=p.number,
            start=begin,
            posted=at("posted", p.number),
            first_start=min(f.started for f in mine) - t0,
            last_finish=max(f.finished for f in mine) - t0,
            seen=at("waiting", p.number),
            synthesized=at("synthesized", p.number),
            ideal=ideal / n,
        )
        timings.append(timing)
        begin = timing.synthesized
    return Run(
        layout=layout.label,
        processes=layout.processes,
        concurrency=layout.concurrency,
        work_ms=work_ms,
        repeat=repeat,
        passes=n,
        tasks_per_pass=per_pass,
        wall_s=wall,
        ideal_s=ideal,
        overhead_s=wall - ideal,
        setup_s=started,
        end_s=wall - begin,
        pass_phases=[t.phases() for t in timings],
        findings=len(findings),
        wakeups=sum(1 for _, p in events if p.state == "waiting"),
    )


# -- summaries and tables ----------------------------------------------------

PHASES = ("post_run", "notice", "synthesize", "post", "first_start", "pass")


def aggregate(runs: list[Run]) -> dict[str, Any]:
    """Median and spread over the runs of one (layout, work) configuration."""
    first = runs[0]
    tasks, passes = first.tasks, first.passes
    out: dict[str, Any] = {
        "layout": first.layout,
        "processes": first.processes,
        "concurrency": first.concurrency,
        "work_ms": first.work_ms,
        "passes": passes,
        "tasks_per_pass": first.tasks_per_pass,
        "ideal_s": first.ideal_s,
        "wall_s": summarize([r.wall_s for r in runs]),
        "overhead_s": summarize([r.overhead_s for r in runs]),
        "overhead_per_pass_ms": summarize([r.overhead_s / passes * 1000 for r in runs]),
        "overhead_per_task_ms": summarize([r.overhead_s / tasks * 1000 for r in runs]),
        "setup_ms": summarize([r.setup_s * 1000 for r in runs]),
        "end_ms": summarize([r.end_s * 1000 for r in runs]),
        "wakeups_per_pass": summarize([r.wakeups / passes for r in runs]),
        "commands_per_pass": summarize([sum(r.commands.values()) / passes for r in runs]),
    }
    names = Counter[str]()
    for r in runs:
        names.update(r.commands)
    out["commands_by_name_per_pass"] = {
        c: round(n / len(runs) / passes, 1) for c, n in names.most_common()
    }
    # per phase: the mean over the passes of a run, in ms; then median/min-max over runs
    out["phases_ms"] = {
        ph: summarize([statistics.fmean(x[ph] for x in r.pass_phases) * 1000 for r in runs])
        for ph in PHASES
    }
    return out


def _mm(s: dict[str, float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def print_tables(report: dict[str, Any]) -> None:
    cfg = report["config"]
    title = (
        f"workflow {cfg['passes']} passes x {cfg['tasks_per_pass']} tasks, "
        f"{cfg['repeat']} run(s) each: median (min-max)"
    )
    table = Table(title=title)
    cols: tuple[str, ...] = (
        "workers",
        "work",
        "ideal s",
        "wall s",
        "overhead s",
        "per pass ms",
        "per task ms",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "workers" else "right")
    for s in report["summaries"]:
        table.add_row(
            f"{s['processes']} proc x {s['concurrency']}",
            f"{s['work_ms']:g} ms",
            f"{s['ideal_s']:.2f}",
            _mm(s["wall_s"], "{:.3f}"),
            _mm(s["overhead_s"], "{:.3f}"),
            _mm(s["overhead_per_pass_ms"], "{:.1f}"),
            _mm(s["overhead_per_task_ms"], "{:.2f}"),
        )
    console.print(table)
    split = Table(
        title="where a pass's time goes (ms, mean over the passes of a run; median over runs)"
    )
    cols = (
        "workers",
        "work",
        "post+run - ideal",
        "notice",
        "synthesize",
        "pass",
        "(post)",
        "(1st start)",
        "checks",
        "setup + end",
    )
    for col in cols:
        split.add_column(col, justify="left" if col == "workers" else "right")
    for s in report["summaries"]:
        ph = s["phases_ms"]
        split.add_row(
            s["layout"],
            f"{s['work_ms']:g} ms",
            f"{ph['post_run']['median']:.1f}",
            f"{ph['notice']['median']:.1f}",
            f"{ph['synthesize']['median']:.1f}",
            f"{ph['pass']['median']:.1f}",
            f"{ph['post']['median']:.1f}",
            f"{ph['first_start']['median']:.1f}",
            f"{s['wakeups_per_pass']['median']:.1f}",
            f"{s['setup_ms']['median'] + s['end_ms']['median']:.1f}",
        )
    console.print(split)
    for s in report["summaries"]:
        top = ", ".join(f"{c} {n:g}" for c, n in list(s["commands_by_name_per_pass"].items())[:6])
        console.print(
            f"  {s['layout']:>6} {s['work_ms']:>3g} ms: {s['commands_per_pass']['median']:.0f} "
            f"Redis commands per pass (runner and workers): {top}",
            highlight=False,
        )
    console.print(
        "post+run: pass start to the last handler's end, less the ideal work; notice: to "
        "the runner holding every finding; synthesize: to the synthesis stored. (post) and "
        "(1st start) overlap post+run. checks: the runner's looks that found new findings per "
        "pass, the first look after posting included (1: all were there at the first). "
        f"Runner tick: {cfg['tick']:g} s.",
        highlight=False,
    )


# -- driver ------------------------------------------------------------------


def layouts_of(args: argparse.Namespace, per_pass: int) -> list[Layout]:
    """``--workers 1,4`` with ``--concurrency 40,10`` (one per entry, or one for all;
    default: enough slots for a whole pass, ceil(tasks per pass / processes))."""
    workers = [int(w) for w in str(args.workers).split(",")]
    if args.concurrency:
        conc = [int(c) for c in str(args.concurrency).split(",")]
        if len(conc) == 1:
            conc *= len(workers)
        if len(conc) != len(workers):
            raise SystemExit("--concurrency needs one value, or one per --workers entry")
    else:
        conc = [math.ceil(per_pass / w) for w in workers]
    if any(w < 1 for w in workers) or any(c < 1 for c in conc):
        raise SystemExit("--workers and --concurrency must be at least 1")
    return [Layout(w, c) for w, c in zip(workers, conc, strict=True)]


async def run_all(args: argparse.Namespace, bench: Bench, redis_version: str) -> dict[str, Any]:
    path = Path(args.workflow)
    cut = (args.domains, args.passes)
    probe = bench_workflow(path, 0, *cut)
    per_pass, passes = tasks_per_pass(probe), len(probe.passes)
    layouts = layouts_of(args, per_pass)
    works = [float(w) for w in str(args.work_ms).split(",")]
    console.print(
        f"workflow {probe.name}: {passes} passes x {per_pass} tasks; layouts "
        f"{', '.join(x.label for x in layouts)}; work {', '.join(f'{w:g}' for w in works)} ms; "
        f"{args.repeat} repeat(s); tick {args.tick:g} s",
        highlight=False,
    )
    # one untimed warm-up (imports, allocator, page cache): a cut-down run
    await measure(bench, path, layouts[0], 0.0, -1, args.tick, (1, 1))
    runs: dict[tuple[str, float], list[Run]] = {}
    for rep in range(args.repeat):
        order = [(lay, w) for lay in layouts for w in works]
        if rep % 2:  # alternate the order so no configuration always runs first
            order.reverse()
        for lay, w in order:
            run = await measure(bench, path, lay, w, rep, args.tick, cut)
            runs.setdefault((lay.label, w), []).append(run)
            console.print(
                f"  rep {rep + 1}/{args.repeat} {lay.label:>6} {w:>4g} ms: wall "
                f"{run.wall_s:.3f}s, ideal {run.ideal_s:.2f}s, overhead {run.overhead_s:.3f}s "
                f"({run.overhead_s / run.passes * 1000:.1f} ms/pass); {run.findings} findings, "
                f"{run.syntheses} syntheses",
                highlight=False,
            )
    summaries = [aggregate(runs[(lay.label, w)]) for lay in layouts for w in works]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(redis_version),
        "config": {
            "workflow": str(path),
            "passes": passes,
            "tasks_per_pass": per_pass,
            "layouts": [{"processes": x.processes, "concurrency": x.concurrency} for x in layouts],
            "work_ms": works,
            "handlers": {"0": "echo", ">0": "sleep (task data.ms)"},
            "repeat": args.repeat,
            "tick": args.tick,
            "redis": "external" if args.redis_url else "embedded (appendonly no, save '')",
            "quick": args.quick,
        },
        "runs": [vars(r) for rs in runs.values() for r in rs],
        "summaries": summaries,
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workflow", default=str(DEFAULT_WORKFLOW), help="workflow TOML file")
    p.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    p.add_argument("--workers", default="1,4", help="worker processes per layout (comma list)")
    p.add_argument(
        "--concurrency",
        help="slots per process, one value or one per --workers entry "
        "(default: a whole pass at once, ceil(tasks per pass / processes))",
    )
    p.add_argument("--work-ms", default="0,50", help="simulated work per task (comma list)")
    p.add_argument("--tick", type=float, default=1.0, help="WorkflowRunner tick (s)")
    p.add_argument("--passes", type=int, help="run only the first N passes")
    p.add_argument("--domains", type=int, help="keep only the first N domains")
    p.add_argument(
        "--redis-url",
        help="use this server instead of starting one (keys are "
        "namespaced and deleted afterwards; nothing is flushed)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="2 passes x 5 tasks, 1 repeat (CI smoke)")
    args = p.parse_args(list(argv))
    if args.quick:
        args.repeat = 1
        args.passes = args.passes or 2
        args.domains = args.domains or 1
    if args.repeat < 1 or (args.passes or 1) < 1 or (args.domains or 1) < 1:
        p.error("--repeat, --passes and --domains must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    async def measure(srv: Server) -> dict[str, Any]:
        console.print(describe(srv), highlight=False)
        return await run_all(args, Bench(srv.url, srv.pid, srv.tmp), srv.version)

    drive(args, measure, print_tables, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
