"""Latency of ``swarmstream bridge jsonl`` next to the seed's JSON-lines bus.

Configurations (every responder, bridge and worker runs in its own process):

* ``seed bus, 10 ms``: the seed's debug bus as ``latency.py`` reproduces it: a
  responder process polls the file every 10 ms and answers each request line by
  appending a response line.
* ``bridge, ...``: ``swarmstream bridge jsonl BUS --spec bench`` plus one
  ``swarmstream worker bench`` (handler echo, concurrency 8): as it runs by default
  (inotify wakes it, a 10 ms poll is the fallback), and polling only
  (``--no-inotify``) at 10 ms (the seed's interval) and at 1 ms.

Measured per request, sequentially (one in flight), from just before the query line
is appended:

* line -> task (bridge only): until the task entry is in the spec's stream. The
  measuring process waits with XREAD BLOCK on the stream, so this is exact.
* line -> response: until the response line is in the file. The measuring process
  reads the file every ``--instrument-poll`` (0.5 ms) for every configuration: that
  is the instrument, not part of what is measured (an agent reading the file at
  10 ms would add its own delay to either side equally).

Each request is preceded by an untimed random pause of up to the configuration's
poll interval, so that the requester does not phase-lock with a poll loop (see
``latency.py``). Rounds of all configurations are interleaved.

    python benchmarks/bridge_latency.py             # ~1 min
    python benchmarks/bridge_latency.py --quick     # CI smoke, a few seconds
    python benchmarks/bridge_latency.py --json benchmarks/results/bridge-latency.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import redis
from rich.console import Console
from rich.table import Table

from swarmstream.keys import Keys
from swarmstream.settings import Settings
from swarmstream.worker.process import spawn_worker, worker_env

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))
from benchmarks.common import describe, interrupt, machine_info, redis_server  # noqa: E402
from benchmarks.latency import JsonlReader, jsonl_append, wait_client  # noqa: E402
from benchmarks.throughput import stop_process  # noqa: E402

SPEC = "bench"
RESPONDER = "responder"
TIMEOUT = 30.0
console = Console() if sys.stdout.isatty() else Console(width=150)


class Watcher:
    """The instrument: reads the bus file from its last offset every ``poll`` seconds
    until a message matching ``match`` is there; returns when it saw it."""

    def __init__(self, path: Path, poll: float) -> None:
        self.reader = JsonlReader(path)
        self.poll = poll

    def wait(self, match: Callable[[dict[str, Any]], bool]) -> float:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for msg in self.reader.poll():
                if match(msg):
                    return time.perf_counter()
            if time.monotonic() > deadline:
                raise RuntimeError(f"no response line in {TIMEOUT:g}s ({self.reader.path})")
            time.sleep(self.poll)


@dataclass
class Config:
    key: str
    label: str
    poll: float  # of the thing measured (untimed think time up to this)
    request: Callable[[], dict[str, float]]  # one request: seconds per measure
    samples: dict[str, list[float]] = field(default_factory=dict)


class SeedBus:
    """Requests to the seed's bus responder (``latency.py``'s request/response lines)."""

    def __init__(self, path: Path, instrument: float) -> None:
        self.path = path
        self.watch = Watcher(path, instrument)
        self.seq = 0

    def request(self) -> dict[str, float]:
        self.seq += 1
        rid = f"requester-{self.seq}"
        t0 = time.perf_counter()
        jsonl_append(
            self.path,
            {"kind": "request", "id": rid, "from": "requester", "to": RESPONDER, "body": rid},
        )
        t1 = self.watch.wait(lambda m: m.get("kind") == "response" and m.get("re") == rid)
        return {"line_to_response": t1 - t0}


class BridgeBus:
    """Query lines to a bridge: timed to the task entry and to the response line."""

    def __init__(self, path: Path, url: str, namespace: str, instrument: float) -> None:
        self.path = path
        self.watch = Watcher(path, instrument)
        self.client: Any = redis.Redis.from_url(url)
        self.stream = Keys(namespace).spec(SPEC).tasks
        self.cursor = "0-0"  # a new namespace: every entry of the stream is ours
        self.seq = 0
        self.tag = uuid.uuid4().hex[:6]

    def request(self) -> dict[str, float]:
        self.seq += 1
        text = f"question {self.tag}-{self.seq}"
        query = {"type": "query", "from": "bench", "to": SPEC, "question": text}
        t0 = time.perf_counter()
        jsonl_append(self.path, {**query, "context_file": None, "timestamp": time.time()})
        t1 = self._task(text)
        t2 = self.watch.wait(lambda m: m.get("type") == "response" and m.get("answer") == text)
        return {"line_to_task": t1 - t0, "line_to_response": t2 - t0}

    def _task(self, text: str) -> float:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            reply = self.client.xread({self.stream: self.cursor}, count=100, block=1000)
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    self.cursor = entry_id
                    if msgpack.unpackb(fields[b"body"], raw=False).get("text") == text:
                        return time.perf_counter()
        raise RuntimeError(f"no task entry in {TIMEOUT:g}s")

    def close(self) -> None:
        self.client.close()


class Harness:
    def __init__(self, url: str, tmp: Path, args: argparse.Namespace) -> None:
        self.url, self.tmp, self.args = url, tmp, args
        self.run_id = uuid.uuid4().hex[:8]
        self.admin: Any = redis.Redis.from_url(url)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.namespaces: list[str] = []
        self.configs: list[Config] = []
        self.closers: list[Callable[[], None]] = []

    def popen(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Any:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True, env=env)
        self.procs.append(proc)
        return proc

    def add_seed(self) -> None:
        bus = self.tmp / "seed.jsonl"
        bus.touch()
        argv = [sys.executable, str(HERE.parent / "latency.py"), "_jsonl_responder"]
        self.popen([*argv, str(bus), "0.01", RESPONDER], self.tmp / "seed.log")
        r = SeedBus(bus, self.args.instrument_poll)
        self.configs.append(Config("seed_10ms", "seed bus, 10 ms poll", 0.01, r.request))

    def add_bridge(self, poll: float, inotify: bool) -> None:
        ms = round(poll * 1000)
        key = f"bridge_{'inotify' if inotify else 'poll'}_{ms}ms"
        ns = f"bench-{self.run_id}-{key}"
        self.namespaces.append(ns)
        settings = Settings.from_flat({"url": self.url, "namespace": ns, "concurrency": 8})
        bus = self.tmp / key / "bus.jsonl"  # a folder each: inotify watches the folder
        bus.parent.mkdir()
        bus.touch()
        name = f"lat-{key}".replace("_", "-")
        with (self.tmp / f"{key}-worker.log").open("wb") as out:
            worker = spawn_worker([SPEC], "echo", settings, name=name, stdout=out, stderr=out)
        self.procs.append(worker)
        wait_client(self.admin, f"swarmstream:{name}", "xreadgroup", worker)
        argv = [sys.executable, "-m", "swarmstream", "bridge", "jsonl", str(bus)]
        argv += ["--spec", SPEC, "--poll", str(poll), "--name", name]
        argv += [] if inotify else ["--no-inotify"]
        self.popen(argv, self.tmp / f"{key}.log", env=worker_env(settings))
        r = BridgeBus(bus, self.url, ns, self.args.instrument_poll)
        self.closers.append(r.close)
        how = f"inotify + {ms} ms poll" if inotify else f"{ms} ms poll only"
        self.configs.append(Config(key, f"bridge, {how}", poll, r.request))

    def cleanup(self) -> None:
        for close in self.closers:
            close()
        for proc in self.procs:
            stop_process(proc)
        for ns in self.namespaces:  # our own keys only; never FLUSHALL
            keys = list(self.admin.scan_iter(match=f"{ns}:*", count=1000))
            for i in range(0, len(keys), 1000):
                self.admin.unlink(*keys[i : i + 1000])
        self.admin.close()


def run(h: Harness) -> None:
    a = h.args
    h.add_seed()
    h.add_bridge(0.01, inotify=False)
    h.add_bridge(0.001, inotify=False)
    h.add_bridge(0.01, inotify=True)  # the default
    for c in h.configs:  # untimed warm-up (also proves every responder answers)
        for _ in range(5):
            c.request()
    rng = random.Random(1)
    for rnd in range(a.rounds):
        for c in h.configs if rnd % 2 == 0 else h.configs[::-1]:
            for _ in range(a.n):
                time.sleep(rng.uniform(0, c.poll))  # de-phase from the poll loop
                for measure, seconds in c.request().items():
                    c.samples.setdefault(measure, []).append(seconds)
            got = {m: statistics.median(v[-a.n :]) * 1e3 for m, v in c.samples.items()}
            shown = "  ".join(f"{m} {x:7.2f} ms" for m, x in got.items())
            console.print(f"  round {rnd + 1}/{a.rounds} {c.label:<32} {shown}", highlight=False)


def summarize(h: Harness) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in h.configs:
        entry: dict[str, Any] = {"label": c.label, "poll_ms": c.poll * 1e3}
        for measure, values in c.samples.items():
            ms = sorted(x * 1e3 for x in values)
            entry[measure] = {
                "n": len(ms),
                "median_ms": statistics.median(ms),
                "min_ms": ms[0],
                "max_ms": ms[-1],
                "p90_ms": ms[int(0.9 * (len(ms) - 1))],
            }
        out[c.key] = entry
    return out


def print_table(results: dict[str, Any]) -> None:
    table = Table(title="query line -> task entry, and -> response line (one in flight)")
    for col in ("configuration", "measure", "n", "median ms", "p90 ms", "min-max ms"):
        table.add_column(col, justify="left" if col in ("configuration", "measure") else "right")
    for e in results.values():
        for measure in ("line_to_task", "line_to_response"):
            if measure in e:
                m = e[measure]
                table.add_row(
                    e["label"],
                    measure.replace("_", " "),
                    str(m["n"]),
                    f"{m['median_ms']:.2f}",
                    f"{m['p90_ms']:.2f}",
                    f"{m['min_ms']:.2f}-{m['max_ms']:.2f}",
                )
    console.print(table)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--n", type=int, default=100, help="requests per configuration and round")
    p.add_argument(
        "--instrument-poll",
        type=float,
        default=0.0005,
        metavar="SECONDS",
        help="how often the measuring process reads the file for the response line",
    )
    p.add_argument(
        "--redis-url",
        help="use this server instead of starting one (keys are namespaced and deleted "
        "afterwards; nothing is flushed)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="tiny sizes (~5 s)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.n = 1, 10
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, interrupt)  # clean up children and keys on SIGTERM too
    started = time.perf_counter()
    with redis_server(args.redis_url, prefix="swarmstream-bridge-latency-") as srv:
        h = Harness(srv.url, srv.tmp, args)
        console.print(describe(srv, f"{args.rounds} rounds of {args.n}; "), highlight=False)
        try:
            run(h)
        finally:
            h.cleanup()
        results = summarize(h)
        redis_version = srv.version
    print_table(results)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(redis_version),
        "config": {
            "rounds": args.rounds,
            "n": args.n,
            "instrument_poll_ms": args.instrument_poll * 1e3,
            "think_time": "uniform(0, poll interval), untimed, before each request",
            "worker": "swarmstream worker bench, handler echo, concurrency 8",
            "redis": "external" if args.redis_url else "embedded (appendonly no, save '')",
            "quick": args.quick,
        },
        "results": results,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
