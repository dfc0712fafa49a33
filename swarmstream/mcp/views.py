"""JSON shapes of what the MCP tools return (plain dicts, JSON-ready)."""

from __future__ import annotations

from typing import Any

from swarmstream import codec
from swarmstream.errors import MalformedEntry
from swarmstream.mcp.ledger import Held
from swarmstream.models import DeadLetter, Task
from swarmstream.shard.scatter import Answer


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


def dead_letter(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter, with the task it carried when its original entry decodes."""
    task: Task | None
    try:
        fields = {k.encode(): v for k, v in letter.fields.items()}
        task = codec.decode_task(letter.spec, fields)[0]
    except MalformedEntry:
        task = None
    return {
        "entry_id": letter.entry_id,
        "spec": letter.spec,
        "task_id": letter.task_id,
        "reason": letter.reason,
        "error": letter.error,
        "attempts": letter.attempts,
        "worker": letter.worker,
        "ts": letter.ts,
        "origin_id": letter.origin_id,
        "text": task.text if task else None,
        "data": task.data if task else None,
        "shard": task.shard if task else None,
    }


def answer(a: Answer) -> dict[str, Any]:
    """The merged answer of ``ask`` (the ``swarmstream ask --json`` shape, plus text)."""
    return {
        "question": a.question,
        "answered": list(a.answered),
        "missing": list(a.missing),
        "passages": [
            {"source": p.source, "line": p.line, "shard": p.shard, "score": p.score, "text": p.text}
            for p in a.passages
        ],
        "text": a.text,
    }
