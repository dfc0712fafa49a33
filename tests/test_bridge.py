"""``swarmstream bridge jsonl``: the seed's JSON-lines bus connected to a swarm, both
ways, against real Redis; real processes for the kill -9 tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import await_until, kill9, running_worker, wait_until

from swarmstream import Settings, Swarm
from swarmstream.bridge import BridgeOptions, JsonlBridge, bridge_name
from swarmstream.bridge.serve import corr_id
from swarmstream.codec import decode_task
from swarmstream.keys import Keys
from swarmstream.models import Result, Task

SPEC = "research"


# -- helpers -----------------------------------------------------------------


def query(n: int | str, to: str = SPEC, **extra: Any) -> dict[str, Any]:
    return {
        "type": "query",
        "from": "planner",
        "to": to,
        "question": f"question {n}",
        "context_file": f"notes/{n}.md",
        "timestamp": "2025-01-01T12:00:00+00:00",
        **extra,
    }


def append(path: Path, *items: dict[str, Any] | bytes) -> None:
    """Append lines as an agent of the seed's bus does (one write per line)."""
    with path.open("ab") as f:
        for item in items:
            f.write(item if isinstance(item, bytes) else json.dumps(item).encode() + b"\n")
            f.flush()


def messages(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of the bus file (other lines left out)."""
    if not path.exists():
        return []
    out = []
    for raw in path.read_bytes().splitlines():
        with contextlib.suppress(ValueError, RecursionError):
            obj = json.loads(raw)
            if isinstance(obj, dict):
                out.append(obj)
    return out


def of_type(path: Path, kind: str) -> list[dict[str, Any]]:
    return [m for m in messages(path) if m.get("type") == kind]


def offsets(path: Path, kind: str = "query") -> list[int]:
    """Byte offsets of the lines of a type, in file order."""
    out, pos = [], 0
    for raw in path.read_bytes().splitlines(keepends=True):
        with contextlib.suppress(ValueError, RecursionError, AttributeError):
            if json.loads(raw).get("type") == kind:
                out.append(pos)
        pos += len(raw)
    return out


def task_entries(raw: redis.Redis, settings: Settings, spec: str = SPEC) -> list[Task]:
    key = Keys(settings.redis.namespace).spec(spec).tasks
    return [decode_task(spec, fields)[0] for _, fields in raw.xrange(key)]


async def _first_ready(bridge: JsonlBridge, task: asyncio.Task[Any]) -> None:
    ready = asyncio.ensure_future(bridge.ready.wait())
    await asyncio.wait({ready, task}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        task.result()  # raises what the bridge died of
    assert bridge.ready.is_set(), "the bridge did not read its file to the end in 20 s"


@contextlib.asynccontextmanager
async def bridged(settings: Settings, **options: Any) -> AsyncIterator[JsonlBridge]:
    """A bridge running in this event loop, read up to the end of its file."""
    bridge = JsonlBridge(BridgeOptions(**options), settings)
    task = asyncio.create_task(bridge.run())
    try:
        await _first_ready(bridge, task)
        yield bridge
    finally:
        bridge.stop()
        await asyncio.wait_for(task, 30)


async def cited(task: Task) -> Result:
    """A handler answering with sources in the retrieve handler's format."""
    return Result(
        content=f"answer to {task.text}",
        sources=("docs/ops.md:12-18", "docs/faq.md:7", "https://example.com/a"),
    )


async def echo(task: Task) -> Result:
    return Result(content=task.text)


async def until(cond: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    async def check() -> Any:
        return cond()

    return await await_until(check, timeout, what)


def bridge_cli(
    settings: Settings, path: Path, *args: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """``python -m swarmstream bridge jsonl PATH ARGS`` with the settings in its env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMSTREAM_")}
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "swarmstream", "-v", "bridge", "jsonl", str(path), *args],
            env={**env, **settings.to_env()},
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


# -- forward: query line -> task -> finding -> response line ------------------


@pytest.mark.contract
async def test_query_line_becomes_task_and_finding_comes_back_with_sources(
    settings: Settings, swarm: Swarm, raw: redis.Redis, tmp_path: Path
) -> None:
    bus = tmp_path / "bus.jsonl"
    append(bus, {"type": "note", "from": "planner", "text": "not for the bridge"})
    async with (
        running_worker([SPEC], cited, settings, concurrency=None),
        bridged(settings, path=bus, spec=SPEC) as b,
    ):
        append(bus, query(1))
        (response,) = await until(lambda: of_type(bus, "response"), "the response line")

    (task,) = task_entries(raw, settings)
    line_offset = offsets(bus)[0]
    assert task.id == f"{b.name}-0-{line_offset}"  # deterministic: file, generation, offset
    assert task.text == "question 1"
    assert task.data["context_file"] == "notes/1.md"
    assert task.data["from"] == "planner" and task.data["to"] == SPEC
    assert response["type"] == "response"
    assert response["from"] == SPEC and response["to"] == "planner"
    assert response["answer"] == "answer to question 1"
    assert response["sources"] == ["docs/ops.md:12-18", "docs/faq.md:7-7", "https://example.com/a"]
    assert response["re"] == task.id
    assert isinstance(response["timestamp"], str)  # like the query's
    (finding,) = await swarm.findings(SPEC)
    assert finding.task_id == task.id and finding.ok
    summary = b.summary()
    assert (summary.tasks, summary.responses, summary.ignored, summary.malformed) == (1, 1, 1, 0)


async def test_spec_chosen_by_to_and_numeric_timestamps(
    settings: Settings, raw: redis.Redis, tmp_path: Path
) -> None:
    bus = tmp_path / "bus.jsonl"
    async with (
        running_worker([SPEC, "writer"], echo, settings, concurrency=None),
        bridged(settings, path=bus) as bridge,
    ):
        append(bus, query("a"), query("b", to="writer", timestamp=1735732800.5))
        responses = await until(
            lambda: len(of_type(bus, "response")) == 2 and of_type(bus, "response"),
            "two response lines",
        )
    by_to = {r["from"]: r for r in responses}
    assert by_to[SPEC]["answer"] == "question a"
    assert by_to["writer"]["answer"] == "question b"
    assert isinstance(by_to["writer"]["timestamp"], float)
    assert [t.text for t in task_entries(raw, settings)] == ["question a"]
    assert [t.text for t in task_entries(raw, settings, "writer")] == ["question b"]
    assert bridge.counts["tasks"] == 2


# -- reverse: tasks -> query lines -> response lines -> findings ---------------


class FileAgent:
    """An agent that only reads the file: answers each query line with an 'id' by
    appending a response line, after ``delay`` seconds for questions saying 'slow'."""

    def __init__(self, path: Path, delay: float = 0.0) -> None:
        self.path = path
        self.delay = delay
        self.seen: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FileAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        offset = 0
        later: list[tuple[float, dict[str, Any]]] = []
        while not self._stop.is_set():
            if self.path.exists():
                with self.path.open("rb") as f:
                    f.seek(offset)
                    data = f.read()
                end = data.rfind(b"\n") + 1
                offset += end
                for raw in data[:end].splitlines():
                    msg = json.loads(raw)
                    if msg.get("type") == "query" and msg.get("id"):
                        self.seen.append(msg)
                        wait = self.delay if "slow" in msg["question"] else 0.0
                        later.append((time.monotonic() + wait, msg))
            now = time.monotonic()
            for due, msg in [x for x in later if x[0] <= now]:
                later.remove((due, msg))
                append(
                    self.path,
                    {
                        "type": "response",
                        "from": "file-agent",
                        "to": msg["from"],
                        "answer": f"A: {msg['question']} ({msg['context_file']})",
                        "sources": ["src/agent.py:10-20"],
                        "timestamp": time.time(),
                        "re": msg["id"],
                    },
                )
            time.sleep(0.005)


async def test_serve_writes_query_lines_and_their_responses_become_findings(
    settings: Settings,
    swarm: Swarm,
    raw: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("swarmstream.bridge.bridge.CLEANUP_EVERY", 0.2)
    bus = tmp_path / "bus.jsonl"
    claim_idle = settings.worker.claim_idle
    with FileAgent(bus, delay=claim_idle * 1.5):
        async with bridged(settings, path=bus, serve=("agents",)) as bridge:
            tasks = [
                await swarm.submit("agents", text, data={"context_file": f"ctx/{i}.md"})
                for i, text in enumerate(["one", "two", "slow three"])
            ]
            found = await swarm.wait_many(tasks, timeout=30)
            records = Keys(settings.redis.namespace).bridge(bridge.name).corr
            await until(lambda: raw.hlen(records) == 0, "correlation records cleaned up")
    assert [found[t.id].content for t in tasks] == [
        "A: one (ctx/0.md)",
        "A: two (ctx/1.md)",
        "A: slow three (ctx/2.md)",
    ]
    for t in tasks:
        f = found[t.id]
        assert f.ok and f.sources == ("src/agent.py:10-20",)
        assert f.attempt == 1  # the slow one's lease was renewed while it waited
        assert f.worker == bridge.name
    queries = of_type(bus, "query")
    assert sorted(q["id"] for q in queries) == sorted(corr_id("agents", t.id) for t in tasks)
    assert all(q["to"] == "agents" and q["from"] == "swarmstream" for q in queries)
    assert bridge.counts["answers"] == 3 and bridge.counts["queries"] == 3


async def test_serve_and_forward_on_one_file_do_not_loop(
    settings: Settings, swarm: Swarm, raw: redis.Redis, tmp_path: Path
) -> None:
    bus = tmp_path / "bus.jsonl"
    with FileAgent(bus):
        async with (
            running_worker([SPEC], echo, settings, concurrency=None),
            bridged(settings, path=bus, spec=SPEC, serve=("agents",)),
        ):
            served = await swarm.submit("agents", "for the file agents")
            append(bus, query(1))
            assert (await swarm.wait(served, timeout=20)).content.startswith("A: ")
            await until(lambda: len(of_type(bus, "response")) == 2, "both responses")
    # the bridge's own query line was not forwarded as a task of SPEC
    assert [t.text for t in task_entries(raw, settings)] == ["question 1"]


# -- kill -9 and restart -------------------------------------------------------


def write_queries(path: Path, n: int, pause: float, done: threading.Event) -> None:
    for i in range(n):
        append(path, query(i))
        time.sleep(pause)  # pacing of the writer, not a wait for anything
    done.set()


async def test_kill9_mid_stream_neither_repeats_nor_skips_a_line(
    settings: Settings, swarm: Swarm, raw: redis.Redis, tmp_path: Path
) -> None:
    n = 300
    bus, log = tmp_path / "bus.jsonl", tmp_path / "bridge.log"
    no_trim = settings.with_worker(trim_interval=3600.0)  # XLEN then counts every XADD
    written = threading.Event()
    writer = threading.Thread(target=write_queries, args=(bus, n, 0.002, written))
    async with running_worker([SPEC], echo, no_trim, concurrency=None):
        proc = bridge_cli(settings, bus, "--spec", SPEC, "--name", "crash", log=log)
        try:
            writer.start()
            for at in (30, 90, 150, 210):  # four times, mid-stream
                await until(lambda a=at: len(of_type(bus, "response")) >= a, f"{at} responses")
                kill9(proc)
                proc = bridge_cli(settings, bus, "--spec", SPEC, "--name", "crash", log=log)
            await until(written.is_set, "the writer", timeout=60)
            await until(lambda: len(of_type(bus, "response")) >= n, f"{n} responses", 60)
        finally:
            kill9(proc)
            writer.join(30)
    expected = {f"crash-0-{o}" for o in offsets(bus)}
    assert len(expected) == n
    replied = [r["re"] for r in of_type(bus, "response")]
    assert len(replied) == n and set(replied) == expected  # one response line each
    ids = [t.id for t in task_entries(raw, settings)]
    assert len(ids) == n and set(ids) == expected  # one task each, never a second XADD
    assert len(await swarm.findings(SPEC)) == n
    state = raw.hgetall(Keys(settings.redis.namespace).bridge("crash").state)
    assert int(state.get(b"malformed", 0)) == 0, log.read_text()


class Crash(BaseException):
    """Stands for a kill between two steps of the bridge."""


async def test_a_task_committed_but_never_submitted_is_submitted_by_the_next_run(
    settings: Settings, raw: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = tmp_path / "bus.jsonl"
    append(bus, query(1), query(2))

    async def crash(*args: object, **kwargs: object) -> None:
        raise Crash

    with monkeypatch.context() as patched:  # the position and the owed tasks are committed,
        patched.setattr("swarmstream.transport.bridge_state.BridgeStore.submit", crash)
        with pytest.raises(Crash):  # then the bridge dies before its XADDs
            await JsonlBridge(BridgeOptions(path=bus, spec=SPEC), settings).run()
    assert task_entries(raw, settings) == []
    async with (
        running_worker([SPEC], echo, settings, concurrency=None),
        bridged(settings, path=bus, spec=SPEC) as b,
    ):
        await until(lambda: len(of_type(bus, "response")) == 2, "both responses")
        assert b.counts["tasks"] == 0  # no line read twice: the tasks came from Redis
    assert sorted(t.text for t in task_entries(raw, settings)) == ["question 1", "question 2"]


async def test_serve_kill9_and_restart_writes_each_query_line_once(
    settings: Settings, swarm: Swarm, tmp_path: Path
) -> None:
    bus, log = tmp_path / "bus.jsonl", tmp_path / "bridge.log"
    args = ("--serve", "agents", "--name", "served")
    proc = bridge_cli(settings, bus, *args, log=log)
    try:
        tasks = [await swarm.submit("agents", f"q{i}") for i in range(5)]
        wait_until(lambda: len(of_type(bus, "query")) == 5, what="5 query lines")
        kill9(proc)  # claimed, written, not answered
        proc = bridge_cli(settings, bus, *args, log=log)
        with FileAgent(bus):
            found = await swarm.wait_many(tasks, timeout=30)  # claim_idle, then answered
    finally:
        kill9(proc)
    assert sorted(f.content for f in found.values()) == [f"A: q{i} (None)" for i in range(5)]
    assert len(of_type(bus, "query")) == 5, log.read_text()  # none written twice


# -- bad input -----------------------------------------------------------------


async def test_malformed_lines_are_reported_and_skipped(
    settings: Settings, raw: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="swarmstream.bridge")
    bus = tmp_path / "bus.jsonl"
    bad: list[dict[str, Any] | bytes] = [
        b"{not json\n",
        {"type": "query", "from": "planner", "to": SPEC},  # no question
        {"from": "planner", "question": "no type"},
        {"type": "query", "from": ["planner"], "question": "q"},  # wrong type
        {"type": "query", "from": "planner", "question": 42},
        {"type": "query", "from": "p", "question": "q", "timestamp": {"at": 1}},
        {"type": "query", "from": "p", "question": "q", "to": "not a spec!"},
        {"type": "query", "from": "p", "question": "q", "to": None},  # no spec to go to
        b"\xff\xfe\x00\x01binary junk\x80\n",
        b'{"type": "query", "from": "p", "question": NaN}\n',
        b"[" * 100_000 + b"\n",
        b'["a", "list"]\n',
        b'{"type": "query", "from": "p", "question": "\\ud800 lone surrogate"}\n',
    ]
    async with (
        running_worker([SPEC], echo, settings, concurrency=None),
        bridged(settings, path=bus) as bridge,
    ):
        append(bus, *bad)
        with bus.open("ab") as f:  # a 10 MB line, written in pieces as it grows
            f.write(b'{"type": "query", "from": "p", "to": "research", "question": "')
            for _ in range(10):
                f.write(b"x" * (1 << 20))
                f.flush()
                await asyncio.sleep(0.01)  # pacing, so the bridge sees it unfinished
            f.write(b'"}\n')
        append(bus, query("after"))
        await until(lambda: of_type(bus, "response"), "the good line's response")
        assert bridge.counts["malformed"] == len(bad) + 1
    (task,) = task_entries(raw, settings)
    assert task.text == "question after"
    state = raw.hgetall(Keys(settings.redis.namespace).bridge(bridge.name).state)
    assert int(state[b"malformed"]) == len(bad) + 1
    reported = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(reported) == len(bad) + 1
    assert any("longer than" in m for m in reported)
    assert any("not UTF-8" in m for m in reported)


# -- truncation and rotation ---------------------------------------------------


async def test_truncated_file_is_read_again_from_its_start(
    settings: Settings, raw: redis.Redis, tmp_path: Path
) -> None:
    bus = tmp_path / "bus.jsonl"
    polling = {"path": bus, "spec": SPEC, "inotify": False}  # the poll alone finds it all
    async with (
        running_worker([SPEC], echo, settings, concurrency=None),
        bridged(settings, **polling) as b,
    ):
        append(bus, query(1), query(2))
        await until(lambda: len(of_type(bus, "response")) == 2, "two responses")
        bus.write_bytes(b"")  # truncated
        await until(lambda: b.counts["resets"] == 1, "the truncation noticed")
        append(bus, query(3))
        (response,) = await until(lambda: of_type(bus, "response"), "the new file's response")
    assert response["answer"] == "question 3"
    ids = [t.id for t in task_entries(raw, settings)]
    assert len(ids) == 3 and ids[0] == f"{b.name}-0-0" and ids[2] == f"{b.name}-1-0"
    assert [m["type"] for m in messages(bus)] == ["query", "response"]  # nothing resent


async def test_rotated_file_is_finished_then_the_new_one_read(
    settings: Settings, raw: redis.Redis, tmp_path: Path
) -> None:
    bus, old, older = tmp_path / "bus.jsonl", tmp_path / "bus.jsonl.1", tmp_path / "bus.jsonl.2"

    def answers(*paths: Path) -> list[str]:
        return sorted(r["answer"] for p in paths for r in of_type(p, "response"))

    async with running_worker([SPEC], echo, settings, concurrency=None):
        async with bridged(settings, path=bus, spec=SPEC) as bridge:
            append(bus, query(1))
            await until(lambda: of_type(bus, "response"), "the first response")
            append(bus, query(2))  # maybe unread yet: the old file is read to its end
            bus.rename(old)
            append(bus, query(3))
            await until(lambda: len(answers(old, bus)) == 3, "the responses")
            assert bridge.counts["resets"] == 1
        # rotated while the bridge is stopped: the new file is read from its start
        bus.rename(older)
        append(bus, query(4))
        async with bridged(settings, path=bus, spec=SPEC) as again:
            (response,) = await until(lambda: of_type(bus, "response"), "the restarted response")
            assert again.counts["resets"] == 1  # noticed at its start
    assert response["answer"] == "question 4"
    texts = [t.text for t in task_entries(raw, settings)]
    assert sorted(texts) == [f"question {i}" for i in (1, 2, 3, 4)]  # each exactly once
    assert answers(old, older, bus) == sorted(texts) and len(of_type(bus, "response")) == 1
    assert bridge_name(bus) == bridge.name
