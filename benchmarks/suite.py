"""The whole benchmark suite in one command: JSON results, a PNG plot, a Markdown table.

Runs every benchmark script of this folder, one after the other, each in its own
process with its own embedded redis-server (or ``--redis-url``), each writing its
JSON into the output folder; then reads them back and writes:

* ``suite.json``: date, machine, the key figures and every target's ratio;
* ``results.md``: the tables the README shows;
* ``suite.png``: throughput, latency, the scale curve and the workflow overhead.

    python benchmarks/suite.py                       # full run (~20-25 min on 2 cores)
    python benchmarks/suite.py --quick               # CI smoke: tiny sizes, ~1-2 min
    python benchmarks/suite.py --only latency,throughput --out /tmp/b

Peers run from their own venvs (``python benchmarks/peers/setup.py`` makes them);
without them the peer step is skipped with a message, or fails with ``--peers``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks import report as suite_report  # noqa: E402

#: name -> (script, full-run arguments, quick arguments)
STEPS: dict[str, tuple[str, list[str], list[str]]] = {
    "latency": ("latency.py", [], ["--quick"]),
    "throughput": ("throughput.py", ["--concurrency", "64,128,256"], ["--quick"]),
    "context_borrow": ("context_borrow.py", [], ["--quick"]),
    "workflow": ("workflow.py", [], ["--quick"]),
    "peers": ("peers/run.py", [], ["--quick"]),
    "scale": ("scale.py", [], ["--quick"]),
    "malformed": ("malformed.py", [], ["--quick"]),
    "cluster": ("cluster.py", [], ["--quick"]),
    "accounting": ("accounting.py", [], ["--quick"]),
    "answers": ("answers_eval.py", [], ["--quick", "--check"]),
    "cli_startup": ("cli_startup.py", [], ["--quick"]),
    "swarm": ("swarm.py", [], ["--quick"]),
    "distance": ("distance.py", [], ["--quick"]),
    "handler_redis": ("handler_redis.py", [], ["--quick"]),
    "roundtrip_pairs": ("roundtrip_pairs.py", ["--parts"], ["--quick", "--parts"]),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run)")
    p.add_argument(
        "--out",
        type=Path,
        default=HERE / "results" / "suite",
        help="output folder (default benchmarks/results/suite)",
    )
    p.add_argument("--only", default="", help=f"comma list of steps: {','.join(STEPS)}")
    p.add_argument("--skip", default="", help="comma list of steps to leave out")
    p.add_argument(
        "--peers",
        action="store_true",
        help="fail if the peer frameworks cannot run (default: skip them with a message)",
    )
    p.add_argument("--redis-url", help="pass to every step instead of embedded servers")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing; rebuild suite.json, results.md and suite.png from the JSON in --out",
    )
    args = p.parse_args(argv)
    for opt in ("only", "skip"):
        names = [n for n in getattr(args, opt).split(",") if n]
        unknown = [n for n in names if n not in STEPS]
        if unknown:
            p.error(f"unknown step(s) in --{opt}: {', '.join(unknown)}; steps: {', '.join(STEPS)}")
        setattr(args, opt, names)
    return args


def run_step(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one benchmark script; returns {status, seconds, json, log}."""
    script, full, quick = STEPS[name]
    out_json = args.out / f"{name}.json"
    log = args.out / f"{name}.log"
    argv = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
    argv += ["--json", str(out_json)]
    if args.redis_url:
        argv += ["--redis-url", args.redis_url]
    if name == "peers" and args.peers:
        argv += ["--require-peers"]
    print(f"== {name}: {' '.join(argv[1:])}", flush=True)
    started = time.perf_counter()
    out_json.unlink(missing_ok=True)
    with log.open("w") as fh:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            fh.write(line)
        rc = proc.wait()
    seconds = time.perf_counter() - started
    ok = rc == 0 and out_json.exists()
    print(f"== {name}: {'ok' if ok else f'FAILED (exit {rc})'} in {seconds:.0f} s", flush=True)
    return {"status": "ok" if ok else f"failed (exit {rc})", "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    steps = [n for n in (args.only or list(STEPS)) if n not in args.skip]
    runs: dict[str, Any] = {}
    started = time.perf_counter()
    if not args.report_only:
        env_note = os.environ.get("SWARMSTREAM_BENCH_NOTE", "")
        for name in steps:
            runs[name] = run_step(name, args)
        meta = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "steps": runs,
            "wall_s": round(time.perf_counter() - started, 1),
            "note": env_note,
        }
        (args.out / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    summary = suite_report.build(args.out)
    suite_report.write(summary, args.out)
    print(suite_report.verdicts(summary))
    print(f"wrote {args.out}/suite.json, results.md, suite.png")
    failed = [n for n, r in runs.items() if r["status"] != "ok"]
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
