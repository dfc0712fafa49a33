"""Shard-level answers end to end: every shard's worker answers from its own context,
the answers are verified against the context versions they came from, and merged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from swarmstream.answers.citations import CitationChecker
from swarmstream.answers.merge import MergedAnswer, merge_answers
from swarmstream.answers.shard_answers import ShardAnswer, parse_answer, verify_answers
from swarmstream.answers.tasks import answer_tasks
from swarmstream.client import Swarm
from swarmstream.models import DEFAULT_MAX_ATTEMPTS, Finding

#: Extra seconds allowed for Redis replies in flight at the deadline.
GRACE = 0.5


async def ask_shards(
    swarm: Swarm,
    question: str,
    shards: Sequence[str],
    spec: str,
    deadline: float,
    *,
    checker: CitationChecker | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timeout: float | None = None,
) -> MergedAnswer:
    """Ask each shard's worker of ``spec`` for an answer object (``answer_tasks``), wait
    up to ``deadline`` seconds, then check every answer's citations against its
    shard's context version and merge them (``merge_answers``).

    Shards with no finding in time, or a failed one, are ``missing`` with the reason;
    the wait ends within ``deadline`` plus a fraction of a second, and the checks
    then read contexts that the prompts already fetched (same ``checker``).
    ``timeout`` is each task's handler time limit."""
    if not shards:
        raise ValueError("ask_shards needs at least one shard")
    checker = checker or CitationChecker.of(swarm)
    end = time.monotonic() + max(0.0, deadline)
    ids = list(dict.fromkeys(shards))
    found: dict[str, Finding] = {}
    tasks = []
    try:
        async with asyncio.timeout(_left(end) + GRACE):
            tasks = await answer_tasks(
                swarm,
                question,
                ids,
                spec,
                checker=checker,
                max_attempts=max_attempts,
                timeout=timeout,
            )
            await swarm.submit_many(tasks)
            found = await swarm.wait_many(tasks, timeout=_left(end))
    except TimeoutError:
        pass  # Redis too slow: whatever did not arrive in time is missing
    missing: dict[str, str] = {}
    answers: list[ShardAnswer] = []
    by_shard = {t.shard: t for t in tasks}
    for shard in ids:
        task = by_shard.get(shard)
        f = found.get(task.id) if task is not None else None
        if f is None:
            missing[shard] = f"no answer within {deadline:g}s"
        elif not f.ok:
            missing[shard] = f"failed: {f.error or f.status.value}"
        else:
            answers.append(parse_answer(f, shard=shard, task=task))
    verified = await verify_answers(answers, checker)
    return merge_answers(question, verified, missing=missing)


def _left(end: float) -> float:
    return max(0.0, end - time.monotonic())
