"""Cost of a worker borrowing a shard's 3.2 MB (~800K tokens) context, against a raw
redis-py asyncio GET of the same bytes.

Measured side by side, in one run, on one Redis server and one client (redis.asyncio,
hiredis, ``decode_responses=False``):

* ``raw GET``: ``await client.get(key)`` of a string key holding the context bytes.
* ``cold borrow``: a fresh ``ContextCache`` each time, ``await cache.borrow(shard)``:
  HGET of the version, then blob + manifest in one MULTI, then the manifest unpacked.
* ``cold borrow + .text``: the same, plus ``ctx.text`` (the UTF-8 decode a handler
  pays when it reads the text).
* ``warm borrow``: one cache that already holds the version: one HGET.

The context is a deterministic ASCII corpus of several documents, loaded with
``MemoryShard.load_documents``. Every operation is repeated N times, interleaved (in a
seeded random order each round), after untimed warm-ups. The second table splits a cold
borrow into its parts, each timed on its own in the same rounds. Every key lives in a
fresh namespace that is deleted at the end; nothing is flushed.

    python benchmarks/context_borrow.py                 # 3.2 MB x 50 repeats
    python benchmarks/context_borrow.py --quick         # CI smoke, a couple of seconds
    python benchmarks/context_borrow.py --json out.json --mb 10 --repeat 100
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import random
import resource
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from swarmstream.bench.raw import drop_namespace
from swarmstream.client import Swarm
from swarmstream.context import Manifest, build
from swarmstream.settings import Settings
from swarmstream.shard.borrow import ContextCache
from swarmstream.shard.shard import MemoryShard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Server, drive, machine_info, summarize

SHARD = "bench"
SPEC = "bench"
DOCUMENTS = 8
TARGET_RATIO = 1.3  # issue target: cold borrow <= 1.3x raw GET
WARMUP = 5
console = Console() if sys.stdout.isatty() else Console(width=150)

#: the main comparison, in the order of the table
MAIN = ("raw", "cold", "cold_text", "warm")
LABELS = {
    "raw": "raw GET (redis-py)",
    "cold": "cold borrow",
    "cold_text": "cold borrow + .text",
    "warm": "warm borrow",
    "hget": "HGET version",
    "multi": "MULTI GET blob + GET manifest",
    "pipe": "pipeline GET blob + GET manifest (no MULTI)",
    "fetch": "ShardStore.fetch_context",
    "unpack": "Manifest.from_bytes",
    "decode": "blob.decode('utf-8')",
}
#: the parts of a cold borrow (diagnostics)
PARTS = ("hget", "multi", "pipe", "fetch", "unpack", "decode")

# -- the corpus ----------------------------------------------------------------

_VOCABULARY = (
    "shard context worker stream redis borrow version manifest task finding swarm "
    "the a of to and in is for that with as on by this be are from it at an or "
    "memory passage citation document token handler cache async await return value "
    "def class import self none true false if else for while try except raise yield"
)
_WORDS = _VOCABULARY.split()


def corpus(total_bytes: int, documents: int = DOCUMENTS, seed: int = 42) -> list[tuple[str, str]]:
    """``documents`` deterministic ASCII documents of ~equal size, ``total_bytes`` in all
    (every document ends with a newline, so the blob is exactly that long)."""
    rng = random.Random(seed)
    docs: list[tuple[str, str]] = []
    base = total_bytes // documents
    for d in range(documents):
        size = base + (total_bytes - base * documents if d == documents - 1 else 0)
        lines: list[str] = []
        left = size
        while left > 0:
            indent = " " * (4 * rng.randrange(3)) if d % 2 else ""
            line = indent + " ".join(rng.choices(_WORDS, k=rng.randrange(4, 16)))
            line = line[: max(0, left - 1)]
            lines.append(line + "\n")
            left -= len(line) + 1
        kind = "src/module" if d % 2 else "docs/chapter"
        docs.append((f"{kind}_{d:02d}.{'py' if d % 2 else 'md'}", "".join(lines)))
    return docs


# -- statistics ----------------------------------------------------------------


# -- the measurements ------------------------------------------------------------

Op = Callable[[], Awaitable[object]]


@dataclass
class Samples:
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    faults: list[float] = field(default_factory=list)


async def time_op(op: Op, samples: Samples) -> None:
    """One timed call: wall time, process CPU time and minor page faults around the
    await only (the result is freed after the clock stops, for every operation alike)."""
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    c0, t0 = time.process_time(), time.perf_counter()
    result = await op()
    t1, c1 = time.perf_counter(), time.process_time()
    f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del result
    samples.wall_ms.append((t1 - t0) * 1e3)
    samples.cpu_ms.append((c1 - c0) * 1e3)
    samples.faults.append(float(f1 - f0))


async def run_interleaved(ops: dict[str, Op], repeat: int, seed: int = 7) -> dict[str, Samples]:
    """Warm each op up, then ``repeat`` rounds of all ops in a fresh (seeded) random order
    each round: no op always runs first, nor always after the same neighbour (which
    matters: what the previous op freed decides whether malloc hands out warm memory
    or fresh pages that fault in)."""
    names = list(ops)
    for _ in range(WARMUP):
        for name in names:
            await ops[name]()
    out = {name: Samples() for name in names}
    rng = random.Random(seed)
    for _ in range(repeat):
        order = names[:]
        rng.shuffle(order)
        for name in order:
            await time_op(ops[name], out[name])
    return out


@dataclass
class Fixture:
    """A loaded shard plus a raw key holding the same bytes, in one fresh namespace."""

    client: Redis
    shard: MemoryShard
    raw_key: str
    blob: bytes
    manifest: Manifest
    warm: ContextCache


def main_ops(fx: Fixture) -> dict[str, Op]:
    client: Any = fx.client  # replies are bytes
    store, shard_id = fx.shard.store, fx.shard.id

    async def raw() -> object:
        return await client.get(fx.raw_key)

    async def cold() -> object:
        return await ContextCache(store).borrow(shard_id)

    async def cold_text() -> object:
        ctx = await ContextCache(store).borrow(shard_id)
        assert ctx is not None
        return ctx.text

    async def warm() -> object:
        return await fx.warm.borrow(shard_id)

    return {"raw": raw, "cold": cold, "cold_text": cold_text, "warm": warm}


def part_ops(fx: Fixture, version: int) -> dict[str, Op]:
    """The steps of a cold borrow, each on its own, plus alternatives."""
    client: Any = fx.client
    k = fx.shard.store.keys.shard(fx.shard.id)
    raw_manifest = fx.manifest.to_bytes()

    async def hget() -> object:
        return await client.hget(k.meta, "version")

    async def gets(transaction: bool) -> object:
        async with client.pipeline(transaction=transaction) as pipe:
            pipe.get(k.context(version))
            pipe.get(k.manifest(version))
            return await pipe.execute()

    async def multi() -> object:
        return await gets(True)

    async def pipe() -> object:
        return await gets(False)

    async def fetch() -> object:
        return await fx.shard.store.fetch_context(fx.shard.id, version)

    async def unpack() -> object:
        return Manifest.from_bytes(raw_manifest)

    async def decode() -> object:
        return fx.blob.decode("utf-8")

    ops: dict[str, Op] = {"hget": hget, "multi": multi, "pipe": pipe, "fetch": fetch}
    return ops | {"unpack": unpack, "decode": decode}


async def setup(client: Redis, url: str, ns: str, total_bytes: int) -> Fixture:
    settings = Settings.from_flat({"url": url, "namespace": ns})
    swarm = Swarm(settings, client=client)  # shares the client: same connection settings
    await swarm.check()
    shard = MemoryShard(swarm, SHARD, SPEC)
    docs = corpus(total_bytes)
    manifest = await shard.load_documents(docs)
    blob, _ = build(docs)
    raw = blob.encode("utf-8")
    raw_key = f"{ns}:raw:ctx"
    await client.set(raw_key, raw)
    warm = ContextCache(shard.store)
    ctx = await warm.borrow(shard.id)
    if ctx is None or ctx.blob != raw or await client.get(raw_key) != raw:
        raise RuntimeError("the borrowed context and the raw key do not hold the same bytes")
    return Fixture(client, shard, raw_key, raw, manifest, warm)


# -- report --------------------------------------------------------------------


def entry(name: str, s: Samples) -> dict[str, Any]:
    return {
        "label": LABELS[name],
        "ms": summarize(s.wall_ms),
        "cpu_ms": summarize(s.cpu_ms),
        "page_faults": summarize(s.faults),
        "samples_ms": [round(x, 4) for x in s.wall_ms],
        "samples_page_faults": [int(x) for x in s.faults],
    }


def add_rows(table: Table, results: dict[str, Any], names: tuple[str, ...], raw: float) -> None:
    for name in names:
        e = results[name]
        s, c, f = e["ms"], e["cpu_ms"], e["page_faults"]
        table.add_row(
            e["label"],
            f"{s['median']:.3f}",
            f"{s['p90']:.3f}",
            f"{s['min']:.3f}-{s['max']:.3f}",
            f"{s['q1']:.3f}-{s['q3']:.3f}",
            f"{c['median']:.3f}",
            f"{f['median']:.0f} ({f['min']:.0f}-{f['max']:.0f})",
            f"{s['median'] / raw:.2f}",
        )


def new_table(title: str) -> Table:
    table = Table(title=title)
    cols = ("operation", "median", "p90", "min-max", "IQR", "client CPU", "page faults", "x raw")
    for col in cols:
        table.add_column(col, justify="left" if col == "operation" else "right")
    return table


def print_report(report: dict[str, Any]) -> None:
    res = report["results"]
    raw = res["raw"]["ms"]["median"]
    cfg = report["config"]
    size = f"{cfg['bytes'] / 1e6:.2f} MB, ~{cfg['tokens']:,} tokens, {cfg['documents']} documents"
    table = new_table(f"borrow a {size}: ms per call, {cfg['repeat']} repeats")
    add_rows(table, res, MAIN, raw)
    console.print(table)
    parts = new_table("where a cold borrow's time goes (each part timed on its own)")
    add_rows(parts, res, PARTS, raw)
    console.print(parts)
    r = report["ratios"]
    verdict = "[green]meets[/]" if r["cold"] <= TARGET_RATIO else "[red]misses[/]"
    console.print(
        f"cold/raw [bold]{r['cold']:.2f}[/] ({verdict} the <= {TARGET_RATIO}x target), "
        f"cold+.text/raw {r['cold_text']:.2f}, warm/raw {r['warm']:.3f} (medians, same run)"
    )


# -- driver --------------------------------------------------------------------


async def run_all(args: argparse.Namespace, url: str, redis_version: str) -> dict[str, Any]:
    ns = f"bench-{uuid.uuid4().hex[:8]}-ctx"
    total = round(args.mb * 1e6)
    client = Redis.from_url(url, decode_responses=False)
    try:
        fx = await setup(client, url, ns, total)
        version = await fx.shard.store.context_version(fx.shard.id)
        assert version is not None
        console.print(
            f"redis {redis_version} at {url}; context {total:,} bytes "
            f"(~{fx.manifest.tokens:,} tokens, {len(fx.manifest.documents)} documents), "
            f"{args.repeat} repeats; cpus {os.cpu_count()}",
            highlight=False,
        )
        samples = await run_interleaved(main_ops(fx) | part_ops(fx, version), args.repeat)
    finally:
        with contextlib.suppress(Exception):
            await drop_namespace(client, ns)
        await client.aclose()
    results = {name: entry(name, s) for name, s in samples.items()}
    raw = results["raw"]["ms"]["median"]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(redis_version),
        "config": {
            "bytes": total,
            "tokens": fx.manifest.tokens,
            "documents": len(fx.manifest.documents),
            "repeat": args.repeat,
            "warmup": WARMUP,
            "redis": "external" if args.redis_url else "embedded (appendonly no, save '')",
            "quick": args.quick,
            "target_cold_over_raw": TARGET_RATIO,
        },
        "results": results,
        "ratios": {n: results[n]["ms"]["median"] / raw for n in MAIN if n != "raw"},
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeat", type=int, default=50, help="timed calls per operation")
    p.add_argument("--mb", type=float, default=3.2, help="context size in MB (10^6 bytes)")
    p.add_argument(
        "--redis-url",
        help="use this server instead of starting one (keys are "
        "namespaced and deleted afterwards; nothing is flushed)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="small sizes for a CI smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.repeat = min(args.repeat, 10)
        if args.mb == p.get_default("mb"):
            args.mb = 0.5
    if args.repeat < 1 or args.mb <= 0:
        p.error("--repeat must be at least 1 and --mb positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    async def measure(srv: Server) -> dict[str, Any]:
        return await run_all(args, srv.url, srv.version)

    drive(args, measure, print_report, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
