"""CLI start-up and bulk submit: what an agent pays per ``swarmstream`` call.

Each command runs as its own process (the installed ``swarmstream`` script, as an
agent's shell tool runs it) against a real redis-server reached through a small TCP
relay in this process. The relay forwards bytes both ways and stamps the moment the
first bytes of each new connection arrive: the time from just before the process is
spawned to that stamp is the **time to the first Redis command** (the process has
started Python, imported what it needs, parsed its arguments and resolved its
settings). **Total** is spawn to exit. Both clocks are this process's
``time.perf_counter``. Commands are interleaved, round after round, and reported as
median, p90, min-max and IQR. ``--help`` sends no Redis command (total only).

The floor rows show what no CLI code can go below: ``python -c pass`` and the bare
imports of the libraries a command needs (``typer``, ``redis``, ``rich``).

Bulk: one ``submit SPEC --file tasks.jsonl`` of ``--bulk`` lines (10,000) against
``--singles`` separate ``submit SPEC TEXT`` calls (200), in tasks per second of wall
time. A version without ``submit --file`` records the singles only.

    python benchmarks/cli_startup.py                   # 15 rounds, 10,000 + 200 tasks, ~2 min
    python benchmarks/cli_startup.py --quick           # CI smoke
    python benchmarks/cli_startup.py --label after --json benchmarks/results/cli-startup-after.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))
from benchmarks.common import (  # noqa: E402
    SPREAD_COLUMNS,
    redis_server,
    spread_cells,
    summarize,
)
from swarmstream.bench.raw import drop_namespace  # noqa: E402
from swarmstream.bench.raw import machine_info as package_machine_info  # noqa: E402

SPEC = "bench"
#: name -> (arguments after the global options, whether it sends a Redis command)
COMMANDS: dict[str, tuple[list[str], bool]] = {
    "--help": (["--help"], False),
    "submit": (["submit", SPEC, "where do shipments stall?"], True),
    "submit --json": (["submit", SPEC, "where do shipments stall?", "--json"], True),
    "findings --json": (["findings", SPEC, "--json", "--limit", "20"], True),
    "findings": (["findings", SPEC, "--limit", "20"], True),
    "status --json": (["status", "--json"], True),
    "status": (["status"], True),
}
#: what a command cannot go below: the interpreter and its libraries' imports
FLOOR: dict[str, str] = {
    "python -c pass": "pass",
    "import typer": "import typer",
    "import typer._adapters (its pydantic coercion)": "import typer._adapters",
    "import redis": "import redis",
    "import redis.asyncio": "import redis.asyncio",
    "import rich.console": "import rich.console",
    "import swarmstream.cli.app": "import swarmstream.cli.app",
    "import typer._adapters, redis.asyncio": "import typer._adapters, redis.asyncio",
}


class Relay:
    """A TCP relay to ``target`` on its own event loop and thread, stamping the
    arrival of each new connection's first bytes (``perf_counter``)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.first_bytes: list[float] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    def __enter__(self) -> Relay:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        first = await reader.read(1 << 16)
        self.first_bytes.append(time.perf_counter())
        if first:
            up_w.write(first)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await src.read(1 << 16):
                    dst.write(chunk)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    def first_after(self, t0: float) -> float | None:
        """The first connection's first bytes at or after ``t0``."""
        later = [t for t in list(self.first_bytes) if t >= t0]
        return min(later) if later else None


def _env() -> dict[str, str]:
    """This environment without SWARMSTREAM_* (flags give URL and namespace) and
    without PYTHONDONTWRITEBYTECODE: the warm-up run writes the .pyc files an
    installed package has (pip compiles them), instead of compiling every run."""
    drop = ("SWARMSTREAM_", "PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _script() -> str:
    found = Path(sys.executable).parent / "swarmstream"
    return str(found) if found.exists() else shutil.which("swarmstream") or "swarmstream"


def run_once(
    argv: list[str], relay: Relay | None, stdin: Any = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One process: its total wall time and, through ``relay``, the time to its first
    Redis command (ms)."""
    t0 = time.perf_counter()
    env = {**_env(), **(env or {})}
    proc = subprocess.run(
        argv,
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        # 'python -m' puts the working directory first on sys.path: run in the tree
        # being measured, so that its package is the one imported
        cwd=env.get("PYTHONPATH") or None,
    )
    t1 = time.perf_counter()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{argv[1:]} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    first = relay.first_after(t0) if relay else None
    return {
        "total_ms": (t1 - t0) * 1000,
        "to_first_ms": None if first is None else (first - t0) * 1000,
    }


def _seed(url: str, namespace: str, n: int) -> None:
    """Some findings for ``findings`` and ``status`` to show (``n`` echo tasks)."""
    from swarmstream.client import Swarm
    from swarmstream.handlers import resolve
    from swarmstream.models import Task
    from swarmstream.settings import Settings
    from swarmstream.worker import EphemeralWorker

    settings = Settings.from_flat({"url": url, "namespace": namespace})

    async def main() -> None:
        async with Swarm(settings) as swarm:
            await swarm.submit_many([Task(spec=SPEC, text=f"seed {i}") for i in range(n)])
            worker = EphemeralWorker(SPEC, resolve("echo"), settings.with_worker(max_tasks=n))
            await worker.run()

    asyncio.run(main())


def measure_commands(
    url: str, namespace: str, relay: Relay, repeats: int, before: Path | None = None
) -> dict[str, Any]:
    """Every command, round after round. With ``before`` (the source tree of an
    earlier commit), each command also runs from that tree (``python -m
    swarmstream`` with PYTHONPATH on it, same interpreter and libraries), interleaved
    with this tree's, and is reported as ``<command> (before)``."""
    flags = ["--redis-url", url, "--namespace", namespace]
    variants: dict[str, tuple[list[str], dict[str, str]]] = {"": ([_script(), *flags], {})}
    if before is not None:
        here = str(Path(__file__).resolve().parent.parent)
        module = [sys.executable, "-m", "swarmstream", *flags]
        variants = {
            "": (module, {"PYTHONPATH": here}),
            " (before)": (module, {"PYTHONPATH": str(before)}),
        }
    names = [(name + tag, args, tag) for name, (args, _) in COMMANDS.items() for tag in variants]
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in names}
    for _name, args, tag in names:  # one warm-up each (page cache, .pyc)
        base, env = variants[tag]
        run_once(base + args, relay, env=env)
    for _ in range(repeats):
        for name, args, tag in names:
            base, env = variants[tag]
            samples[name].append(run_once(base + args, relay, env=env))
    out: dict[str, Any] = {}
    for name, args, tag in names:
        talks = COMMANDS[name.removesuffix(tag)][1]
        totals = [s["total_ms"] for s in samples[name]]
        firsts = [s["to_first_ms"] for s in samples[name] if s["to_first_ms"] is not None]
        out[name] = {
            "argv": args,
            "total_ms": summarize(totals),
            "to_first_ms": summarize(firsts) if talks and firsts else None,
            "samples": samples[name],
        }
    return out


def measure_floor(repeats: int) -> dict[str, Any]:
    """Each FLOOR import in a fresh interpreter (None where it fails: a module
    that this version of a library does not have)."""
    runnable = {}
    for name, code in FLOOR.items():  # warm-up, and a check
        probe = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env())
        if probe.returncode == 0:
            runnable[name] = code
    samples: dict[str, list[float]] = {name: [] for name in runnable}
    for _ in range(repeats):
        for name, code in runnable.items():
            samples[name].append(run_once([sys.executable, "-c", code], None)["total_ms"])
    return {
        name: {"total_ms": summarize(samples[name]), "samples": samples[name]}
        if name in samples
        else None
        for name in FLOOR
    }


def child_versions() -> dict[str, str]:
    """The versions the measured processes import (PYTHONPATH may change them)."""
    code = (
        "import importlib.metadata as m, json, sys, typer\n"
        "v = {n: m.version(n) for n in ('redis', 'pydantic')}\n"
        "print(json.dumps({'typer': typer.__version__, **v, 'python': sys.version.split()[0]}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True
    )
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


def supports_bulk() -> bool:
    proc = subprocess.run(
        [_script(), "submit", "--help"], capture_output=True, text=True, env=_env(), check=False
    )
    return "--file" in proc.stdout


def measure_bulk(url: str, namespace: str, n: int, repeats: int, tmp: Path) -> dict[str, Any]:
    """One ``submit --file`` of ``n`` lines, ``repeats`` times: tasks per second."""
    path = tmp / "tasks.jsonl"
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"text": f"task {i}", "data": {"i": i}}) + "\n")
    argv = [_script(), "--redis-url", url, "--namespace", namespace, "submit", SPEC]
    walls = []
    for _ in range(repeats):
        walls.append(run_once([*argv, "--file", str(path)], None)["total_ms"] / 1000)
    rates = [n / w for w in walls]
    return {"tasks": n, "wall_s": walls, "tasks_per_s": summarize(rates)}


def measure_singles(url: str, namespace: str, n: int) -> dict[str, Any]:
    """``n`` separate ``submit SPEC TEXT`` calls, one after the other."""
    argv = [_script(), "--redis-url", url, "--namespace", namespace, "submit", SPEC]
    started = time.perf_counter()
    for i in range(n):
        run_once([*argv, f"task {i}"], None)
    wall = time.perf_counter() - started
    return {"tasks": n, "wall_s": wall, "tasks_per_s": n / wall}


@contextlib.contextmanager
def _namespace(url: str, name: str) -> Iterator[str]:
    ns = f"{name}-{os.getpid()}"
    try:
        yield ns
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(_drop(url, ns))


async def _drop(url: str, namespace: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await drop_namespace(client, namespace)
    finally:
        await client.aclose()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=15, help="rounds of every command")
    p.add_argument("--bulk", type=int, default=10_000, help="lines of the bulk submit")
    p.add_argument("--bulk-repeats", type=int, default=3)
    p.add_argument("--singles", type=int, default=200, help="separate submit calls")
    p.add_argument("--quick", action="store_true", help="3 rounds, 1,000 + 10 tasks")
    p.add_argument("--label", default="", help="recorded in the JSON (e.g. before, after)")
    p.add_argument(
        "--before",
        type=Path,
        help="source tree of an earlier commit (e.g. a 'git worktree'): its CLI is measured "
        "side by side, interleaved with this one",
    )
    p.add_argument("--redis-url", help="measure against this server (default: embedded)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.bulk, args.bulk_repeats, args.singles = 3, 1000, 1, 10
    return args


def show(report: dict[str, Any]) -> None:
    """The tables (ms): to the first Redis command, and total, per command."""
    head = ["command", *(f"first {c}" for c in SPREAD_COLUMNS[:-1]), "total median", "total p90"]
    head += ["total min-max", "n"]
    rows = [" | ".join(head), " | ".join("---" for _ in head)]
    floor = [(name, r) for name, r in report["floor"].items() if r is not None]
    for name, r in [*report["commands"].items(), *floor]:
        first = r.get("to_first_ms")
        cells = spread_cells(first)[:-1] if first else ["-"] * (len(SPREAD_COLUMNS) - 1)
        total = spread_cells(r["total_ms"])
        rows.append(" | ".join([name, *cells, total[0], total[1], total[2], total[4]]))
    print("\n".join(rows))
    bulk, singles = report["bulk"], report["singles"]
    if bulk:
        print(
            f"bulk: {bulk['tasks']:,} tasks in one 'submit --file': "
            f"{bulk['tasks_per_s']['median']:,.0f} tasks/s (median of {bulk['tasks_per_s']['n']})"
        )
    print(
        f"singles: {singles['tasks']} 'submit SPEC TEXT' calls in {singles['wall_s']:.1f} s: "
        f"{singles['tasks_per_s']:.1f} tasks/s"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="swarmstream-cli-") as tmp,
        redis_server(args.redis_url) as srv,
        _namespace(srv.url, "cli") as ns,
    ):
        host, _, port = srv.url.split("//", 1)[1].split("/", 1)[0].rpartition(":")
        with Relay(host or "127.0.0.1", int(port)) as relay:
            url = f"redis://127.0.0.1:{relay.port}/0"
            _seed(srv.url, ns, 50)
            commands = measure_commands(url, ns, relay, args.repeats, args.before)
        floor = measure_floor(args.repeats)
        bulk = (
            measure_bulk(srv.url, ns, args.bulk, args.bulk_repeats, Path(tmp))
            if supports_bulk()
            else None
        )
        singles = measure_singles(srv.url, ns, args.singles)
        version = srv.version
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "label": args.label,
        "method": "spawn -> first bytes at a TCP relay in front of redis-server; "
        "total = spawn -> exit; perf_counter of the benchmark process",
        "machine": package_machine_info(version)
        | {
            "load_avg_1m_before": round(load_before, 2),
            "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "cli_imports": child_versions(),
            "pythonpath": os.environ.get("PYTHONPATH", ""),
        },
        "config": {
            "repeats": args.repeats,
            "bulk": args.bulk,
            "bulk_repeats": args.bulk_repeats,
            "singles": args.singles,
            "quick": args.quick,
            "script": _script(),
        },
        "commands": commands,
        "floor": floor,
        "bulk": bulk,
        "singles": singles,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    show(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
