"""The round trip of swarmstream against raw streams, one request of each in turn.

``latency.py`` runs 200 requests of one configuration, then 200 of the next. On a
2-vCPU VM the scheduler's placement of the requester, the responder and Redis then
differs from one block to the next, and moves a block's p50 by a third. Here the
two alternate request by request (raw, swarmstream, swarmstream, raw, ...), so that
both meet the same machine state, and the ratio of their p50s is steadier.

The same configurations as ``latency.py``: ``raw streams`` (sync redis-py + hiredis +
msgpack: requester XADD then XREAD BLOCK; a responder process XREADGROUP, then XADD +
XACK in one pipeline) and ``swarmstream`` (one worker process running ``echo``,
concurrency 8; the requester does ``await swarm.submit(...)`` then ``await
swarm.wait(task)``). Both requesters live in this process. Besides the p50s it
reports, per request, the requester's CPU (``time.process_time`` around each
request) and the responder's (its main thread's, from ``/proc/<pid>/schedstat``).

    python benchmarks/roundtrip_pairs.py               # 5 blocks of 400 pairs, ~10 s
    python benchmarks/roundtrip_pairs.py --quick       # CI smoke, a few seconds
    python benchmarks/roundtrip_pairs.py --json benchmarks/results/roundtrip_pairs.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))
from benchmarks.common import describe, interrupt, machine_info, redis_server  # noqa: E402
from benchmarks.latency import Harness, pct, process_cpu  # noqa: E402
from benchmarks.roundtrip_parts import add_asyncio_raw, add_library_loop  # noqa: E402

console = Console() if sys.stdout.isatty() else Console(width=130)
KINDS = ("raw", "swarmstream")
#: with --parts (see roundtrip_parts.py)
PARTS = ("raw_asyncio", "library_loop")
LABELS = {
    "raw": "raw streams",
    "swarmstream": "swarmstream",
    "raw_asyncio": "raw streams, asyncio",
    "library_loop": "swarmstream, library loop",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--blocks", type=int, default=5, help="blocks (each gives a ratio: the spread)")
    p.add_argument("--pairs", type=int, default=400, help="pairs of requests per block")
    p.add_argument("--warmup", type=int, default=50, help="untimed pairs first")
    p.add_argument(
        "--redis-url",
        help="use this server instead of starting one (keys are namespaced and deleted "
        "afterwards; nothing is flushed)",
    )
    p.add_argument(
        "--parts",
        action="store_true",
        help="two more configurations in the rotation, to tell apart what costs: raw "
        "streams on asyncio and the direct path, and swarmstream's requester with a "
        "plain loop of the library's read/decode/encode/complete instead of a worker "
        "(roundtrip_parts.py)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="1 block of 50 pairs (CI smoke)")
    args = p.parse_args(argv)
    if args.quick:
        args.blocks, args.pairs, args.warmup = 1, 50, 5
    return args


def run(url: str, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start both responders as ``latency.py`` does (its harness), and measure."""
    h = Harness(url, tmp, args)
    try:
        h.add_raw("streams", 0, 0)
        h.add_swarmstream(0, 0)
        if args.parts:
            add_asyncio_raw(h)
            add_library_loop(h)
        kinds = KINDS + PARTS if args.parts else KINDS
        requesters = {k: c.latency for k, c in zip(kinds, h.configs, strict=True)}
        pids = {k: c.pid or 0 for k, c in zip(kinds, h.configs, strict=True)}
        return measure(requesters, pids, args)
    finally:
        h.cleanup()


def measure(
    requesters: dict[str, Callable[[], float]], pids: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    """Warm up, then ``args.blocks`` blocks of alternating requests (the order of the
    configurations reversed every other request)."""
    kinds = tuple(requesters)
    for _ in range(args.warmup):
        for kind in kinds:
            requesters[kind]()
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    blocks: list[dict[str, float]] = []
    responder_cpu = {k: 0.0 for k in kinds}
    for block in range(args.blocks):
        ours: dict[str, list[float]] = {k: [] for k in kinds}
        at_start = {k: process_cpu(pids[k]) for k in kinds}
        for i in range(args.pairs):
            order = kinds if (i + block) % 2 == 0 else kinds[::-1]
            for kind in order:
                before = time.process_time()
                ours[kind].append(requesters[kind]())
                cpu[kind].append(time.process_time() - before)
        for k in kinds:  # each responder idles while the other one's request runs
            responder_cpu[k] += process_cpu(pids[k]) - at_start[k]
        p50 = {k: statistics.median(v) for k, v in ours.items()}
        blocks.append({f"{k}_p50_ms": v * 1e3 for k, v in p50.items()})
        blocks[-1]["ratio"] = p50["swarmstream"] / p50["raw"]
        for k in kinds[2:]:
            blocks[-1][f"{k}_ratio"] = p50[k] / p50["raw"]
        for k in kinds:
            samples[k] += ours[k]
        parts = "".join(f", {k} {blocks[-1][k + '_ratio']:.2f}x" for k in kinds[2:])
        console.print(
            f"  block {block + 1}/{args.blocks}: raw p50 {p50['raw'] * 1e3:.3f} ms, "
            f"swarmstream {p50['swarmstream'] * 1e3:.3f} ms, {blocks[-1]['ratio']:.2f}x{parts}",
            highlight=False,
        )
    n = args.blocks * args.pairs
    results = {
        k: {
            "n": len(samples[k]),
            "p50_ms": pct([x * 1e3 for x in samples[k]], 50),
            "p99_ms": pct([x * 1e3 for x in samples[k]], 99),
            "requester_cpu_us": statistics.median(cpu[k]) * 1e6,
            "responder_cpu_us": responder_cpu[k] / n * 1e6,
        }
        for k in kinds
    }
    ratios = [b["ratio"] for b in blocks]
    return {
        "results": results,
        "blocks": blocks,
        "ratio": results["swarmstream"]["p50_ms"] / results["raw"]["p50_ms"],
        "ratio_blocks_min_max": [min(ratios), max(ratios)],
    }


def print_table(report: dict[str, Any]) -> None:
    table = Table(title="submit -> finding against raw streams, one request of each in turn")
    cols = ("configuration", "n", "p50 ms", "p50 / raw", "p99 ms", "requester CPU µs")
    for col in (*cols, "responder CPU µs"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    raw = report["results"]["raw"]["p50_ms"]
    for kind, e in report["results"].items():
        table.add_row(
            LABELS[kind],
            str(e["n"]),
            f"{e['p50_ms']:.3f}",
            f"{e['p50_ms'] / raw:.2f}x",
            f"{e['p99_ms']:.3f}",
            f"{e['requester_cpu_us']:,.0f}",
            f"{e['responder_cpu_us']:,.0f}",
        )
    console.print(table)
    lo, hi = report["ratio_blocks_min_max"]
    verdict = "met" if report["ratio"] <= 1.3 else "NOT met"
    console.print(
        f"swarmstream p50 / raw streams p50: [bold]{report['ratio']:.2f}x[/] "
        f"(blocks {lo:.2f}-{hi:.2f}x; target <= 1.3x: {verdict})"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, interrupt)
    started = time.perf_counter()
    with redis_server(args.redis_url, prefix="swarmstream-pairs-") as srv:
        console.print(describe(srv, f"{args.blocks} blocks of {args.pairs} pairs; "))
        measured = run(srv.url, srv.tmp, args)
        version = srv.version
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(version),
        "config": {
            "blocks": args.blocks,
            "pairs": args.pairs,
            "warmup": args.warmup,
            "swarmstream_concurrency": 8,
            "parts": args.parts,
            "redis": "external" if args.redis_url else "embedded (appendonly no, save '')",
            "quick": args.quick,
        },
        **measured,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
