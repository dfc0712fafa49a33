"""Handlers the benchmarks load into worker processes (``benchmarks.handlers:NAME``)."""

from __future__ import annotations

import functools
import os
from typing import Any

from redis.asyncio import Redis

from swarmstream import Task, worker_redis

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


async def noop_async(task: Task) -> str:
    """An async no-op: a worker's ceiling when the handler costs nothing."""
    return task.text


@functools.cache
def _own_client() -> Any:
    """The client a handler opens for itself today (one per worker process)."""
    return Redis.from_url(os.environ["SWARMSTREAM_REDIS_URL"])


async def incr_own_client(task: Task) -> str:
    """One INCR (of the key the task's text names) through the handler's own client."""
    return str(await _own_client().incr(task.text))


async def incr_shared(task: Task) -> str:
    """The same INCR through the worker's shared, auto-pipelined connection."""
    return str(await worker_redis().execute("INCR", task.text))
