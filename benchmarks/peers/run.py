"""swarmstream against peer task frameworks on Redis: the same no-op workload, one
worker process each, throughput and request->result latency (see README.md here).

Every measurement runs one adapter (``peer_<name>.py``) as a subprocess with the
interpreter of its venv: the peers from ``.venv-peers`` (saq from
``.venv-peers-saq``; create both with ``python3 benchmarks/peers/setup.py``),
swarmstream and the raw redis-py loop from this interpreter (the main venv). Each
adapter starts its framework's worker with the framework's own CLI, waits until it
works, warms it up, measures, stops it and deletes its keys.

    .venv/bin/python benchmarks/peers/run.py                    # all available, 3 repeats
    .venv/bin/python benchmarks/peers/run.py --quick            # CI smoke (tiny sizes)
    .venv/bin/python benchmarks/peers/run.py --peers celery,rq,swarmstream --tasks 2000
    .venv/bin/python benchmarks/peers/run.py --json benchmarks/results/peers.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.common import interrupt, machine_info, redis_server  # noqa: E402


@dataclass(frozen=True)
class PeerDef:
    """A row of the table: the adapter ``peer_<adapter>.py``, the venv it runs in
    (None = this interpreter, the main venv) and extra environment (variants)."""

    adapter: str
    venv: str | None
    env: tuple[tuple[str, str], ...] = ()


#: every row, in table order
PEERS: dict[str, PeerDef] = {
    "celery": PeerDef("celery", "common"),
    "rq": PeerDef("rq", "common"),
    "dramatiq": PeerDef("dramatiq", "common"),
    "arq": PeerDef("arq", "common"),
    # arq's default poll_delay (0.5 s) caps it at ~100 jobs per poll; the same
    # worker with a 10 ms poll shows what arq itself costs
    "arq-fastpoll": PeerDef("arq", "common", (("PEER_ARQ_POLL_DELAY", "0.01"),)),
    "taskiq": PeerDef("taskiq", "common"),
    "faststream": PeerDef("faststream", "common"),
    "saq": PeerDef("saq", "saq"),
    "swarmstream": PeerDef("swarmstream", None),
    "raw": PeerDef("raw", None),
}
#: references, not peers: left out of "fastest peer" / "best peer"
REFERENCES = ("swarmstream", "raw")
#: default cap on tasks per throughput run, for peers that are slow by design
#: (RQ forks a process per job; arq's worker polls its queue every 0.5 s)
TASKS_CAP = {"rq": 1000, "arq": 2000}
#: default cap on sequential requests per latency run (arq: ~0.25 s each, plus an
#: untimed random pause of up to 0.5 s)
REQUESTS_CAP = {"arq": 50}
RUN_TIMEOUT = 900.0
SETUP_HINT = "create the peer venvs with: python3 benchmarks/peers/setup.py"

console = Console() if sys.stdout.isatty() else Console(width=160)


@dataclass
class Plan:
    """What one run_peers call measures."""

    peers: list[str]
    pythons: dict[str, str]
    tasks: dict[str, int]
    requests: dict[str, int]
    repeat: int
    warmup: int
    seed: int
    skipped: dict[str, str] = field(default_factory=dict)


def venv_python(venv: str | None, peers_venv: Path) -> str:
    """The interpreter of a venv name (see setup.py): common -> .venv-peers,
    NAME -> .venv-peers-NAME; None -> this interpreter."""
    if venv is None:
        return sys.executable
    root = peers_venv if venv == "common" else peers_venv.with_name(f"{peers_venv.name}-{venv}")
    return str(root / "bin" / "python")


def parse_overrides(text: str | None, kind: type = int) -> dict[str, Any]:
    """``a=1,b=2`` -> {"a": 1, "b": 2}."""
    out: dict[str, Any] = {}
    for item in filter(None, (text or "").split(",")):
        name, _, value = item.partition("=")
        if not value:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        out[name.strip()] = kind(value.strip())
    return out


def make_plan(
    peers: list[str] | None,
    *,
    tasks: int,
    requests: int,
    repeat: int,
    warmup: int,
    peers_venv: Path,
    python_for: dict[str, str],
    tasks_for: dict[str, int],
    requests_for: dict[str, int],
    quick: bool,
    seed: int,
    require: bool = False,
) -> Plan:
    """Resolve interpreters and sizes; a peer whose adapter or venv is missing is
    skipped (with the reason); an explicitly requested one is an error, and so is
    any skipped peer with ``require``."""
    explicit = peers is not None or require
    wanted = list(PEERS) if peers is None else peers
    unknown = [p for p in wanted if p not in PEERS]
    if unknown:
        raise SystemExit(f"unknown peer(s): {', '.join(unknown)}; known: {', '.join(PEERS)}")
    plan = Plan([], {}, {}, {}, repeat, warmup, seed)
    for name in wanted:
        python = python_for.get(name) or venv_python(PEERS[name].venv, peers_venv)
        adapter = HERE / f"peer_{PEERS[name].adapter}.py"
        if not adapter.exists():
            plan.skipped[name] = f"no adapter {adapter.relative_to(REPO)}"
        elif not Path(python).exists():
            plan.skipped[name] = f"no interpreter {python} ({SETUP_HINT})"
        else:
            plan.peers.append(name)
            plan.pythons[name] = python
            cap_t = None if quick else TASKS_CAP.get(name)
            cap_r = None if quick else REQUESTS_CAP.get(name)
            plan.tasks[name] = tasks_for.get(name) or min(tasks, cap_t or tasks)
            plan.requests[name] = requests_for.get(name) or min(requests, cap_r or requests)
    if explicit and plan.skipped:
        reasons = "; ".join(f"{k}: {v}" for k, v in plan.skipped.items())
        raise SystemExit(f"cannot run requested peer(s): {reasons}")
    return plan


# -- one measurement -------------------------------------------------------------


def run_adapter(
    name: str,
    python: str,
    *,
    extra_env: dict[str, str] | None = None,
    url: str,
    mode: str,
    n: int,
    prefix: str,
    workdir: Path,
    warmup: int,
) -> dict[str, Any]:
    """Run one adapter; its result object, or {"error": ...}. On an interrupt the
    adapter gets SIGTERM (it stops its worker and deletes its keys), then SIGKILL."""
    argv = [python, str(HERE / f"peer_{PEERS[name].adapter}.py"), "--url", url, "--mode", mode]
    argv += ["--n", str(n), "--prefix", prefix, "--workdir", str(workdir)]
    argv += ["--warmup", str(warmup)]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra_env or {})
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=str(REPO),
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        if isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
            return {"error": f"timed out after {RUN_TIMEOUT:g}s", "wall_s": RUN_TIMEOUT}
        raise
    wall = time.perf_counter() - started
    lines = out.decode(errors="replace").strip().splitlines()
    errline = err.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        msg = errline[-1] if errline else f"exit code {proc.returncode}, no output"
        return {"error": msg, "rc": proc.returncode, "wall_s": wall}
    try:
        res: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": f"last stdout line is not JSON: {lines[-1][:200]}", "wall_s": wall}
    res["wall_s"] = wall
    return res


def leftover_keys(url: str, prefix: str) -> list[str]:
    """Keys whose name contains the run's prefix, after the adapter cleaned up."""
    client = redis.Redis.from_url(url)
    try:
        return sorted(k.decode() for k in client.scan_iter(match=f"*{prefix}*", count=5000))
    finally:
        client.close()


def dbsize(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.dbsize())
    finally:
        client.close()


# -- summaries -------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(runs: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """Per peer: throughput median/min/max over repeats; latency p50/p99 over all
    samples of all repeats, and the per-repeat p50s."""
    out: dict[str, Any] = {}
    for name in plan.peers:
        mine = [r for r in runs if r["peer_name"] == name and "error" not in r]
        thr = [r for r in mine if r["mode"] == "throughput"]
        lat = [r for r in mine if r["mode"] == "latency"]
        first = (thr or lat or [{}])[0]
        entry: dict[str, Any] = {
            "label": first.get("label", name),
            "version": first.get("version"),
            "settings": first.get("settings", {}),
            "completion": {r["mode"]: r.get("completion") for r in (thr[:1] + lat[:1])},
            "notes": {r["mode"]: r.get("notes") for r in (thr[:1] + lat[:1]) if r.get("notes")},
            "errors": [r["error"] for r in runs if r["peer_name"] == name and "error" in r],
            "python": plan.pythons[name],
        }
        if thr:
            rates = [r["tasks_per_s"] for r in thr]
            entry["throughput"] = {
                "tasks": plan.tasks[name],
                "median": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
                "runs": rates,
                "enqueue_s": [r.get("enqueue_s") for r in thr],
            }
        if lat:
            ms = [x for r in lat for x in r["samples_ms"]]
            entry["latency"] = {
                "n": len(ms),
                "p50_ms": pct(ms, 50),
                "p90_ms": pct(ms, 90),
                "p99_ms": pct(ms, 99),
                "min_ms": min(ms),
                "max_ms": max(ms),
                "repeat_p50_ms": [pct(r["samples_ms"], 50) for r in lat],
            }
        out[name] = entry
    return out


def ratios(summary: dict[str, Any]) -> dict[str, Any]:
    """swarmstream throughput / fastest peer's, swarmstream p50 / best peer's."""
    peers = {k: v for k, v in summary.items() if k not in REFERENCES}
    out: dict[str, Any] = {}
    ss = summary.get("swarmstream", {})
    thr = {k: v["throughput"]["median"] for k, v in peers.items() if "throughput" in v}
    lat = {k: v["latency"]["p50_ms"] for k, v in peers.items() if "latency" in v}
    if "throughput" in ss and thr:
        best = max(thr, key=lambda k: thr[k])
        out["fastest_peer"] = best
        out["swarmstream_over_fastest_peer"] = ss["throughput"]["median"] / thr[best]
    if "latency" in ss and lat:
        best = min(lat, key=lambda k: lat[k])
        out["best_p50_peer"] = best
        out["swarmstream_p50_over_best_peer"] = ss["latency"]["p50_ms"] / lat[best]
    raw = summary.get("raw", {})
    if "throughput" in ss and "throughput" in raw:
        out["swarmstream_over_raw_throughput"] = (
            ss["throughput"]["median"] / raw["throughput"]["median"]
        )
    if "latency" in ss and "latency" in raw:
        out["swarmstream_p50_over_raw"] = ss["latency"]["p50_ms"] / raw["latency"]["p50_ms"]
    return out


# -- the whole run ---------------------------------------------------------------


def run_peers(
    *,
    redis_url: str | None = None,
    peers: list[str] | None = None,
    tasks: int = 5000,
    requests: int = 200,
    repeat: int = 3,
    warmup: int = 20,
    quick: bool = False,
    peers_venv: Path | str = REPO / ".venv-peers",
    python_for: dict[str, str] | None = None,
    tasks_for: dict[str, int] | None = None,
    requests_for: dict[str, int] | None = None,
    modes: tuple[str, ...] = ("throughput", "latency"),
    seed: int = 6,
    require: bool = False,
    workdir: Path | str | None = None,
    json_path: Path | str | None = None,
    out: Console | None = None,
) -> dict[str, Any]:
    """Run the peer benchmark and return the report (also written to ``json_path``).

    ``quick``: 50 tasks, 10 requests, 1 repeat, 5 warm-up tasks (a CI smoke run).
    Peers whose adapter or venv is missing are skipped when ``peers`` is None (see
    ``report["config"]["skipped"]``); an explicitly requested one raises SystemExit,
    and with ``require`` so does any skipped one.
    """
    con = out or console
    if quick:
        tasks, requests, repeat, warmup = min(tasks, 50), min(requests, 10), 1, min(warmup, 5)
    plan = make_plan(
        peers,
        tasks=tasks,
        requests=requests,
        repeat=repeat,
        warmup=warmup,
        peers_venv=Path(peers_venv),
        python_for=python_for or {},
        tasks_for=tasks_for or {},
        requests_for=requests_for or {},
        quick=quick,
        seed=seed,
        require=require,
    )
    for name, why in plan.skipped.items():
        con.print(f"[yellow]skipping {name}: {why}[/]", highlight=False)
    if not plan.peers:
        raise SystemExit("no peer can run")
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:6]
    rng = random.Random(seed)
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        srv = stack.enter_context(redis_server(redis_url, prefix="swarmstream-peers-"))
        if workdir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="peers-")))
        else:
            work = Path(workdir)
            work.mkdir(parents=True, exist_ok=True)
        con.print(
            f"redis {srv.version} at {srv.url} ({'embedded' if srv.embedded else 'external'}); "
            f"peers {', '.join(plan.peers)}; {repeat} repeat(s); cpus {os.cpu_count()}",
            highlight=False,
        )
        for rep in range(repeat):
            order = plan.peers[:]
            rng.shuffle(order)
            for name in order:
                for mode in modes:
                    runs.append(one_run(plan, name, mode, rep, srv.url, srv.embedded, work, run_id))
                    report_line(con, runs[-1], rep, repeat)
        redis_version = srv.version
        embedded = srv.embedded
    summary = summarize(runs, plan)
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(redis_version),
        "config": {
            "peers": plan.peers,
            "skipped": plan.skipped,
            "tasks": plan.tasks,
            "requests": plan.requests,
            "repeat": repeat,
            "warmup": warmup,
            "modes": list(modes),
            "seed": seed,
            "pythons": plan.pythons,
            "redis": "external" if not embedded else "embedded (appendonly no, save '')",
            "quick": quick,
        },
        "runs": runs,
        "summary": summary,
        "ratios": ratios(summary),
        "failures": [r for r in runs if "error" in r],
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=1) + "\n")
    return report


def one_run(
    plan: Plan,
    name: str,
    mode: str,
    rep: int,
    url: str,
    embedded: bool,
    work: Path,
    run_id: str,
) -> dict[str, Any]:
    """One adapter run, with a check that it left no key behind."""
    prefix = f"peers-{run_id}-{name}-{mode[0]}{rep}"
    n = plan.tasks[name] if mode == "throughput" else plan.requests[name]
    before = dbsize(url) if embedded else None
    res = run_adapter(
        name,
        plan.pythons[name],
        extra_env=dict(PEERS[name].env),
        url=url,
        mode=mode,
        n=n,
        prefix=prefix,
        workdir=work / prefix,
        warmup=plan.warmup,
    )
    res.update(peer_name=name, mode=mode, repeat=rep, prefix=prefix, requested_n=n)
    left = leftover_keys(url, prefix)
    if left:
        res["leftover_keys"] = left[:20]
        res["leftover_count"] = len(left)
    if before is not None:
        # the embedded server is ours alone: any growth is a key the run leaked
        grown = dbsize(url) - before
        if grown > 0:
            res["leaked_key_count"] = grown
    return res


def report_line(con: Console, res: dict[str, Any], rep: int, repeat: int) -> None:
    head = f"  rep {rep + 1}/{repeat} {res['peer_name']:<12} {res['mode']:<10}"
    if "error" in res:
        con.print(f"[red]{head} FAILED: {res['error']}[/]", highlight=False)
        return
    if res["mode"] == "throughput":
        body = f"{res['tasks_per_s']:>10,.0f} tasks/s ({res['n']} in {res['seconds']:.3f}s)"
    else:
        body = f"p50 {res['p50_ms']:8.3f} ms  p99 {res['p99_ms']:8.3f} ms ({res['n']} requests)"
    warn = ""
    if res.get("leftover_count") or res.get("leaked_key_count"):
        warn = (
            f" [yellow]keys left: {res.get('leftover_count', 0)} with prefix, "
            f"{res.get('leaked_key_count', 0)} more in dbsize[/]"
        )
    con.print(f"{head} {body} (wall {res['wall_s']:.1f}s){warn}", highlight=False)


# -- output ------------------------------------------------------------------------


def short_settings(settings: dict[str, Any]) -> str:
    pool = str(settings.get("pool", ""))
    conc = settings.get("concurrency")
    return f"{pool}; concurrency {conc}" if conc is not None else pool


def print_report(report: dict[str, Any], con: Console | None = None) -> None:
    con = con or console
    table = Table(title="peers: no-op tasks, one worker process each")
    cols = ("framework", "tasks", "tasks/s median", "min-max", "p50 ms", "p99 ms", "settings")
    for col in cols:
        table.add_column(col, justify="left" if col in ("framework", "settings") else "right")
    for e in report["summary"].values():
        t, lat = e.get("throughput"), e.get("latency")
        table.add_row(
            e["label"],
            str(t["tasks"]) if t else "-",
            f"{t['median']:,.0f}" if t else "-",
            f"{t['min']:,.0f}-{t['max']:,.0f}" if t else "-",
            f"{lat['p50_ms']:.3g}" if lat else "-",
            f"{lat['p99_ms']:.3g}" if lat else "-",
            short_settings(e["settings"]),
        )
    con.print(table)
    r = report["ratios"]
    if "swarmstream_over_fastest_peer" in r:
        con.print(
            f"swarmstream throughput / fastest peer ({r['fastest_peer']}): "
            f"[bold]{r['swarmstream_over_fastest_peer']:.2f}x[/]"
        )
    if "swarmstream_p50_over_best_peer" in r:
        con.print(
            f"swarmstream p50 / best peer p50 ({r['best_p50_peer']}): "
            f"[bold]{r['swarmstream_p50_over_best_peer']:.2f}x[/]"
        )
    for f in report["failures"]:
        con.print(
            f"[red]failed: {f['peer_name']} {f['mode']} (repeat {f['repeat'] + 1}): "
            f"{f['error']}[/]",
            highlight=False,
        )
    con.print(f"wall time {report['wall_s']:.0f}s", highlight=False)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--redis-url", help="use this server (keys are prefixed and deleted; no flush)")
    p.add_argument("--peers", help=f"comma list (default: all available of {','.join(PEERS)})")
    p.add_argument("--tasks", type=int, default=5000, help="tasks per throughput run")
    p.add_argument("--requests", type=int, default=200, help="sequential requests per latency run")
    p.add_argument("--repeat", type=int, default=3, help="repeats (peer order shuffled in each)")
    p.add_argument("--warmup", type=int, default=20, help="untimed tasks before each measurement")
    p.add_argument(
        "--tasks-for",
        help="per-peer tasks, e.g. rq=500 (default caps: "
        + ", ".join(f"{k}={v}" for k, v in TASKS_CAP.items())
        + ")",
    )
    p.add_argument(
        "--requests-for",
        help="per-peer requests (default caps: "
        + ", ".join(f"{k}={v}" for k, v in REQUESTS_CAP.items())
        + ")",
    )
    p.add_argument("--modes", default="throughput,latency", help="throughput,latency")
    p.add_argument(
        "--peers-python",
        default=str(REPO / ".venv-peers" / "bin" / "python"),
        help="interpreter of the common peer venv (saq's is the same path with -saq "
        "after the venv folder's name)",
    )
    p.add_argument("--python-for", help="per-peer interpreter, e.g. saq=/path/bin/python")
    p.add_argument("--seed", type=int, default=6, help="seed of the per-repeat peer order")
    p.add_argument("--workdir", help="keep worker logs here (default: a temporary folder)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON")
    p.add_argument("--quick", action="store_true", help="50 tasks, 10 requests, 1 repeat")
    p.add_argument(
        "--require-peers",
        action="store_true",
        help="fail if any peer cannot run (default: skip it with a message)",
    )
    args = p.parse_args(argv)
    if args.tasks < 1 or args.requests < 1 or args.repeat < 1:
        p.error("--tasks, --requests and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, interrupt)  # stop adapters and servers on SIGTERM too
    peers_python = Path(args.peers_python)
    try:
        report = run_peers(
            redis_url=args.redis_url,
            peers=args.peers.split(",") if args.peers else None,
            tasks=args.tasks,
            requests=args.requests,
            repeat=args.repeat,
            warmup=args.warmup,
            quick=args.quick,
            peers_venv=peers_python.parent.parent,
            python_for=parse_overrides(args.python_for, str),
            tasks_for=parse_overrides(args.tasks_for),
            requests_for=parse_overrides(args.requests_for),
            modes=tuple(m for m in args.modes.split(",") if m),
            seed=args.seed,
            require=args.require_peers,
            workdir=args.workdir,
            json_path=args.json,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_report(report)
    if args.json:
        console.print(f"wrote {args.json}", highlight=False)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
