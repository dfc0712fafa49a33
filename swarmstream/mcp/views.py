"""JSON shapes of what the MCP tools return (plain dicts, JSON-ready)."""

from __future__ import annotations

from typing import Any

from swarmstream.mcp.ledger import Held
from swarmstream.models import Task
from swarmstream.shard.gather import Answer


def submitted(task: Task) -> dict[str, Any]:
    return {"task_id": task.id, "spec": task.spec, "shard": task.shard}


def claimed(held: Held, now: float) -> dict[str, Any]:
    """A claimed task as the agent works on it."""
    task = held.task
    return {
        "claimed": True,
        "task_id": task.id,
        "spec": task.spec,
        "text": task.text,
        "data": task.data,
        "shard": task.shard,
        "pass": task.pass_no,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
        "lease": held.to_json(now),
    }


def answer(a: Answer) -> dict[str, Any]:
    """The merged answer of ``ask`` (the ``swarmstream ask --json`` shape, plus text):
    ``found`` false says no shard supports an answer, and ``reason`` why."""
    return {**a.to_json(), "text": a.text}
