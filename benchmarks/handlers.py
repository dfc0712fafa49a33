"""Handlers the benchmarks load into worker processes (``benchmarks.handlers:NAME``)."""

from __future__ import annotations

from typing import Any

from swarmstream import Task

#: what a typical LLM call reports: a model, tokens of every kind and a cost
USAGE = {
    "model": "claude-sonnet-4-5-20250929",
    "input_tokens": 1200,
    "output_tokens": 300,
    "cache_read_tokens": 20000,
    "cache_write_tokens": 500,
    "cost_usd": 0.0123,
}


def plain(task: Task) -> dict[str, Any]:
    """A no-op that returns its finding as a dict, without usage."""
    return {"content": task.text}


def with_usage(task: Task) -> dict[str, Any]:
    """The same no-op, reporting usage: the worker normalizes it, writes it into the
    finding and adds it to the spec's totals in the completion's Lua step."""
    return {"content": task.text, "usage": USAGE}
