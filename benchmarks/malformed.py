"""What a malformed entry costs a worker: the time one worker process spends per
entry that it dead-letters (the cases of issue 10: huge numbers, lone surrogates,
deep nesting, wrong spec, garbage), next to a well-formed task it completes.

Each round adds N entries of one kind to a fresh spec before the worker starts,
then starts one worker process (``echo``, concurrency 64) and times from its
first delivery to its last settled entry (the group's pending list empty and
every entry delivered). Kinds alternate round by round; medians and spread.

    python benchmarks/malformed.py                 # 5 rounds of 5,000 entries per kind
    python benchmarks/malformed.py --quick         # CI smoke
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Server, describe, drive, machine_info, summarize
from swarmstream import Settings, Task
from swarmstream.codec import encode_task
from swarmstream.keys import GROUP, Keys
from swarmstream.worker.process import spawn_worker

Z400 = b"1" + b"0" * 400
MALFORMED = [
    b'{"id":"%s","text":"x","created":' + Z400 + b"}",
    b'{"id":"%s","text":"x","timeout":' + Z400 + b"}",
    b'{"id":"%s","text":"\\ud800"}',
    b'{"id":"%s","text":"x","data":' + b"[" * 2000 + b"]" * 2000 + b"}",
    b'{"id":"%s","text":"x","spec":""}',
    b"\xc1 not msgpack %s",
]


def bodies(kind: str, n: int) -> list[dict[bytes, bytes]]:
    if kind == "valid":
        return [
            {k.encode(): v for k, v in encode_task(Task(spec="m", text=f"t{i}")).items()}
            for i in range(n)
        ]
    return [{b"body": MALFORMED[i % len(MALFORMED)].replace(b"%s", b"m%d" % i)} for i in range(n)]


def one_round(srv: Server, kind: str, n: int) -> float:
    """Seconds one worker process takes to settle n entries of ``kind``."""
    ns = f"mal{uuid.uuid4().hex[:8]}"
    settings = Settings.from_flat({"url": srv.url, "namespace": ns, "concurrency": 64})
    keys = Keys(ns).spec("m")
    r = redis.Redis.from_url(srv.url)
    try:
        r.xgroup_create(keys.tasks, GROUP, id="0", mkstream=True)
        entries = bodies(kind, n)
        for i in range(0, n, 1000):
            pipe = r.pipeline(transaction=False)
            for fields in entries[i : i + 1000]:
                pipe.xadd(keys.tasks, fields)  # type: ignore[arg-type]
            pipe.execute()
        last = r.xrevrange(keys.tasks, count=1)[0][0]
        proc = spawn_worker(["m"], "echo", settings, stdout=subprocess.DEVNULL)
        try:
            started = None
            while True:
                group = r.xinfo_groups(keys.tasks)[0]
                delivered = group["last-delivered-id"]
                if started is None and delivered != b"0-0":
                    started = time.perf_counter()
                if delivered == last and r.xpending(keys.tasks, GROUP)["pending"] == 0:
                    break
                time.sleep(0.001)
            took = time.perf_counter() - (started or time.perf_counter())
            settled = r.xlen(keys.dead) if kind != "valid" else r.xlen(keys.findings)
            if settled != n:
                raise RuntimeError(f"{kind}: {settled} of {n} entries settled")
            return took
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        for key in r.scan_iter(match=f"{ns}:*", count=1000):
            r.unlink(key)
        r.close()


async def measure(args: argparse.Namespace, srv: Server) -> dict[str, Any]:
    console = Console()
    console.print(describe(srv))
    samples: dict[str, list[float]] = {"malformed": [], "valid": []}
    for i in range(args.rounds):
        for kind in ("malformed", "valid") if i % 2 == 0 else ("valid", "malformed"):
            seconds = await asyncio.to_thread(one_round, srv, kind, args.entries)
            samples[kind].append(seconds / args.entries * 1e6)
            console.print(f"round {i + 1} {kind}: {seconds / args.entries * 1e6:.1f} µs/entry")
    return {
        "benchmark": "malformed",
        "entries": args.entries,
        "rounds": args.rounds,
        "us_per_entry": {k: summarize(v) for k, v in samples.items()},
        "samples_us": samples,
        "ratio_malformed_to_valid": summarize(samples["malformed"])["median"]
        / summarize(samples["valid"])["median"],
        "machine": machine_info(srv.version),
    }


def show(report: dict[str, Any]) -> None:
    table = Table(title=f"one worker process, {report['entries']:,} entries per round")
    for col in ("entries", "µs/entry median", "min-max"):
        table.add_column(col)
    for kind, s in report["us_per_entry"].items():
        table.add_row(kind, f"{s['median']:.1f}", f"{s['min']:.1f}-{s['max']:.1f}")
    Console().print(table)
    Console().print(f"malformed / valid: {report['ratio_malformed_to_valid']:.2f}x")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--entries", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="CI smoke: 300 entries, 1 round")
    p.add_argument("--redis-url")
    p.add_argument("--json", help="write the report here")
    args = p.parse_args(argv)
    if args.quick:
        args.entries, args.rounds = 300, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    drive(args, lambda srv: measure(args, srv), show, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
