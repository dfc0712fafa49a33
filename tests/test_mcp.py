"""``swarmstream mcp`` as an agent session uses it: the MCP SDK's own client over stdio,
talking to a ``python -m swarmstream mcp`` process, against real Redis and real
worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis
from helpers import await_until, findings_of, spawn, stop
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from swarmstream import EphemeralWorker, Settings, Swarm
from swarmstream.codec import decode_finding
from swarmstream.context import build
from swarmstream.errors import LeaseLost
from swarmstream.keys import Keys
from swarmstream.mcp.contexts import INLINE_BYTES
from swarmstream.mcp.desk import Desk
from swarmstream.models import Finding
from swarmstream.shard import MemoryShard

SPEC = "research"
TOOLS = {
    "ping",
    "submit",
    "submit_many",
    "wait",
    "findings",
    "ask",
    "status",
    "dead_letters",
    "claim",
    "report",
    "fail",
    "release",
}


@contextlib.asynccontextmanager
async def mcp_session(
    settings: Settings, errlog: IO[str], *extra: str
) -> AsyncIterator[ClientSession]:
    """An initialized client session with a ``swarmstream mcp`` subprocess that has
    the test's settings in its environment (closing it closes the server's stdin)."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "swarmstream", "-v", "mcp", *extra],
        env=settings.to_env(),
    )
    async with (
        stdio_client(params, errlog=errlog) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    """A tool's structured result; the call must succeed."""
    result = await session.call_tool(tool, args)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refused(session: ClientSession, tool: str, **args: Any) -> str:
    """The message of a tool call that must fail (one line, no traceback)."""
    result = await session.call_tool(tool, args)
    assert result.is_error, result.structured_content
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text
    return text


def findings_for(raw: redis.Redis, settings: Settings, task_id: str) -> list[Finding]:
    """Every finding entry of a task, read straight from the findings stream."""
    found = [decode_finding("0-0", f) for f in findings_of(raw, settings, SPEC)]
    return [f for f in found if f.task_id == task_id]


def one_finding(raw: redis.Redis, settings: Settings, task_id: str) -> Finding | None:
    found = findings_for(raw, settings, task_id)
    assert len(found) <= 1, found
    return found[0] if found else None


def no_traceback(errlog: Path) -> None:
    text = errlog.read_text()
    assert "Traceback" not in text, text


async def test_coordinate_submit_wait_findings_status_dead(
    settings: Settings, swarm: Swarm, raw: redis.Redis, tmp_path: Path
) -> None:
    errlog = tmp_path / "mcp.err"
    worker = spawn(settings, [SPEC], "echo")
    try:
        with errlog.open("w") as err:
            async with mcp_session(settings, err) as session:
                listed = await session.list_tools()
                assert {t.name for t in listed.tools} == TOOLS
                assert all(len(t.description or "") > 40 for t in listed.tools)

                task = await call(session, "submit", spec=SPEC, text="where do shipments stall?")
                got = await call(session, "wait", task_ids=[task["task_id"]], timeout=20)
                assert got["missing"] == []
                (finding,) = got["findings"]
                assert finding["status"] == "ok"
                assert finding["content"] == "where do shipments stall?"

                many = await call(
                    session,
                    "submit_many",
                    tasks=[{"spec": SPEC, "text": "a"}, {"spec": SPEC, "text": "b", "data": [1]}],
                )
                ids = [t["task_id"] for t in many["tasks"]]
                got = await call(session, "wait", task_ids=ids, timeout=20)
                assert sorted(f["content"] for f in got["findings"]) == ["a", "b"]

                by_task = await call(session, "findings", task_id=task["task_id"])
                assert [f["task_id"] for f in by_task["findings"]] == [task["task_id"]]
                by_spec = await call(session, "findings", spec=SPEC, limit=10)
                assert len(by_spec["findings"]) == 3
                none_yet = await call(session, "findings", task_id="no-such-task")
                assert none_yet["findings"] == []

                status = await call(session, "status")
                (row,) = [s for s in status["specs"] if s["name"] == SPEC]
                assert row["completed"] == 3

                await swarm.streams.add_raw(SPEC, {"junk": "not a task"})
                dead = await await_until(
                    lambda: _nonempty_dead(session), what="the malformed entry's dead letter"
                )
                (letter,) = dead["dead_letters"]
                assert letter["reason"].startswith("malformed:")
                assert dead["total"] == 1
                assert "not held" in await refused(session, "report", task_id="x", content="y")
                assert "give spec" in await refused(session, "wait", task_ids=["other"])

                assert "no shards" in await refused(session, "ask", question="anything?")
                handbook = MemoryShard(swarm, "handbook", "lookup")
                await handbook.load_documents(
                    [("ops/ship.md", "Intro.\nShipments stall at the customs gate.\n")]
                )
                retriever = spawn(settings, ["lookup"], "retrieve")
                try:
                    answer = await call(session, "ask", question="where do shipments stall?")
                    nowhere = await call(session, "ask", question="where do zeppelins stall?")
                finally:
                    stop(retriever)
                assert nowhere["found"] is False and "zeppelin" in nowhere["reason"]
                assert answer["found"] is True
                assert answer["answered"] == ["handbook"] and answer["missing"] == []
                assert answer["passages"][0]["source"].startswith("ops/ship.md:")
                assert "customs gate" in answer["text"]
    finally:
        stop(worker)
    no_traceback(errlog)


async def _nonempty_dead(session: ClientSession) -> dict[str, Any] | None:
    dead = await call(session, "dead_letters", spec=SPEC)
    return dead if dead["dead_letters"] else None


@pytest.mark.contract
async def test_claim_a_shard_task_report_it_and_fail_another(
    settings: Settings, swarm: Swarm, raw: redis.Redis, tmp_path: Path
) -> None:
    small = MemoryShard(swarm, "alpha", SPEC)
    await small.load_documents([("docs/a.md", "line one\nshipments stall at customs\n")])
    big_docs = [("docs/big.md", ("x" * 100 + "\n") * (INLINE_BYTES // 101 + 10))]
    large = MemoryShard(swarm, "beta", SPEC)
    await large.load_documents(big_docs)
    errlog = tmp_path / "mcp.err"
    with errlog.open("w") as err:
        async with mcp_session(settings, err) as session:
            assert (await call(session, "claim", spec=SPEC))["claimed"] is False

            (task,) = await small.post(["where do shipments stall?"])
            got = await call(session, "claim", spec=SPEC, wait=5)
            assert got["claimed"] and got["task_id"] == task.id
            assert got["text"] == "where do shipments stall?" and got["attempt"] == 1
            context = got["context"]
            assert context["shard"] == "alpha" and context["documents"] == ["docs/a.md"]
            assert "shipments stall at customs" in context["text"]
            holding = (await call(session, "ping"))["holding"]
            assert [h["task_id"] for h in holding] == [task.id]

            spent = {"model": "claude-x", "input_tokens": 120, "output_tokens": 8, "cost_usd": 0.02}
            done = await call(
                session,
                "report",
                task_id=task.id,
                content="at customs",
                sources=["docs/a.md:2"],
                usage=spent,
            )
            assert done["recorded"] is True
            finding = one_finding(raw, settings, task.id)
            assert finding is not None and finding.status.value == "ok"
            assert finding.usage is not None and finding.usage["cost_usd"] == 0.02
            usage = await swarm.client.hgetall(swarm.keys.spec(SPEC).usage)
            assert usage[b"model:claude-x:input"] == b"120" and float(usage[b"cost"]) == 0.02
            assert finding.content == "at customs" and finding.sources == ("docs/a.md:2",)
            assert finding.worker.startswith("mcp-") and finding.shard == "alpha"
            again = await refused(session, "report", task_id=task.id, content="twice")
            assert "no longer held" in again
            assert len(findings_for(raw, settings, task.id)) == 1

            (big_task,) = await large.post(["summarize"])
            got = await call(session, "claim", spec=SPEC, wait=5)
            assert got["task_id"] == big_task.id
            path = Path(got["context"]["file"])
            assert "text" not in got["context"]
            assert path.read_text() == build(big_docs)[0]
            await call(session, "release", task_id=big_task.id)
            got = await call(session, "claim", spec=SPEC, wait=5)  # released: at once
            assert got["task_id"] == big_task.id and got["attempt"] == 1
            await call(session, "report", task_id=big_task.id, content="long")

            await swarm.streams.add_raw(SPEC, {"body": b"\xc1 not msgpack"})
            flaky = await swarm.submit(SPEC, "flaky", max_attempts=2)
            got = await call(session, "claim", spec=SPEC, wait=5)
            assert got["task_id"] == flaky.id  # the malformed entry was never handed out
            (letter,) = await swarm.dead(SPEC)
            assert letter.reason.startswith("malformed:")
            failed = await call(session, "fail", task_id=flaky.id, error="no idea")
            assert failed["outcome"] == "retry" and failed["attempt"] == 1

            async def retried() -> dict[str, Any] | None:
                got = await call(session, "claim", spec=SPEC)
                return got if got["claimed"] else None

            got = await await_until(retried, what="the retry to come back", timeout=20)
            assert got["task_id"] == flaky.id and got["attempt"] == 2
            last = await call(session, "fail", task_id=flaky.id, error="still no idea")
            assert last["outcome"] == "failed"
            finding = one_finding(raw, settings, flaky.id)
            assert finding is not None and finding.status.value == "failed"
            assert "failed on all 2 attempts" in (finding.error or "")
            assert [x.task_id for x in await swarm.dead(SPEC)] == [None, flaky.id]
    no_traceback(errlog)


async def test_killed_session_task_goes_to_another_worker_once(
    settings: Settings, swarm: Swarm, raw: redis.Redis, tmp_path: Path
) -> None:
    task = await swarm.submit(SPEC, "survive me")
    errlog = tmp_path / "mcp.err"
    worker = None
    try:
        with errlog.open("w") as err:
            async with mcp_session(settings, err) as session:
                got = await call(session, "claim", spec=SPEC, wait=5)
                assert got["task_id"] == task.id
                pid = (await call(session, "ping"))["pid"]
                os.kill(pid, signal.SIGKILL)
                worker = spawn(settings, [SPEC], "echo")
                finding = await await_until(
                    lambda: _finding(raw, settings, task.id), what="the reclaimed task's finding"
                )
        assert finding.status.value == "ok" and finding.attempt == 2
        assert not finding.worker.startswith("mcp-")
        assert len(findings_for(raw, settings, task.id)) == 1
    finally:
        if worker is not None:
            stop(worker)


async def _finding(raw: redis.Redis, settings: Settings, task_id: str) -> Finding | None:
    return one_finding(raw, settings, task_id)


async def test_session_end_or_silence_releases_at_once(
    settings: Settings, swarm: Swarm, raw: redis.Redis, tmp_path: Path
) -> None:
    slow = settings.with_worker(claim_idle=60.0)  # a reclaim would take a minute
    errlog = tmp_path / "mcp.err"
    with errlog.open("w") as err:
        ended = await swarm.submit(SPEC, "given back when the session ends")
        async with mcp_session(slow, err) as session:
            assert (await call(session, "claim", spec=SPEC, wait=5))["task_id"] == ended.id
        finding = await _run_worker_until_found(slow, raw, ended.id)
        assert finding.attempt == 1 and not finding.worker.startswith("mcp-")

        silent = await swarm.submit(SPEC, "given back after a silence")
        async with mcp_session(slow, err) as session:
            got = await call(session, "claim", spec=SPEC, hold=1, wait=5)
            assert got["task_id"] == silent.id
            finding = await _run_worker_until_found(slow, raw, silent.id)
            assert finding.attempt == 1 and not finding.worker.startswith("mcp-")
            message = await refused(session, "report", task_id=silent.id, content="late")
            assert "released after 1s without a tool call" in message
    assert len(findings_for(raw, slow, silent.id)) == 1
    no_traceback(errlog)


async def _run_worker_until_found(settings: Settings, raw: redis.Redis, task_id: str) -> Finding:
    """Run a worker process until the task has its finding; return it."""
    worker = spawn(settings, [SPEC], "echo")
    try:
        return await await_until(
            lambda: _finding(raw, settings, task_id), what=f"the finding of {task_id}"
        )
    finally:
        stop(worker)


async def test_report_after_the_lease_was_lost_says_so(
    settings: Settings, swarm: Swarm, raw: redis.Redis, tmp_path: Path
) -> None:
    task = await swarm.submit(SPEC, "contested")
    errlog = tmp_path / "mcp.err"
    with errlog.open("w") as err:
        async with mcp_session(settings, err) as session:
            assert (await call(session, "claim", spec=SPEC, wait=5))["task_id"] == task.id
            pid = (await call(session, "ping"))["pid"]
            os.kill(pid, signal.SIGSTOP)  # no lease renewal from here on
            worker = spawn(settings, [SPEC], "echo")
            try:
                theirs = await await_until(
                    lambda: _finding(raw, settings, task.id), what="the other worker's finding"
                )
            finally:
                os.kill(pid, signal.SIGCONT)
                stop(worker)
            message = await refused(session, "report", task_id=task.id, content="mine")
            assert "lease lost" in message and task.id in message
    assert findings_for(raw, settings, task.id) == [theirs]
    assert theirs.attempt == 2 and not theirs.worker.startswith("mcp-")
    consumers = raw.xinfo_consumers(Keys(settings.redis.namespace).spec(SPEC).tasks, "workers")
    assert all(c["pending"] == 0 for c in consumers)
    no_traceback(errlog)


@pytest.mark.contract
async def test_desk_report_refused_by_redis_and_timeout_fails_the_attempt(
    settings: Settings, swarm: Swarm, raw: redis.Redis
) -> None:
    """In process: a report whose lease Redis no longer grants (no renewal noticed the
    loss first) says so; a task's timeout fails its attempt as a handler timeout does."""
    desk = Desk(swarm.transport, settings)
    task = await swarm.submit(SPEC, "taken while I was away")
    held = await desk.claim(SPEC)
    assert held is not None and held.task.id == task.id
    other = EphemeralWorker(SPEC, lambda t: t.text, settings.with_worker(once=True))
    await other.run()  # reclaims the entry after claim_idle: nobody renewed it
    with pytest.raises(LeaseLost, match=r"lease lost.*NOT recorded") as refusal:
        await desk.report(task.id, "mine")
    assert other.name in str(refusal.value)
    assert [f.worker for f in findings_for(raw, settings, task.id)] == [other.name]

    timed = await swarm.submit(SPEC, "too slow", timeout=0.3, max_attempts=1)
    assert (await desk.claim(SPEC)) is not None
    stopping = asyncio.Event()
    keeper = asyncio.create_task(desk.keep(stopping))
    try:
        finding = await await_until(
            lambda: _finding(raw, settings, timed.id), what="the timed-out attempt's finding"
        )
    finally:
        stopping.set()
        await keeper
    assert finding.status.value == "failed" and "timed out after 0.3s" in (finding.error or "")
    assert not desk.held
    with pytest.raises(LeaseLost, match=r"timeout of 0\.3s passed"):
        await desk.report(timed.id, "late")
    await desk.close()


async def test_desk_hands_out_what_a_lost_read_reply_delivered(
    settings: Settings, swarm: Swarm, raw: redis.Redis
) -> None:
    """A claim cancelled in its blocking read (its reply may carry an entry) makes the
    next claim look in the session's own pending list, as the worker's recovery does."""
    desk = Desk(swarm.transport, settings)
    blocked = asyncio.create_task(desk.claim(SPEC, wait=30))

    def reading() -> bool:
        return any(c.get("cmd") == "xreadgroup" for c in raw.client_list())

    await await_until(lambda: asyncio.to_thread(reading), what="the claim's blocking read")
    blocked.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await blocked
    task = await swarm.submit(SPEC, "delivered, reply lost")
    (lost,) = await swarm.streams.read([SPEC], desk.name, 1, 1000)  # as the lost reply did
    held = await desk.claim(SPEC)
    assert held is not None and held.task.id == task.id
    assert held.entry.entry_id == lost.entry_id and held.task.attempt == 1
    assert desk.counts["recovered"] == 1
    await desk.close()
    finding = await _run_worker_until_found(settings, raw, task.id)  # released at close
    assert finding.attempt == 1
