"""Request-to-response latency (p50/p99) and throughput, side by side in one run.

Configurations (every responder runs in its own process):

* ``jsonl 1s`` / ``jsonl 10ms``: the seed's JSON-lines debug bus, reproduced. One
  file; every message is appended as one JSON object per line (open in append mode,
  write, flush, close). The responder polls the file at a fixed interval (1 s as in
  the seed, 10 ms tuned), reading from the last offset it saw, and answers each
  request addressed to it by appending ``{"to": <requester>, "re": <request id>}``.
  The requester polls the same file at the same interval and matches responses by
  recipient and id.
* ``raw streams``: redis-py + hiredis + msgpack. XADD request; the responder does
  XREADGROUP BLOCK, XADD response, XACK; the requester XREAD BLOCKs on the response
  stream.
* ``raw lists``: LPUSH / BRPOP both ways.
* ``raw pub/sub``: PUBLISH / SUBSCRIBE both ways.
* ``swarmstream``: one worker process (``spawn_worker([...], "echo", settings)``,
  concurrency 8); the requester does ``await swarm.submit(...)`` then
  ``await swarm.wait(task)``.

Latency: sequential requests (one in flight), timed from just before the request is
sent to the moment the requester has the matching response. Throughput: a burst of N
requests sent back to back (one command or one append each), timed until every
response has been seen. On the bus, each sequential request is preceded by an
untimed random pause of up to one poll interval: back to back, the requester's and
the responder's poll loops phase-lock, and a round then measures either one interval
or two for every request, depending only on where the phases happened to settle.
The Redis and swarmstream requesters are event-driven and send back to back.
Rounds of all configurations are interleaved; the ratios come from the same run.

Where the time goes: around each round's sequential requests, the run samples the CPU
time of the requester's and the responder's main threads (/proc/<pid>/schedstat),
Redis's CPU (INFO cpu) and Redis's time per command (INFO commandstats), and reports
each per request (medians of rounds).

    python benchmarks/latency.py                  # full run (~1 min, most of it the 1 s bus)
    python benchmarks/latency.py --quick          # CI smoke, a few seconds, 10 ms bus only
    python benchmarks/latency.py --json benchmarks/results/latency.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
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

from swarmstream.client import Swarm
from swarmstream.codec import text as codec_text
from swarmstream.models import Task
from swarmstream.settings import Settings
from swarmstream.worker.process import spawn_worker

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))
from benchmarks.common import describe, interrupt, machine_info, redis_server  # noqa: E402
from benchmarks.throughput import stop_process  # noqa: E402

SPEC = "bench"
GROUP = "responders"
BLOCK_MS = 1000
TIMEOUT = 60.0
RESPONDER = "responder"
REQUESTER = "requester"
console = Console() if sys.stdout.isatty() else Console(width=150)


# -- JSON-lines bus (the seed's debug bus, reproduced) ------------------------


def jsonl_append(path: Path, message: dict[str, Any]) -> None:
    """One message = one line: open in append mode, write, flush (as the seed did)."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(message) + "\n")
        f.flush()


class JsonlReader:
    """Re-reads the bus file from the last offset seen; yields complete lines only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def poll(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return [json.loads(line) for line in data[: end + 1].splitlines() if line.strip()]


def jsonl_responder(path: str, poll: float, name: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bus, reader = Path(path), JsonlReader(Path(path))
    while True:
        time.sleep(poll)
        for msg in reader.poll():
            if msg.get("kind") == "request" and msg.get("to") == name:
                jsonl_append(
                    bus,
                    {
                        "kind": "response",
                        "from": name,
                        "to": msg["from"],
                        "re": msg["id"],
                        "body": msg["body"],
                        "ts": time.time(),
                    },
                )


class JsonlRequester:
    def __init__(self, path: Path, poll: float) -> None:
        self.path, self.poll = path, poll
        self.reader = JsonlReader(path)
        self.seq = 0

    def send(self) -> str:
        self.seq += 1
        rid = f"{REQUESTER}-{self.seq}"
        msg = {"kind": "request", "id": rid, "from": REQUESTER, "to": RESPONDER}
        jsonl_append(self.path, {**msg, "body": f"task {self.seq}", "ts": time.time()})
        return rid

    def collect(self, wanted: set[str]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"jsonl: {len(wanted)} responses missing")
            time.sleep(self.poll)
            for msg in self.reader.poll():
                if msg.get("to") == REQUESTER and msg.get("re") in wanted:
                    wanted.discard(msg["re"])


# -- raw Redis references (redis-py + hiredis + msgpack) -----------------------


def request(prefix: str, seq: int) -> tuple[str, bytes]:
    """A raw request: its id and its msgpack body."""
    rid = f"{prefix}-{seq}"
    return rid, bytes(msgpack.packb({"id": rid, "body": f"task {seq}", "ts": time.time()}))


def answer(raw: bytes) -> bytes:
    """A raw responder's reply to the request body ``raw``."""
    msg = msgpack.unpackb(raw, raw=False)
    return bytes(msgpack.packb({"re": msg["id"], "body": msg["body"], "ts": time.time()}))


def answered(raw: bytes) -> str:
    """The request id a raw reply body answers."""
    return str(msgpack.unpackb(raw, raw=False)["re"])


def open_streams(client: Any, req: str, resp: str) -> str:
    """Make the request stream's group and a first reply entry; the id to XREAD
    replies from."""
    client.xgroup_create(req, GROUP, id="$", mkstream=True)
    client.xadd(resp, {"body": b""})  # so XREAD has a real id to start from
    return codec_text(client.xinfo_stream(resp)["last-generated-id"])


def raw_responder(kind: str, url: str, req: str, resp: str, name: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    client: Any = redis.Redis.from_url(url, client_name=name)
    if kind == "streams":
        while True:
            reply = client.xreadgroup(GROUP, name, {req: ">"}, count=100, block=BLOCK_MS)
            for _key, entries in reply or ():
                pipe = client.pipeline(transaction=False)
                for _id, fields in entries:
                    pipe.xadd(resp, {"body": answer(fields[b"body"])})
                pipe.xack(req, GROUP, *[e[0] for e in entries])
                pipe.execute()
    elif kind == "lists":
        while True:
            item = client.brpop([req], timeout=1)
            if item:
                client.lpush(resp, answer(item[1]))
    elif kind == "pubsub":
        ps = client.pubsub(ignore_subscribe_messages=True)
        ps.subscribe(req)
        while True:
            m = ps.get_message(timeout=1.0)
            if m is not None:
                client.publish(resp, answer(m["data"]))
    else:
        raise SystemExit(f"unknown kind {kind}")


class RawRequester:
    def __init__(self, kind: str, url: str, req: str, resp: str) -> None:
        self.kind, self.req, self.resp = kind, req, resp
        client: Any = redis.Redis.from_url(url, client_name=f"{REQUESTER}-{kind}")
        self.client: Any = client
        self.seq = 0
        self.cursor = "$"
        self.ps: Any = None
        if kind == "streams":
            self.cursor = open_streams(self.client, req, resp)
        if kind == "pubsub":
            self.ps = client.pubsub(ignore_subscribe_messages=True)
            self.ps.subscribe(resp)
            while self.ps.get_message(timeout=0.1) is not None:  # the subscribe reply
                pass

    def send(self) -> str:
        self.seq += 1
        rid, body = request(REQUESTER, self.seq)
        if self.kind == "streams":
            self.client.xadd(self.req, {"body": body})
        elif self.kind == "lists":
            self.client.lpush(self.req, body)
        else:
            self.client.publish(self.req, body)
        return rid

    def collect(self, wanted: set[str]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw {self.kind}: {len(wanted)} responses missing")
            if self.kind == "streams":
                reply = self.client.xread({self.resp: self.cursor}, count=1000, block=BLOCK_MS)
                for _key, entries in reply or ():
                    for entry_id, fields in entries:
                        self.cursor = entry_id
                        wanted.discard(answered(fields[b"body"]))
            elif self.kind == "lists":
                item = self.client.brpop([self.resp], timeout=1)
                if item:
                    wanted.discard(answered(item[1]))
            else:
                m = self.ps.get_message(timeout=1.0)
                if m is not None:
                    wanted.discard(answered(m["data"]))

    def close(self) -> None:
        if self.ps is not None:
            self.ps.close()
        self.client.close()


# -- swarmstream ---------------------------------------------------------------


class SwarmRequester:
    """Runs submit/wait on its own event loop, so the driver stays synchronous."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.swarm = Swarm(settings)
        self.loop.run_until_complete(self.swarm.check())
        self.seq = 0

    def latency(self) -> float:
        async def one() -> float:
            self.seq += 1
            t0 = time.perf_counter()
            task = await self.swarm.submit(SPEC, f"task {self.seq}")
            await self.swarm.wait(task, timeout=TIMEOUT)
            return time.perf_counter() - t0

        return self.loop.run_until_complete(one())

    def burst(self, n: int) -> float:
        async def run() -> float:
            t0 = time.perf_counter()
            tasks: list[Task] = []
            for _ in range(n):
                self.seq += 1
                tasks.append(await self.swarm.submit(SPEC, f"task {self.seq}"))
            found = await self.swarm.wait_many(tasks, timeout=TIMEOUT)
            if len(found) < n:
                raise RuntimeError(f"swarmstream: {n - len(found)} findings missing")
            return time.perf_counter() - t0

        return self.loop.run_until_complete(run())

    def close(self) -> None:
        self.loop.run_until_complete(self.swarm.aclose())
        self.loop.close()


# -- the harness ---------------------------------------------------------------


@dataclass
class Costs:
    """What one sequential request cost, averaged over a round: CPU microseconds of
    the requester's and the responder's main threads and of Redis, and Redis's own
    time per command."""

    requester_us: float
    responder_us: float
    redis_us: float
    commands_us: dict[str, float]


def process_cpu(pid: int) -> float:
    """CPU seconds a process's main thread has run so far (Linux /proc schedstat,
    nanoseconds; NaN where it is not available)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return float("nan")


def redis_costs(admin: Any) -> tuple[float, dict[str, tuple[int, int]]]:
    """Redis's CPU seconds so far and, per command, (calls, microseconds)."""
    cpu = admin.info("cpu")
    stats = admin.info("commandstats")
    per_command = {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in stats.items()
    }
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), per_command


class CostMeter:
    """Samples the costs around one configuration's sequential requests."""

    def __init__(self, admin: Any, pid: int | None) -> None:
        self.admin, self.pid = admin, pid
        self.start = self._now()

    def _now(self) -> tuple[float, float, float, dict[str, tuple[int, int]]]:
        responder = process_cpu(self.pid) if self.pid else float("nan")
        redis_cpu, commands = redis_costs(self.admin)
        return process_cpu(os.getpid()), responder, redis_cpu, commands

    def per_request(self, n: int) -> Costs:
        a, b = self.start, self._now()
        commands: dict[str, float] = {}
        for name, (_calls, usec) in b[3].items():
            was = a[3].get(name, (0, 0))
            # the meter's own INFO calls and the admin's CLIENT LIST are not the requests'
            if name not in ("info", "client|list") and usec > was[1]:
                commands[name] = (usec - was[1]) / n
        return Costs(
            (b[0] - a[0]) / n * 1e6,
            (b[1] - a[1]) / n * 1e6,
            (b[2] - a[2]) / n * 1e6,
            commands,
        )


@dataclass
class Config:
    key: str
    label: str
    seq: int  # sequential requests per round
    burst: int  # requests per throughput burst
    latency: Callable[[], float]
    burst_fn: Callable[[int], float]
    close: Callable[[], None]
    think: float = 0.0  # random untimed pause before each sequential request, up to this
    pid: int | None = None  # the responder's process (its CPU is sampled)
    samples: list[float] = field(default_factory=list)  # seconds
    costs: list[Costs] = field(default_factory=list)  # per round, per sequential request
    round_p50: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)  # requests/s per burst


def send_and_wait(requester: JsonlRequester | RawRequester) -> float:
    t0 = time.perf_counter()
    rid = requester.send()
    requester.collect({rid})
    return time.perf_counter() - t0


def send_burst(requester: JsonlRequester | RawRequester, n: int) -> float:
    t0 = time.perf_counter()
    wanted = {requester.send() for _ in range(n)}
    requester.collect(wanted)
    return time.perf_counter() - t0


def pct(xs: list[float], q: float) -> float:
    """Percentile by linear interpolation between closest ranks (q in 0..100)."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def wait_client(client: Any, name: str, cmd: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited early (rc {proc.returncode})")
        for c in client.client_list():
            if c.get("name") == name and (not cmd or c.get("cmd") == cmd):
                return
        time.sleep(0.01)
    raise RuntimeError(f"{name} never showed up in CLIENT LIST ({cmd})")


class Harness:
    def __init__(self, url: str, tmp: Path, args: argparse.Namespace) -> None:
        self.url, self.tmp, self.args = url, tmp, args
        self.run_id = uuid.uuid4().hex[:8]
        self.admin: Any = redis.Redis.from_url(url)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.namespaces: list[str] = []
        self.configs: list[Config] = []

    def ns(self, kind: str) -> str:
        name = f"bench-{self.run_id}-lat-{kind}"
        self.namespaces.append(name)
        return name

    def popen(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
        self.procs.append(proc)
        return proc

    def add_jsonl(self, poll: float, label: str, seq: int, burst: int) -> None:
        key = f"jsonl_{int(poll * 1000)}ms"
        bus = self.tmp / f"{key}.jsonl"
        bus.touch()
        argv = [sys.executable, str(HERE), "_jsonl_responder", str(bus), str(poll), RESPONDER]
        pid = self.popen(argv, self.tmp / f"{key}.log").pid
        r = JsonlRequester(bus, poll)
        self.configs.append(
            Config(
                key,
                label,
                seq,
                burst,
                lambda: send_and_wait(r),
                lambda n: send_burst(r, n),
                _noop,
                think=poll,
                pid=pid,
            )
        )

    def add_raw(self, kind: str, seq: int, burst: int) -> None:
        ns = self.ns(kind)
        req, resp = f"{ns}:req", f"{ns}:resp"
        r = RawRequester(kind, self.url, req, resp)
        name = f"{RESPONDER}-{ns}"
        argv = [sys.executable, str(HERE), "_raw_responder", kind, self.url, req, resp, name]
        proc = self.popen(argv, self.tmp / f"{ns}.log")
        pid = proc.pid
        if kind == "pubsub":
            deadline = time.monotonic() + 30
            while not self.admin.pubsub_numsub(req)[0][1]:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("pub/sub responder never subscribed")
                time.sleep(0.01)
        else:
            wait_client(self.admin, name, "xreadgroup" if kind == "streams" else "brpop", proc)
        label = {"streams": "raw streams", "lists": "raw lists", "pubsub": "raw pub/sub"}[kind]
        self.configs.append(
            Config(
                f"raw_{kind}",
                label,
                seq,
                burst,
                lambda: send_and_wait(r),
                lambda n: send_burst(r, n),
                r.close,
                pid=pid,
            )
        )

    def add_swarmstream(self, seq: int, burst: int) -> None:
        ns = self.ns("ss")
        settings = Settings.from_flat({"url": self.url, "namespace": ns, "concurrency": 8})
        name = f"lat-{ns}"
        with (self.tmp / f"{ns}.log").open("wb") as out:
            proc = spawn_worker([SPEC], "echo", settings, name=name, stdout=out, stderr=out)
        self.procs.append(proc)
        wait_client(self.admin, f"swarmstream:{name}", "xreadgroup", proc)
        r = SwarmRequester(settings)
        self.configs.append(
            Config(
                "swarmstream", "swarmstream", seq, burst, r.latency, r.burst, r.close, pid=proc.pid
            )
        )

    def cleanup(self) -> None:
        for c in self.configs:
            with contextlib.suppress(Exception):
                c.close()
        for proc in self.procs:
            stop_process(proc)
        for ns in self.namespaces:  # delete our own keys only; never FLUSHALL
            keys = list(self.admin.scan_iter(match=f"{ns}:*", count=1000))
            for i in range(0, len(keys), 1000):
                self.admin.unlink(*keys[i : i + 1000])
        self.admin.close()


def _noop() -> None:
    return None


def run(h: Harness) -> None:
    a = h.args
    if not a.quick:
        h.add_jsonl(1.0, "JSON-lines bus, 1 s poll", a.seq_1s, a.burst_1s)
    h.add_jsonl(0.01, "JSON-lines bus, 10 ms poll", a.seq_10ms, a.burst_10ms)
    for kind in ("streams", "lists", "pubsub"):
        h.add_raw(kind, a.seq, a.burst)
    h.add_swarmstream(a.seq, a.burst)
    for c in h.configs:  # untimed warm-up (also proves every responder answers)
        for _ in range(1 if c.key == "jsonl_1000ms" else 5):
            c.latency()
    rng = random.Random(1)
    for rnd in range(a.rounds):
        order = h.configs if rnd % 2 == 0 else h.configs[::-1]
        for c in order:
            # the 1 s bus runs its sequential requests in the first round only
            if c.key == "jsonl_1000ms" and rnd > 0:
                continue
            lat = []
            meter = CostMeter(h.admin, c.pid)
            for _ in range(c.seq):
                if c.think:  # de-phase from the responder's poll clock (see the docstring)
                    time.sleep(rng.uniform(0, c.think))
                lat.append(c.latency())
            c.costs.append(meter.per_request(c.seq))
            c.samples += lat
            c.round_p50.append(statistics.median(lat))
            c.rates.append(c.burst / c.burst_fn(c.burst))
            console.print(
                f"  round {rnd + 1}/{a.rounds} {c.label:<28} "
                f"p50 {statistics.median(lat) * 1e3:9.2f} ms"
                f"  burst {c.rates[-1]:10,.0f} req/s",
                highlight=False,
            )


def summarize(h: Harness) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in h.configs:
        ms = [x * 1e3 for x in c.samples]
        out[c.key] = {
            "label": c.label,
            "n": len(ms),
            "p50_ms": pct(ms, 50),
            "p90_ms": pct(ms, 90),
            "p99_ms": pct(ms, 99),
            "min_ms": min(ms),
            "max_ms": max(ms),
            "round_p50_ms": [x * 1e3 for x in c.round_p50],
            "burst": c.burst,
            "req_per_s_median": statistics.median(c.rates),
            "req_per_s_runs": c.rates,
            "samples_ms": ms,
            "cost_us_per_request": costs_of(c.costs),
        }
    return out


def costs_of(rounds: list[Costs]) -> dict[str, Any]:
    """Medians over the rounds of what one sequential request cost (microseconds)."""

    def med(xs: list[float]) -> float | None:
        xs = [x for x in xs if x == x]  # NaN: not measured
        return statistics.median(xs) if xs else None

    names = sorted({n for c in rounds for n in c.commands_us})
    commands = {n: med([c.commands_us.get(n, 0.0) for c in rounds]) for n in names}
    return {
        "requester_cpu": med([c.requester_us for c in rounds]),
        "responder_cpu": med([c.responder_us for c in rounds]),
        "redis_cpu": med([c.redis_us for c in rounds]),
        "redis_commands": {n: v for n, v in commands.items() if v},
    }


def print_table(report: dict[str, Any]) -> None:
    res = report["results"]
    table = Table(title="request -> response (one responder process each)")
    cols = (
        "configuration",
        "n",
        "p50 ms",
        "p99 ms",
        "min-max ms",
        "round p50s ms",
        "burst",
        "req/s",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for e in res.values():
        rates = e["req_per_s_runs"]
        table.add_row(
            e["label"],
            str(e["n"]),
            f"{e['p50_ms']:.3f}" if e["p50_ms"] < 100 else f"{e['p50_ms']:.0f}",
            f"{e['p99_ms']:.3f}" if e["p99_ms"] < 100 else f"{e['p99_ms']:.0f}",
            f"{e['min_ms']:.3g}-{e['max_ms']:.3g}",
            ", ".join(f"{x:.3g}" for x in e["round_p50_ms"]),
            str(e["burst"]),
            f"{e['req_per_s_median']:,.0f} ({min(rates):,.0f}-{max(rates):,.0f})",
        )
    console.print(table)
    costs = Table(
        title="what one sequential request costs, µs (medians of rounds): CPU of the "
        "requester's and the responder's main threads (/proc schedstat) and of Redis "
        "(INFO cpu); Redis's time per command (INFO commandstats; a script's time "
        "includes the commands it calls, listed too)"
    )
    for col in ("configuration", "requester CPU", "responder CPU", "Redis CPU", "Redis commands"):
        costs.add_column(
            col, justify="left" if col in ("configuration", "Redis commands") else "right"
        )
    for e in res.values():
        c = e["cost_us_per_request"]
        top = sorted(c["redis_commands"].items(), key=lambda kv: -kv[1])
        costs.add_row(
            e["label"],
            *(
                f"{c[k]:,.0f}" if c[k] is not None else "-"
                for k in ("requester_cpu", "responder_cpu", "redis_cpu")
            ),
            ", ".join(f"{n} {v:.1f}" for n, v in top if v >= 0.5),
        )
    console.print(costs)
    r = report["ratios"]
    console.print(
        f"swarmstream p50 / raw streams p50: [bold]{r['swarmstream_over_raw_streams']:.2f}x[/]"
        f" (target <= 1.3x: {'met' if r['swarmstream_over_raw_streams'] <= 1.3 else 'NOT met'})"
    )
    console.print(
        "JSON-lines 10 ms bus p50 / swarmstream p50: "
        f"[bold]{r['jsonl_10ms_over_swarmstream']:.1f}x[/]"
        f" (target >= 20x: {'met' if r['jsonl_10ms_over_swarmstream'] >= 20 else 'NOT met'})"
    )
    if "jsonl_1s_over_swarmstream" in r:
        console.print(
            f"JSON-lines 1 s bus p50 / swarmstream p50: {r['jsonl_1s_over_swarmstream']:.0f}x"
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (1 s bus: first only)")
    p.add_argument(
        "--seq", type=int, default=200, help="sequential requests per round (Redis, swarmstream)"
    )
    p.add_argument("--burst", type=int, default=2000, help="burst size (Redis, swarmstream)")
    p.add_argument("--seq-10ms", type=int, default=200)
    p.add_argument("--burst-10ms", type=int, default=500)
    p.add_argument("--seq-1s", type=int, default=20)
    p.add_argument("--burst-1s", type=int, default=200)
    p.add_argument(
        "--redis-url",
        help="use this server instead of starting one (keys are namespaced and deleted "
        "afterwards; nothing is flushed)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 10 ms bus only (~10 s)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seq, args.burst, args.seq_10ms, args.burst_10ms = 1, 10, 50, 5, 20
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_jsonl_responder"]:
        jsonl_responder(argv[1], float(argv[2]), argv[3])
        return 0
    if argv[:1] == ["_raw_responder"]:
        raw_responder(*argv[1:6])
        return 0
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)  # clean up children and keys on SIGTERM too
    started = time.perf_counter()
    with redis_server(args.redis_url, prefix="swarmstream-latency-") as srv:
        h = Harness(srv.url, srv.tmp, args)
        console.print(describe(srv, f"{args.rounds} rounds; "), highlight=False)
        try:
            run(h)
        finally:
            h.cleanup()
        results = summarize(h)
        redis_version = srv.version
    ss = results["swarmstream"]["p50_ms"]
    ratios = {
        "swarmstream_over_raw_streams": ss / results["raw_streams"]["p50_ms"],
        "jsonl_10ms_over_swarmstream": results["jsonl_10ms"]["p50_ms"] / ss,
    }
    if "jsonl_1000ms" in results:
        ratios["jsonl_1s_over_swarmstream"] = results["jsonl_1000ms"]["p50_ms"] / ss
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(redis_version),
        "config": {
            "rounds": args.rounds,
            "seq": args.seq,
            "burst": args.burst,
            "seq_10ms": args.seq_10ms,
            "burst_10ms": args.burst_10ms,
            "seq_1s": None if args.quick else args.seq_1s,
            "burst_1s": None if args.quick else args.burst_1s,
            "swarmstream_concurrency": 8,
            "bus_think_time": "uniform(0, poll interval), untimed, before each sequential request",
            "redis": "external" if args.redis_url else "embedded (appendonly no, save '')",
            "quick": args.quick,
        },
        "results": results,
        "ratios": ratios,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
