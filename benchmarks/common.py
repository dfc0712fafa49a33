"""Shared by the benchmark scripts: the Redis server a run measures against."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import redis
from rich.console import Console

from swarmstream.bench.raw import machine_info as package_machine_info
from swarmstream.embedded import EmbeddedRedis, free_port


@dataclass(frozen=True)
class Server:
    """The server of one run: ``pid`` is set for an embedded one (for its CPU time)."""

    url: str
    tmp: Path
    pid: int | None
    embedded: bool
    version: str


@contextlib.contextmanager
def redis_server(url: str | None, prefix: str = "swarmstream-bench-") -> Iterator[Server]:
    """Use ``url``, or start an embedded redis-server (no persistence) on a free port
    in a temporary folder, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = None
        try:
            if url is None:
                server = EmbeddedRedis(dir=Path(tmp) / "redis", port=free_port(), appendonly=False)
                url = server.start()
            client = redis.Redis.from_url(url)
            try:
                version = str(client.info("server").get("redis_version"))
            finally:
                client.close()
            pid = server.process.pid if server and server.process else None
            yield Server(url, Path(tmp), pid, server is not None, version)
        finally:
            if server is not None:
                server.stop()


def summarize(values: list[float]) -> dict[str, float]:
    """Median, p90, quartiles, min and max (same unit as the input)."""
    xs = sorted(values)
    if len(xs) >= 2:
        q = statistics.quantiles(xs, n=20, method="inclusive")  # 5 % steps
        q1, q3, p90 = q[4], q[14], q[17]
    else:
        q1 = q3 = p90 = xs[0]
    return {
        "median": statistics.median(xs),
        "p90": p90,
        "q1": q1,
        "q3": q3,
        "min": xs[0],
        "max": xs[-1],
        "n": len(xs),
    }


#: the columns ``spread_cells`` fills, after a measurement's label
SPREAD_COLUMNS = ("median", "p90", "min-max", "IQR", "n")


def spread_cells(s: dict[str, float]) -> list[str]:
    """A ``summarize`` result as table cells (ms, one decimal), in SPREAD_COLUMNS order."""
    return [
        f"{s['median']:.1f}",
        f"{s['p90']:.1f}",
        f"{s['min']:.1f}-{s['max']:.1f}",
        f"{s['q1']:.1f}-{s['q3']:.1f}",
        str(int(s["n"])),
    ]


def machine_info(redis_version: str) -> dict[str, Any]:
    """Machine, versions and git state, recorded with every result."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    git: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        root = Path(__file__).resolve().parent.parent
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "swarmstream"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        git = {"commit": head, "swarmstream_dirty": bool(dirty)}
    # the package's own record (what `swarmstream bench --json` writes), plus more
    return package_machine_info(redis_version) | {
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "python_impl": platform.python_implementation(),
        "hiredis_in_use": bool(redis.utils.HIREDIS_AVAILABLE),
        "msgpack": ".".join(map(str, msgpack.version)),
        "git": git,
    }


def interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so servers stop and keys are deleted."""
    raise KeyboardInterrupt


def describe(srv: Server, detail: str = "") -> str:
    """The line a script prints about the server it measures on."""
    where = "embedded" if srv.embedded else "external"
    return f"redis {srv.version} at {srv.url} ({where}); {detail}cpus {os.cpu_count()}"


def drive(
    args: argparse.Namespace,
    measure: Callable[[Server], Awaitable[dict[str, Any]]],
    show: Callable[[dict[str, Any]], None],
    console: Console,
) -> dict[str, Any]:
    """The body of a benchmark script's ``main``: SIGTERM unwinds like Ctrl-C (children
    stopped, keys deleted); ``measure`` runs on the ``--redis-url`` server or an
    embedded one; the report gets its wall time, is shown, and is written to ``--json``."""
    signal.signal(signal.SIGTERM, interrupt)
    started = time.perf_counter()

    async def on_server() -> dict[str, Any]:
        with redis_server(args.redis_url) as srv:
            return await measure(srv)

    report = asyncio.run(on_server())
    report["wall_s"] = round(time.perf_counter() - started, 2)
    show(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        console.print(f"wrote {args.json}")
    return report
