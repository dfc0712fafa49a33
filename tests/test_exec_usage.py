"""Usage through the exec handler: stand-in agents (small Python scripts) print what
Claude Code, Gemini CLI and Codex print; the finding carries the normalized usage, and
an attempt that fails (reported error, non-zero exit, timeout, overflow) spends what
the agent reported into the caller's meter."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from swarmstream import EphemeralWorker, Settings, Status, Swarm, Task
from swarmstream.errors import HandlerError
from swarmstream.handlers.exec import ExecHandler
from swarmstream.usage import REPORTED, PriceTable, Usage, metering, parse_agent_output

DATA = Path(__file__).resolve().parent / "data" / "usage"
SPEC = "agents"

# Prints a sample as an agent would, after reading the task. argv: the sample file,
# an exit code, how many of its lines to print (all if absent), then whether to hang.
AGENT = """
import sys, time
sys.stdin.read()
path, code = sys.argv[1], int(sys.argv[2])
text = open(path, encoding="utf-8").read()
if len(sys.argv) > 3:
    text = "".join(text.splitlines(keepends=True)[: int(sys.argv[3])])
sys.stdout.write(text)
sys.stdout.flush()
if len(sys.argv) > 4:
    sys.stdout.write('{"type":"item.started","item":{"id":"item_9","type":"comm')  # cut
    sys.stdout.flush()
    time.sleep(100)
sys.stderr.write("agent stderr\\n")
sys.exit(code)
"""


def agent(sample: str, code: int = 0, lines: int | None = None, hang: bool = False) -> ExecHandler:
    argv = [sys.executable, "-c", AGENT, str(DATA / sample), str(code)]
    if lines is not None or hang:
        argv.append(str(lines if lines is not None else 10**6))
    if hang:
        argv.append("hang")
    return ExecHandler(argv, name="agent", kill_grace=0.5)


def expected(sample: str) -> Usage:
    out = parse_agent_output((DATA / sample).read_text())
    assert out is not None and out.usage is not None
    return out.usage


def task(text: str = "where do shipments stall?") -> Task:
    return Task(spec=SPEC, text=text)


@pytest.mark.parametrize(
    ("sample", "content"),
    [
        (
            "claude.json",
            "Shipments stall at customs: the broker files the forms a day late (notes/a.md:3).",
        ),
        ("claude_stream.jsonl", "Shipments stall at customs."),
        ("gemini.json", "Shipments stall at customs: the broker files the forms a day late."),
        ("gemini_stream.jsonl", "Shipments stall at customs."),
        ("codex.jsonl", "Shipments stall at customs: the broker files the forms a day late."),
    ],
)
async def test_agent_output_becomes_content_and_usage(sample: str, content: str) -> None:
    with metering() as meter:
        result = await asyncio.wait_for(agent(sample)(task(), None), 30)
    assert result.content == content
    assert result.usage == expected(sample).to_dict()
    assert meter.spent is None  # a successful attempt reports its usage in its Result


async def test_claude_usage_in_the_canonical_shape() -> None:
    result = await asyncio.wait_for(agent("claude.json")(task(), None), 30)
    assert result.usage == {
        "model": "claude-sonnet-4-5-20250929",
        "input_tokens": 3144,
        "output_tokens": 2250,
        "cache_read_tokens": 96120,
        "cache_write_tokens": 18213,
        "cost_usd": 0.12997675,
        "cost_source": REPORTED,
        "session_id": "9f1c2d8e-4b7a-4e43-9a51-2f0c7d6b1e90",
        "turns": 7,
    }


async def test_a_reported_error_fails_and_spends() -> None:
    with metering() as meter, pytest.raises(HandlerError) as info:
        await asyncio.wait_for(agent("claude_error.json")(task(), None), 30)
    assert str(info.value) == "claude reported an error: Reached maximum number of turns (3)"
    assert meter.spent == expected("claude_error.json")
    assert meter.spent is not None and meter.spent.cost_usd == 0.039651


async def test_a_nonzero_exit_with_agent_json_spends() -> None:
    with metering() as meter, pytest.raises(HandlerError) as info:
        await asyncio.wait_for(agent("codex_failed.jsonl", code=1)(task(), None), 30)
    message = str(info.value)
    assert message.startswith("agent exited with code 1: stream disconnected before completion")
    assert message.endswith("; stderr: agent stderr")
    assert meter.spent == expected("codex_failed.jsonl")  # the turn that completed
    with metering() as meter, pytest.raises(HandlerError, match=r"^agent exited with code 2; "):
        await asyncio.wait_for(agent("claude.json", code=2)(task(), None), 30)
    assert meter.spent == expected("claude.json")  # no error reported, usage still spent


async def test_a_nonzero_exit_with_plain_text_spends_nothing() -> None:
    handler = ExecHandler([sys.executable, "-c", "print('half an answer'); raise SystemExit(4)"])
    with metering() as meter, pytest.raises(HandlerError, match="exited with code 4"):
        await asyncio.wait_for(handler(task(), None), 30)
    assert meter.spent is None


async def test_a_timeout_spends_the_turns_printed_so_far() -> None:
    handler = agent("codex.jsonl", lines=7, hang=True)  # one turn completed, then stuck
    with metering() as meter, pytest.raises(TimeoutError):
        async with asyncio.timeout(3):
            await handler(task(), None)
    assert meter.spent == Usage(
        input_tokens=24763 - 24448,
        output_tokens=122,
        cache_read_tokens=24448,
        session_id="0199a213-81c0-7800-8aa1-bbab2a035a53",
        turns=1,
    )
    assert not handler._groups  # the process group is gone


async def test_a_cut_short_claude_stream_spends_its_messages() -> None:
    handler = agent("claude_stream.jsonl", lines=5, hang=True)  # no result line yet
    with metering() as meter, pytest.raises(TimeoutError):
        async with asyncio.timeout(3):
            await handler(task(), None)
    spent = meter.spent
    assert spent is not None and spent.cost_usd is None  # no cost reported yet...
    prices = PriceTable.from_mapping({"claude-sonnet-4-5": {"input": 3, "output": 15}})
    priced = prices.apply(spent)  # ...so the caller computes it
    assert priced.cost_source == "computed" and priced.cost_usd == pytest.approx(
        (10 + 27520 + 5430) * 3e-6 + 155 * 15e-6
    )


async def test_an_overflow_spends_what_was_complete() -> None:
    flood = (
        "import sys; sys.stdin.read(); sys.stdout.write(open(sys.argv[1]).read()); "
        "sys.stdout.flush(); sys.stdout.write('x' * 10**6)"
    )
    handler = ExecHandler([sys.executable, "-c", flood, str(DATA / "codex.jsonl")], max_output=4096)
    with metering() as meter, pytest.raises(HandlerError, match="stdout exceeded 4096 bytes"):
        await asyncio.wait_for(handler(task(), None), 30)
    assert meter.spent == expected("codex.jsonl")


@contextlib.asynccontextmanager
async def running(handler: ExecHandler, settings: Settings) -> AsyncIterator[None]:
    worker = EphemeralWorker(SPEC, handler, settings.with_worker(concurrency=1))
    job = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stop()
        await asyncio.wait_for(job, 30)


async def test_the_finding_records_the_usage(swarm: Swarm, settings: Settings) -> None:
    async with running(agent("gemini.json"), settings):
        finding = await swarm.wait(await swarm.submit(SPEC, "where?"), timeout=30)
    assert finding.status is Status.OK, finding.error
    assert finding.usage == expected("gemini.json").to_dict()
    assert Usage.from_dict(finding.usage) == expected("gemini.json")
