"""The monitor: render on constructed snapshots (pure), collect's feed, round trips
and dead workers against real Redis, run_monitor through a Redis stop and restart,
and ``swarmstream monitor`` end to end in a pty."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import TESTS, await_until, spawn, stop
from redis.asyncio.connection import AbstractConnection
from rich.console import Console

from swarmstream import Settings, Swarm, Task, codec
from swarmstream.embedded import EmbeddedRedis, free_port
from swarmstream.models import Finding, Status, WorkerInfo, WorkerState
from swarmstream.monitor.live import DISCONNECTED, run_monitor
from swarmstream.monitor.render import render, sparkline, throughput
from swarmstream.monitor.snapshot import ShardStats, Snapshot, SpecStats, collect
from swarmstream.transport.stats import FEED_SIZE, Counters

NOW = 1_800_000_000.0
TASK_ID = "019bfa1c2d3e4f5a6b7c8d9e0f1a"
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][A-Z0-9]|[=>])")


# -- constructed snapshots -------------------------------------------------------


def spec(name: str, **kw: Any) -> SpecStats:
    values: dict[str, Any] = {
        "stream": f"swarm:spec:{{{name}}}:tasks",
        "length": 1500,
        "backlog": 840,
        "pending": 12,
        "oldest_pending_ms": 4300,
        "consumers": 3,
        "dead": 0,
        "delivered": 660,
        "completed": 640,
        "failed": 8,
        "retried": 2,
        "delivered_rate": 12.5,
        "completed_rate": 11.9,
        "failed_rate": 0.0,
    }
    return SpecStats(name=name, **(values | kw))


def worker(name: str, busy: bool, **kw: Any) -> WorkerInfo:
    values: dict[str, Any] = {
        "host": "gpu-box-07",
        "pid": 4242,
        "specs": ("research", "summarize"),
        "state": WorkerState.BUSY if busy else WorkerState.IDLE,
        "concurrency": 1,
        "current": (TASK_ID,) if busy else (),
        "busy_since": NOW - 3.2 if busy else None,
        "done": 57,
        "failed": 1,
        "started": NOW - 600,
        "heartbeat": NOW - 0.4,
    }
    return WorkerInfo(name=name, **(values | kw))


def finding(i: int, ok: bool = True) -> Finding:
    return Finding(
        task_id=f"019bfa1c2d3e{i:016x}",
        spec="research",
        status=Status.OK if ok else Status.FAILED,
        content="" if not ok else f"shipments stall at the broker handoff ({i})",
        worker="worker-1",
        started=NOW - 5 - i,
        finished=NOW - 3.5 - i,
        error=None if ok else "RuntimeError: model timed out",
        entry_id=f"{int(NOW * 1000) - i}-0",
    )


def snapshot(workers: int = 2) -> Snapshot:
    return Snapshot(
        time=NOW,
        specs=(
            spec("research", backlog=1_000_000, pending=123_456, dead=2, failed_rate=0.4),
            spec("summarize-with-a-rather-long-name", delivered_rate=None),
        ),
        workers=tuple(
            worker(
                "worker-1" if i == 0 else f"worker-{i + 1:03d}",
                busy=i % 2 == 0,
                current=(TASK_ID,) if i == 0 else (f"019bfa1c2d3e{i:016x}",) if i % 2 == 0 else (),
            )
            for i in range(workers)
        ),
        shards=(
            ShardStats(
                id="northwind-1",
                spec="research",
                tokens=812_345,
                version=3,
                pass_no=2,
                progress="run r1: pass 2/2 waiting, 14/20 findings",
                collected=33,
                heartbeat=NOW - 1,
                passes=2,
                state="waiting",
                tasks=20,
                findings=14,
            ),
        ),
        feed=(finding(0), finding(1, ok=False), *(finding(i) for i in range(2, 12))),
        history=(4.0, 6.0, 5.0),
        samples=tuple((NOW - 60 + i, 10 * i) for i in range(61)),
        namespace="swarm",
    )


def text_of(renderable: Any, width: int) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_render_fits_80_columns_with_every_essential_column() -> None:
    out = text_of(render(snapshot(), width=80), 80)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "backlog " in line and "pending " in line)
    for col in ("backlog", "pending", "oldest", "dlv/s", "done/s", "fail/s", "dead", "cons"):
        assert col in header, col
    assert "1.0M" in out and "123k" in out  # compact counts at 80 columns
    row = next(line for line in lines if "worker-1 " in line)
    assert "busy" in row and TASK_ID[-8:] in row and "3.2s" in row  # task and for how long
    assert "● connected" in out
    assert re.search(r"[▁▂▃▄▅▆▇█]{20,}", out)  # the sparkline
    assert "northwind-1" in out and "14/20" in out and "812k" in out
    assert "failed" in out and "model timed out" in out  # the feed: status and error
    assert "backlog (= lag)" in out  # backlog is what Redis calls lag


def test_render_uses_a_wide_terminal() -> None:
    out = text_of(render(snapshot(), width=160), 160)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 160
    assert max(len(line) for line in lines) >= 150
    for col in ("deliv/s", "consumers", "completed", "host", "pid", "specs", "took"):
        assert col in out, col
    assert TASK_ID in out  # whole task ids
    assert "1,000,000" in out and "gpu-box-07" in out and "4242" in out
    # shards and the findings feed side by side
    assert any("shards 1" in line and "latest findings" in line for line in lines)


def test_render_disconnected_keeps_the_last_data() -> None:
    status = f"{DISCONNECTED} (ConnectionError) · data from 12s ago"
    out = text_of(render(snapshot(), status=status, width=80), 80)
    assert "✖ disconnected, retrying (ConnectionError)" in out
    assert "worker-1" in out and "northwind-1" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    empty = text_of(render(Snapshot(time=0.0), status=status, width=80), 80)
    assert "disconnected, retrying" in empty and "specs 0" in empty


def test_render_fits_a_short_terminal_busy_workers_first() -> None:
    snap = snapshot(workers=200)
    out = text_of(render(snap, width=100, height=30), 100)
    lines = out.splitlines()
    assert len(lines) <= 30
    assert "workers 200 (showing" in out and "100 busy" in out
    rows = [line for line in lines if re.search(r"worker-\d+ .* (busy|idle) ", line)]
    assert 3 <= len(rows) < 200
    assert all(" busy " in row for row in rows)  # busy ones take the rows first


def test_render_is_pure() -> None:
    snap = snapshot()
    assert text_of(render(snap, width=100), 100) == text_of(render(snap, width=100), 100)


def test_throughput_bins_from_cumulative_samples() -> None:
    samples = [(100.0 + i, 10 * i) for i in range(31)]  # 10/s from t=100 to t=130
    bins = throughput(samples, end=130.0, bins=60, window=60.0)
    assert bins[:30] == [None] * 30  # before the first sample: no data
    assert all(b is not None and abs(b - 10.0) < 1e-9 for b in bins[30:])
    assert sparkline([None, 0.0, 5.0, 10.0]) == " ▁▅█"


# -- collect against real Redis ---------------------------------------------------


def _add_findings(raw: redis.Redis, settings: Settings, spec_name: str, n: int, tag: str) -> None:
    from swarmstream.keys import Keys

    key = Keys(settings.redis.namespace).spec(spec_name).findings
    for i in range(n):
        f = Finding(
            task_id=f"{tag}-{i}", spec=spec_name, status=Status.OK, content=tag, finished=NOW
        )
        raw.xadd(key, codec.finding_fields(f))  # type: ignore[arg-type]


@contextlib.contextmanager
def count_round_trips() -> Iterator[list[int]]:
    """Client-to-server turns on redis.asyncio connections (a send after a read)."""
    turns = [0]
    last: dict[int, str] = {}
    send, read = AbstractConnection.send_packed_command, AbstractConnection.read_response

    async def counting_send(self: AbstractConnection, *a: Any, **kw: Any) -> None:
        if last.get(id(self)) != "send":
            turns[0] += 1
        last[id(self)] = "send"
        await send(self, *a, **kw)

    async def counting_read(self: AbstractConnection, *a: Any, **kw: Any) -> Any:
        last[id(self)] = "read"
        return await read(self, *a, **kw)

    AbstractConnection.send_packed_command = counting_send  # type: ignore[method-assign]
    AbstractConnection.read_response = counting_read  # type: ignore[method-assign]
    try:
        yield turns
    finally:
        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        AbstractConnection.read_response = read  # type: ignore[method-assign]


async def test_collect_two_round_trips_incremental_feed_and_dead_workers(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    await swarm.submit_many([Task(spec="a", text="x"), Task(spec="b", text="y")])
    _add_findings(raw, settings, "a", 15, "old-a")
    _add_findings(raw, settings, "b", 15, "old-b")
    registry = swarm.transport.registry
    for name in ("alive", "dead"):
        info = worker(name, busy=name == "alive", heartbeat=time.time())
        await registry.heartbeat(info, ttl=60)
    raw.pexpire(swarm.keys.worker("dead"), 1)  # its heartbeat expires
    time.sleep(0.01)
    reader = swarm.transport.stats
    await swarm.client.ping()  # connected already: count only the snapshot's round trips
    with count_round_trips() as turns:
        first = await collect(reader)
    assert turns[0] == 2
    assert [w.name for w in first.workers] == ["alive"]  # the dead one is not shown
    assert len(first.feed) == FEED_SIZE
    time.sleep(0.005)  # stream ids order findings across streams by millisecond
    _add_findings(raw, settings, "b", 3, "new-b")
    with count_round_trips() as turns:
        second = await collect(reader, first)
    assert turns[0] == 2  # the dead worker's registry entry went in round trip 1
    assert raw.zscore(swarm.keys.workers, "dead") is None
    assert raw.zscore(swarm.keys.workers, "alive") is not None
    ids = [f.task_id for f in second.feed]
    assert len(ids) == FEED_SIZE and ids[:3] == ["new-b-2", "new-b-1", "new-b-0"]
    assert len(set(ids)) == len(ids)
    assert {f.task_id for f in second.feed[3:]} <= {f.task_id for f in first.feed}
    assert second.samples[-1][0] == second.time and len(second.samples) == 2
    assert second.namespace == settings.redis.namespace


async def test_stats_reader_hands_over_decoded_rows(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    """The transport decodes every reply: the monitor gets str, int and Finding rows;
    an odd finding or worker hash is left out."""
    await swarm.submit("a", "x")
    _add_findings(raw, settings, "a", 2, "t")
    k = swarm.keys
    raw.xadd(k.spec("a").findings, {"body": b"\xff not a finding"})
    raw.hset(k.spec("a").stats, mapping={"ok": 3, "dead": 1, "retried": 2})
    raw.hset(k.shard("s1").meta, mapping={"spec": "research", "tokens": "7", "heartbeat": "1.5"})
    raw.hset(k.shard("s1").workflow, mapping={"passes": "2", "state": "waiting"})
    raw.zadd(k.shards, {"s1": 1})
    await swarm.transport.registry.heartbeat(worker("w1", busy=False), ttl=60)
    raw.hset(k.worker("odd"), mapping={"host": "no name field"})
    raw.zadd(k.workers, {"odd": 1})

    reading = await swarm.transport.stats.read()

    [row] = reading.specs
    assert (row.name, row.stream, row.length, row.dead) == ("a", k.spec("a").tasks, 1, 0)
    assert row.counters == Counters(ok=3, failed=0, dead=1, retried=2, buried=0)
    assert [f.task_id for f in row.feed] == ["t-1", "t-0"]  # newest first, odd one out
    [shard] = reading.shards
    assert shard == ShardStats(
        id="s1",
        spec="research",
        tokens=7,
        version=None,
        pass_no=None,
        progress="",
        collected=0,
        heartbeat=1.5,
        passes=2,
        state="waiting",
    )
    assert [w.name for w in reading.workers] == ["w1"]
    assert reading.expired_workers == ()
    for item in (row, row.counters, *row.feed, shard, *reading.workers):
        assert not any(isinstance(getattr(item, f.name), bytes) for f in fields(item)), item


# -- run_monitor through a Redis stop and restart ----------------------------------


async def test_run_monitor_shows_disconnected_and_recovers(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedRedis(dir=tmp_path / "redis", port=port, appendonly=False)
    settings = Settings.from_flat({"url": server.url, "namespace": "mon"})
    console = Console(record=True, width=100, file=io.StringIO())  # not a terminal: frames append
    monitor = asyncio.create_task(run_monitor(settings, refresh=0.2, console=console))
    seen = 0

    async def shown(pattern: str) -> bool:
        nonlocal seen
        assert not monitor.done(), monitor.exception() if monitor.done() else None
        text = console.export_text(clear=False)
        found = re.compile(pattern).search(text, seen)
        if found:
            seen = found.end()
        return found is not None

    connected = r"● connected.*?\n(?:.*\n)*?.*╰"  # a whole connected frame
    try:
        # Redis is down when the monitor starts
        await await_until(lambda: shown(f"✖ {DISCONNECTED}"), 10, "disconnected at start")
        server.start()
        await await_until(lambda: shown(connected), 10, "connected")
        server.stop()
        await await_until(lambda: shown(f"✖ {DISCONNECTED}"), 10, "disconnected after stop")
        server.start()  # same port, no data: what is shown next is read anew
        async with Swarm(settings) as swarm:
            await swarm.submit("after-restart", "hello")
        await await_until(lambda: shown(r"● connected[^╰]*after-restart"), 10, "recovered")
        assert not monitor.done()
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        server.stop()
    assert "Traceback" not in console.export_text()


# -- swarmstream monitor in a pty ----------------------------------------------------


def _frames(screen: str) -> list[str]:
    """Complete frames in what the terminal received (escape sequences removed)."""
    text = ANSI.sub("", screen).replace("\r", "")
    parts = text.split("╭─ swarmstream")
    return [p for p in parts[1:] if "╰" in p]


@pytest.mark.contract
def test_monitor_in_a_pty_shows_a_busy_worker_and_completions(settings: Settings) -> None:
    ns, url = settings.redis.namespace, settings.redis.url

    async def submit() -> None:
        async with Swarm(settings) as swarm:
            tasks = [Task(spec="research", text=f"t{i}", data={"seconds": 1.0}) for i in range(6)]
            await swarm.submit_many(tasks)

    asyncio.run(submit())
    proc = spawn(settings, ["research"], "workload:nap", ("--concurrency", "1"), name="pty-w1")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env |= {"TERM": "xterm-256color", "PYTHONPATH": str(TESTS)}
    argv = [sys.executable, "-m", "swarmstream", "--redis-url", url, "--namespace", ns]
    mon = subprocess.Popen(
        [*argv, "monitor", "--refresh", "0.3"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    screen = ""
    busy = False
    completed: list[int] = []
    try:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and not (busy and len(set(completed)) >= 2):
            assert mon.poll() is None, f"monitor exited: {ANSI.sub('', screen)[-2000:]}"
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):
                    screen += os.read(master, 1 << 16).decode("utf-8", "replace")
            frames = _frames(screen)
            for frame in frames[len(completed) :]:
                m = re.search(r"completed (\d[\d,]*)", frame)
                completed.append(int(m.group(1).replace(",", "")) if m else -1)
                busy = busy or bool(re.search(r"pty-w1\S*\s.*\bbusy\b", frame))
        tail = ANSI.sub("", screen)[-3000:]
        assert busy, f"no frame showed pty-w1 busy:\n{tail}"
        assert len(set(completed)) >= 2, f"completed never changed: {completed}\n{tail}"
        counts = [c for c in completed if c >= 0]
        assert counts == sorted(counts), counts
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(mon.pid, signal.SIGINT)
        try:
            mon.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(mon.pid, signal.SIGKILL)
            mon.wait(5)
        os.close(master)
        stop(proc)
    assert "Traceback" not in ANSI.sub("", screen)
