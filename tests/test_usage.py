"""Usage records: the agent CLIs' output shapes (Claude Code, Gemini CLI, Codex, our own
object), the providers' usage objects, garbage, prices, sums, and the meter that
records what a failed attempt spent (async, threads, nesting)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmstream.errors import ConfigError
from swarmstream.handlers.base import CallableHandler, to_result
from swarmstream.models import Result, Task
from swarmstream.usage import (
    COMPUTED,
    MIXED,
    REPORTED,
    AgentOutput,
    Price,
    PriceTable,
    Usage,
    metering,
    normalize,
    parse_agent_output,
    spend,
    total,
    usage_so_far,
)

DATA = Path(__file__).resolve().parent / "data" / "usage"
SONNET = "claude-sonnet-4-5-20250929"


def sample(name: str) -> str:
    return (DATA / name).read_text()


def parsed(name: str) -> AgentOutput:
    out = parse_agent_output(sample(name))
    assert out is not None, name
    return out


# -- the agent CLIs ----------------------------------------------------------


def test_claude_json_with_two_models() -> None:
    out = parsed("claude.json")
    assert out.agent == "claude" and not out.is_error and out.error is None
    assert out.content == (
        "Shipments stall at customs: the broker files the forms a day late (notes/a.md:3)."
    )
    # tokens of every model in modelUsage (haiku included, like the cost); the model
    # is the one that cost the most
    assert out.usage == Usage(
        model=SONNET,
        input_tokens=24 + 3120,
        output_tokens=1840 + 410,
        cache_read_tokens=96120,
        cache_write_tokens=18213,
        cost_usd=0.12997675,
        cost_source=REPORTED,
        session_id="9f1c2d8e-4b7a-4e43-9a51-2f0c7d6b1e90",
        turns=7,
    )


def test_claude_json_error_subtype_and_api_error() -> None:
    out = parsed("claude_error.json")
    assert out.is_error and out.error == "Reached maximum number of turns (3)"
    assert out.content is None
    assert out.usage is not None and out.usage.turns == 3 and out.usage.cost_usd == 0.039651
    api_error = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "result": "API Error: 529 Overloaded",
        "session_id": "s",
        "total_cost_usd": 0,
        "usage": {"input_tokens": 0, "output_tokens": 0},
        "modelUsage": {},
    }
    out = parse_agent_output(json.dumps(api_error))
    assert out is not None and out.is_error and out.error == "API Error: 529 Overloaded"
    assert out.usage == Usage(cost_usd=0.0, cost_source=REPORTED, session_id="s")
    bare = parse_agent_output('{"type": "result", "subtype": "error_during_execution"}')
    assert bare is not None and bare.is_error and bare.error == "claude: error_during_execution"


def test_claude_structured_output_is_the_data() -> None:
    text = json.dumps(
        {"type": "result", "subtype": "success", "is_error": False, "result": "{}"}
        | {"structured_output": {"symbols": ["a"]}, "usage": {"input_tokens": 5}}
    )
    out = parse_agent_output(text)
    assert out is not None and out.data == {"symbols": ["a"]}
    assert out.usage == Usage(input_tokens=5)


def test_claude_stream_json() -> None:
    out = parsed("claude_stream.jsonl")
    assert out.agent == "claude" and out.content == "Shipments stall at customs."
    assert out.usage == Usage(
        model=SONNET,
        input_tokens=10,
        output_tokens=155,
        cache_read_tokens=27520,
        cache_write_tokens=5430,
        cost_usd=0.0309625,
        cost_source=REPORTED,
        session_id="2c4e6a80-1b3d-4f5a-8c7e-9d0f1a2b3c4d",
        turns=2,
    )
    # without modelUsage, the model comes from the init event
    lines = sample("claude_stream.jsonl").splitlines()
    last = json.loads(lines[-1])
    del last["modelUsage"]
    out = parse_agent_output("\n".join([*lines[:-1], json.dumps(last)]))
    assert out is not None and out.usage is not None
    assert out.usage.model == SONNET and out.usage.input_tokens == 10


def test_claude_stream_cut_short_counts_each_message_once() -> None:
    lines = sample("claude_stream.jsonl").splitlines(keepends=True)
    partial = "".join(lines[:-1]) + '{"type":"result","subtype":"succ'  # mid-line
    out = parse_agent_output("".join(lines[:-1]))
    assert out is not None and not out.is_error
    assert out.content == "Shipments stall at customs."
    expected = Usage(
        model=SONNET,
        input_tokens=10,  # msg_01 printed twice (two content blocks), counted once
        output_tokens=155,
        cache_read_tokens=27520,
        cache_write_tokens=5430,
        session_id="2c4e6a80-1b3d-4f5a-8c7e-9d0f1a2b3c4d",
    )
    assert out.usage == expected
    assert usage_so_far(partial) == expected
    assert usage_so_far(lines[0]) is None  # only the init event: nothing spent yet


def test_gemini_json_with_cached_tokens_and_two_models() -> None:
    out = parsed("gemini.json")
    assert out.agent == "gemini" and not out.is_error
    assert out.content == "Shipments stall at customs: the broker files the forms a day late."
    # input excludes the cached prompt tokens; thoughts are output
    assert out.usage == Usage(
        model="gemini-2.5-pro",
        input_tokens=(24939 - 21263) + 1210,
        output_tokens=420 + 654 + 12 + 68,
        cache_read_tokens=21263,
        session_id="c0a3f1e2-7b64-4d19-a8e5-3f2b1c0d9e87",
    )
    # older versions print no "input": computed from prompt - cached
    value = json.loads(sample("gemini.json"))
    for entry in value["stats"]["models"].values():
        del entry["tokens"]["input"]
    assert normalize(value) == out.usage


def test_gemini_errors() -> None:
    out = parsed("gemini_error.json")
    assert out.is_error and out.error is not None and out.error.startswith("Reached max session")
    assert out.usage == Usage(session_id="7d2e9c41-5a36-4b80-9f1c-e2d3c4b5a697")
    out = parse_agent_output('{"error": {"type": "Error", "message": "quota exceeded"}}')
    assert out is not None and out.agent == "gemini" and out.error == "quota exceeded"


def test_gemini_stream_json() -> None:
    out = parsed("gemini_stream.jsonl")
    assert out.agent == "gemini" and out.content == "Shipments stall at customs."
    assert out.usage == Usage(
        model="gemini-2.5-pro",
        input_tokens=3676,
        output_tokens=420 + 654,  # total - input_tokens - output_tokens: the thoughts
        cache_read_tokens=21263,
        session_id="c0a3f1e2-7b64-4d19-a8e5-3f2b1c0d9e87",
    )
    failed = sample("gemini_stream.jsonl").replace(
        '"status":"success"',
        '"status":"error","error":{"type":"MaxSessionTurnsError","message":"Maximum session'
        ' turns exceeded"}',
    )
    out = parse_agent_output(failed)
    assert out is not None and out.is_error and out.error == "Maximum session turns exceeded"
    assert out.usage is not None and out.usage.cache_read_tokens == 21263


def test_codex_two_turns_are_summed() -> None:
    out = parsed("codex.jsonl")
    assert out.agent == "codex" and not out.is_error
    assert out.content == "Shipments stall at customs: the broker files the forms a day late."
    assert out.usage == Usage(
        input_tokens=(24763 - 24448) + (25310 - 24832),  # cached ones are included
        output_tokens=122 + 98,
        cache_read_tokens=24448 + 24832,
        session_id="0199a213-81c0-7800-8aa1-bbab2a035a53",
        turns=2,
    )


def test_codex_failures() -> None:
    out = parsed("codex_failed.jsonl")
    assert out.is_error and out.error is not None and "context window" in out.error
    assert out.usage == Usage(
        input_tokens=4000,
        output_tokens=300,
        cache_read_tokens=8000,
        session_id="0199a214-0d3e-7c21-9b44-5e6f7a8b9c0d",
        turns=2,
    )
    only_error = parse_agent_output('{"type": "error", "message": "unauthorized"}\n')
    assert only_error is not None and only_error.agent == "codex"
    assert only_error.is_error and only_error.error == "unauthorized"
    # a stream error that a completed turn follows (a retry) is no failure
    retried = '{"type":"error","message":"reconnecting 1/5"}\n{"type":"turn.completed","usage":{}}'
    out = parse_agent_output(retried)
    assert out is not None and not out.is_error and out.usage == Usage(turns=1)
    lines = sample("codex.jsonl").splitlines(keepends=True)
    first_turn = usage_so_far("".join(lines[:8]) + '{"type":"item.comp')
    assert first_turn == Usage(
        input_tokens=315, output_tokens=122, cache_read_tokens=24448, turns=1
    ) + Usage(session_id="0199a213-81c0-7800-8aa1-bbab2a035a53")


def test_our_own_object() -> None:
    text = json.dumps(
        {
            "content": "answer",
            "sources": ["a.md:1"],
            "usage": {"prompt_tokens": 100, "completion_tokens": 7},
            "cost_usd": "0.01",
            "model": "gpt-4o",
            "data": {"k": 1},
            "other": "ignored",
        }
    )
    out = parse_agent_output(text)
    assert out is not None and out.agent == "object" and out.structured
    assert out.content == "answer" and out.data == {"k": 1}
    assert out.fields is not None and set(out.fields) == {"content", "sources", "usage", "data"}
    assert out.usage == Usage(
        model="gpt-4o", input_tokens=100, output_tokens=7, cost_usd=0.01, cost_source=REPORTED
    )
    legacy = parse_agent_output('{"result": "x", "usage": {"input_tokens": 3}}')
    assert legacy is not None and legacy.content == "x" and legacy.usage == Usage(input_tokens=3)
    unknown = parse_agent_output('{"usage": {"tokens": 3}}')
    assert unknown is not None and unknown.usage is None
    assert unknown.fields == {"usage": {"tokens": 3}}
    assert parse_agent_output('{"type": "message", "content": "hi"}') == AgentOutput(
        "object", content="hi", fields={"content": "hi"}
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain text\n",
        "[1, 2]",
        '{"answer": 42}',
        '{"response": "hi", "confidence": 0.9}',  # not only Gemini's keys
        "{not json}",
        '{"type": "thread.started", "thread_id": "t"}\nnot json\n',
        '{"a": 1}\n{"b": 2}\n',
        "[" * 100_000 + "]" * 100_000,
        "{" + '"a":' * 5000,
    ],
)
def test_other_output_is_not_recognized(text: str) -> None:
    assert parse_agent_output(text) is None


# -- providers' usage objects --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (  # Anthropic Messages: input excludes the cache
            {
                "input_tokens": 12,
                "output_tokens": 30,
                "cache_read_input_tokens": 500,
                "cache_creation_input_tokens": 40,
                "cache_creation": {"ephemeral_5m_input_tokens": 40},
            },
            Usage(input_tokens=12, output_tokens=30, cache_read_tokens=500, cache_write_tokens=40),
        ),
        (  # OpenAI Chat Completions: prompt includes the cached tokens
            {
                "prompt_tokens": 2006,
                "completion_tokens": 300,
                "total_tokens": 2306,
                "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 64},
            },
            Usage(input_tokens=86, output_tokens=300, cache_read_tokens=1920),
        ),
        (  # OpenAI Responses API
            {
                "input_tokens": 328,
                "input_tokens_details": {"cached_tokens": 128},
                "output_tokens": 52,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 380,
            },
            Usage(input_tokens=200, output_tokens=52, cache_read_tokens=128),
        ),
        (  # Gemini API usageMetadata: thoughts are output, tool prompts input
            {
                "promptTokenCount": 1000,
                "candidatesTokenCount": 50,
                "cachedContentTokenCount": 800,
                "thoughtsTokenCount": 120,
                "toolUsePromptTokenCount": 10,
                "totalTokenCount": 1180,
            },
            Usage(input_tokens=210, output_tokens=170, cache_read_tokens=800),
        ),
        (  # the same from the google-genai Python SDK
            {"prompt_token_count": 1000, "candidates_token_count": 50, "thoughts_token_count": 5},
            Usage(input_tokens=1000, output_tokens=55),
        ),
        (  # Codex
            {"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 122},
            Usage(input_tokens=315, output_tokens=122, cache_read_tokens=24448),
        ),
        (  # Bedrock Converse
            {"inputTokens": 9, "outputTokens": 4, "cacheWriteInputTokens": 7, "totalTokens": 20},
            Usage(input_tokens=9, output_tokens=4, cache_write_tokens=7),
        ),
        (  # a response object around its usage
            {"model": "gpt-4o-2024-08-06", "usage": {"prompt_tokens": 9, "completion_tokens": 1}},
            Usage(model="gpt-4o-2024-08-06", input_tokens=9, output_tokens=1),
        ),
        (  # a Gemini API response
            {"modelVersion": "gemini-2.5-flash", "usageMetadata": {"promptTokenCount": 4}},
            Usage(model="gemini-2.5-flash", input_tokens=4),
        ),
        (  # the plain object of a handler: usage plus cost, model, session, turns
            {
                "usage": {"input_tokens": 1, "output_tokens": 2},
                "cost_usd": 0.5,
                "model": "m",
                "session_id": "s",
                "turns": "3",
            },
            Usage("m", 1, 2, cost_usd=0.5, cost_source=REPORTED, session_id="s", turns=3),
        ),
        (  # cached more than the prompt (garbage): clamped, never negative
            {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}},
            Usage(cache_read_tokens=9),
        ),
        (  # numbers in strings are accepted, bad ones ignored
            {"input_tokens": "12", "output_tokens": "1e2", "cache_read_tokens": "many"},
            Usage(input_tokens=12, output_tokens=100),
        ),
    ],
)
def test_normalize_provider_shapes(value: dict[str, Any], expected: Usage) -> None:
    assert normalize(value) == expected


@pytest.mark.parametrize(
    "bad", [-1, 1.5, math.nan, math.inf, -math.inf, True, False, 10**30, "1" * 40, None, [3]]
)
def test_bad_numbers_are_ignored(bad: Any) -> None:
    value = {"input_tokens": bad, "output_tokens": 2, "turns": bad}
    assert normalize(value) == Usage(output_tokens=2)
    if bad != 1.5:  # a fine cost
        assert normalize({"output_tokens": 2, "cost_usd": bad}) == Usage(output_tokens=2)


def test_normalize_gives_none_for_nothing_known() -> None:
    for value in (None, 3, "usage", [], {}, {"tokens": 3}, Usage(), {"model": ""}):
        assert normalize(value) is None

    class Hostile(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError("no")

        def __iter__(self) -> Iterator[str]:
            return iter(["input_tokens"])

        def __len__(self) -> int:
            return 1

    assert normalize(Hostile()) is None
    assert normalize({"model": "\ud800", "input_tokens": 1}) == Usage(input_tokens=1)


def test_canonical_round_trip_and_compact_dict() -> None:
    full = Usage("m", 1, 2, 3, 4, 0.25, COMPUTED, "s", 5)
    assert full.to_dict() == {
        "model": "m",
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_read_tokens": 3,
        "cache_write_tokens": 4,
        "cost_usd": 0.25,
        "cost_source": "computed",
        "session_id": "s",
        "turns": 5,
    }
    assert Usage.from_dict(full.to_dict()) == full == normalize(full.to_dict())
    assert Usage(input_tokens=7, turns=0, cost_usd=0.0).to_dict() == {
        "input_tokens": 7,
        "cost_usd": 0.0,
        "turns": 0,
    }
    assert Usage().to_dict() == {} and Usage().is_empty and not Usage(turns=0).is_empty
    assert Usage.from_dict({"cost_usd": 1, "cost_source": "guessed"}).cost_source == REPORTED
    assert Usage.from_dict({"cost_source": "computed"}) == Usage()
    assert full.tokens == 10


usages = st.builds(
    Usage,
    model=st.none() | st.sampled_from(["a", "b"]),
    input_tokens=st.integers(0, 10**9),
    output_tokens=st.integers(0, 10**9),
    cache_read_tokens=st.integers(0, 10**9),
    cache_write_tokens=st.integers(0, 10**9),
    cost_usd=st.none() | st.floats(0, 1e6),
    session_id=st.none() | st.sampled_from(["s1", "s2"]),
    turns=st.none() | st.integers(0, 100),
).map(lambda u: Usage.from_dict(u.to_dict()))  # a cost gets its source

KEYS = [
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cached_input_tokens",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
    "input_tokens_details",
    "cached_tokens",
    "promptTokenCount",
    "candidatesTokenCount",
    "cachedContentTokenCount",
    "thoughtsTokenCount",
    "inputTokens",
    "outputTokens",
    "costUSD",
    "cost_usd",
    "total_cost_usd",
    "model",
    "usage",
    "modelUsage",
    "stats",
    "models",
    "tokens",
    "prompt",
    "cached",
    "candidates",
    "thoughts",
    "input",
    "total_tokens",
    "turns",
    "num_turns",
    "session_id",
    "cost_source",
]
garbage = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["12", "-3", "1e400", "nan", "inf", "0x10", " 7 "]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=25,
)


def _sane(usage: Usage) -> None:
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        count = getattr(usage, name)
        assert isinstance(count, int) and not isinstance(count, bool) and count >= 0
    assert usage.turns is None or usage.turns >= 0
    if usage.cost_usd is not None:
        assert math.isfinite(usage.cost_usd) and usage.cost_usd >= 0
        assert usage.cost_source in (REPORTED, COMPUTED)
    json.dumps(usage.to_dict(), allow_nan=False)


@given(garbage)
def test_normalize_never_raises_nor_invents_bad_numbers(value: Any) -> None:
    usage = normalize(value)
    if usage is not None:
        assert not usage.is_empty
        _sane(usage)


@given(garbage)
def test_parse_agent_output_never_raises(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, indent=1), str(value)):
        out = parse_agent_output(text)
        if out is not None and out.usage is not None:
            _sane(out.usage)
        usage_so_far(text)


@given(usages)
def test_to_dict_round_trips(usage: Usage) -> None:
    assert Usage.from_dict(usage.to_dict()) == usage
    assert normalize(usage.to_dict()) == (None if usage.is_empty else usage)


@given(usages, usages, usages)
def test_combine_adds_tokens_and_is_associative(a: Usage, b: Usage, c: Usage) -> None:
    ab = a + b
    assert ab.tokens == a.tokens + b.tokens
    assert (ab + c).tokens == (a + (b + c)).tokens
    assert ((ab + c).turns is None) == (a.turns is None and b.turns is None and c.turns is None)
    _sane(ab + c)


def test_combine_rules() -> None:
    a = Usage("m", 1, 2, cost_usd=0.5, cost_source=REPORTED, session_id="s1", turns=2)
    b = Usage("m", 10, 20, 30, 40, session_id="s2", turns=None)
    assert a + b == Usage("m", 11, 22, 30, 40, 0.5, REPORTED, "s2", 2)  # the known cost
    c = Usage("other", cost_usd=0.25, cost_source=COMPUTED, turns=1)
    assert (a + c).model == MIXED
    assert (a + c).cost_usd == 0.75 and (a + c).cost_source == COMPUTED
    assert (a + c).session_id == "s1" and (a + c).turns == 3  # last known session
    assert Usage() + a == a == a + Usage()
    assert total([a, b, c]) == a + b + c and total([]) == Usage()
    with pytest.raises(TypeError):
        a + 1  # type: ignore[operator]


# -- prices ------------------------------------------------------------------

PRICES = {
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
    "claude-sonnet-4-5-20250929": {"input": 3, "output": 15},
    "claude": {"input": 1, "output": 1},
    "gpt-4o": {"input": 2.5, "output": 10.0, "cache_read": 1.25},
}


def test_price_lookup_exact_then_longest_prefix() -> None:
    table = PriceTable.from_mapping(PRICES)
    assert len(table) == 4
    exact = table.lookup("claude-sonnet-4-5-20250929")
    assert exact == Price(3.0, 15.0, 3.0, 3.0)  # cache prices default to input
    assert table.lookup("claude-sonnet-4-5[1m]") == Price(3.0, 15.0, 0.3, 3.75)
    assert table.lookup("claude-sonnet-4-5-20991231") == Price(3.0, 15.0, 0.3, 3.75)
    assert table.lookup("claude-opus-4-1") == Price(1, 1)
    assert table.lookup("gpt-4o-mini") == Price(2.5, 10.0, 1.25)  # configure it to differ
    for unpriced in ("gemini-2.5-pro", "", None, MIXED):
        assert table.lookup(unpriced) is None
    assert table.lookup("claude-opus-4-1") is table.lookup("claude-opus-4-1")  # remembered


def test_apply_computes_unknown_costs_only() -> None:
    table = PriceTable.from_mapping(PRICES)
    usage = Usage("claude-sonnet-4-5-20991231", 1_000_000, 100_000, 2_000_000, 10_000)
    priced = table.apply(usage)
    assert priced.cost_source == COMPUTED
    assert priced.cost_usd == pytest.approx(3.0 + 1.5 + 0.6 + 0.0375)
    dated = table.apply(Usage(SONNET + "-x", cache_read_tokens=1_000_000))
    assert dated.cost_usd == pytest.approx(3.0)  # the longer (dated) entry's default
    reported = Usage(SONNET, 1000, cost_usd=0.0, cost_source=REPORTED)
    assert table.apply(reported) is reported  # never overridden, even when 0
    assert table.apply(Usage("gemini-2.5-pro", 1000)) == Usage("gemini-2.5-pro", 1000)
    assert table.apply(Usage(SONNET)) == Usage(SONNET)  # no tokens: nothing to price
    assert table.apply(Usage(input_tokens=5)).cost_usd is None  # no model
    codex = parsed("codex.jsonl").usage
    assert codex is not None and table.apply(codex) == codex
    assert PriceTable().apply(usage) is usage


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ([], "prices must be a table"),
        ({"m": 3}, "prices.m: expected a table"),
        ({"m": {"input": 1}}, "prices.m: missing 'output'"),
        ({"m": {"input": 1, "output": 2, "cache-read": 1}}, "unknown key 'cache-read'"),
        ({"m": {"input": -1, "output": 2}}, "prices.m.input must be a finite number >= 0"),
        ({"m": {"input": 1, "output": "2"}}, "prices.m.output must be a number"),
        ({"m": {"input": True, "output": 2}}, "prices.m.input must be a number"),
        ({"m": {"input": 1, "output": 2, "cache_write": math.nan}}, "cache_write must be"),
        ({"": {"input": 1, "output": 2}}, "invalid model name"),
    ],
)
def test_price_config_errors_are_one_line(prices: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        PriceTable.from_mapping(prices)
    assert message in str(info.value) and "\n" not in str(info.value)


# -- the meter -----------------------------------------------------------------


def test_spend_outside_metering_is_a_no_op() -> None:
    spend(Usage(input_tokens=5))
    with metering() as meter:
        spend(None)
        spend({"tokens": 3})
        assert meter.spent is None
    spend(Usage(input_tokens=5))
    assert meter.spent is None


async def test_metering_async_tasks_and_nesting() -> None:
    async def handler() -> None:
        spend({"input_tokens": 10, "cost_usd": 0.1})
        await asyncio.sleep(0)
        await asyncio.create_task(child())  # a task copies the context: same meter
        raise RuntimeError("agent failed")

    async def child() -> None:
        spend(Usage(output_tokens=5))

    with metering() as outer:
        with metering() as inner, pytest.raises(RuntimeError):
            await handler()
        spend(Usage(input_tokens=1))
    assert inner.spent == Usage(
        input_tokens=10, output_tokens=5, cost_usd=0.1, cost_source=REPORTED
    )
    assert outer.spent == inner.spent + Usage(input_tokens=1)


async def test_metering_survives_a_timeout() -> None:
    async def slow() -> None:
        spend(Usage(input_tokens=3))
        await asyncio.sleep(10)

    with metering() as meter, pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await slow()
    assert meter.spent == Usage(input_tokens=3)


async def test_sync_handlers_in_the_pool_reach_the_meter() -> None:
    threads: set[int] = set()

    def handler(task: Task) -> dict[str, Any]:
        threads.add(threading.get_ident())
        spend(Usage(input_tokens=2, turns=1))
        if task.text == "fail":
            raise RuntimeError("failed")
        return {"content": "ok", "usage": Usage(output_tokens=4, model="m")}

    wrapped = CallableHandler(handler)
    with metering() as meter:
        result = await wrapped(Task("s", "ok"), None)
        with pytest.raises(RuntimeError):
            await wrapped(Task("s", "fail"), None)
    assert threading.get_ident() not in threads
    assert result.usage == {"model": "m", "output_tokens": 4}
    assert meter.spent == Usage(input_tokens=4, turns=2)


async def test_threads_add_safely() -> None:
    def work() -> None:
        for _ in range(1000):
            spend(Usage(input_tokens=1))

    with metering() as meter:
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(None, contextvars.copy_context().run, work) for _ in range(8))
        )
    assert meter.spent == Usage(input_tokens=8000)


def test_to_result_takes_usage_objects() -> None:
    usage = Usage("m", 1, cost_usd=0.5, cost_source=REPORTED)
    assert to_result({"content": "x", "usage": usage}).usage == usage.to_dict()
    assert to_result({"content": "x", "usage": Usage()}).usage is None
    given_result = Result("x", usage=usage)  # type: ignore[arg-type]
    assert to_result(given_result) == Result("x", usage=usage.to_dict())
    assert to_result({"content": "x", "usage": {"tokens": 3}}).usage == {"tokens": 3}
