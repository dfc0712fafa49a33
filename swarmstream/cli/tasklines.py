"""Task lines, as ``swarmstream submit SPEC --file FILE`` reads them: one JSON object
per line, every line checked before any task is posted.

A line's fields::

    {"text": "...", "data": {...}, "shard": "alpha", "id": "t-17",
     "max_attempts": 5, "timeout": 600, "spec": "analysis"}

Only ``text`` is required. A field a line leaves out comes from the command's flag
(``--shard``, ``--data``, ``--max-attempts``, ``--timeout``; SPEC for ``spec``), then
from the spec's ``[specs.<spec>]`` table of the config file, then from the defaults
(a new task id, ``DEFAULT_MAX_ATTEMPTS``, no timeout). Blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from swarmstream.codec import encode_task
from swarmstream.errors import ConfigError, InvalidTask
from swarmstream.keys import validate_name
from swarmstream.models import DEFAULT_MAX_ATTEMPTS, Task, new_task_id
from swarmstream.settings import Settings

FIELDS = ("text", "data", "shard", "id", "max_attempts", "timeout", "spec")


@dataclass(frozen=True, slots=True)
class Flags:
    """What the command line gives the lines that leave a field out (None: nothing)."""

    spec: str
    shard: str | None = None
    data: Any = None
    max_attempts: int | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class TaskLine:
    """A line that is a valid task, with its line number (1-based)."""

    number: int
    task: Task


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not: its number and why, in words a person can act on."""

    number: int
    reason: str


def read_lines(
    lines: Iterable[bytes], flags: Flags, settings: Settings
) -> tuple[list[TaskLine], list[BadLine]]:
    """Check every line: the tasks of the good ones, and the bad ones with reasons.

    A task id may appear once in a file (its finding is found by that id)."""
    good: list[TaskLine] = []
    bad: list[BadLine] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            task = _task(raw, flags, settings)
            if task.id in seen:
                raise ConfigError(f"id {task.id!r} is also on line {seen[task.id]}")
        except (ConfigError, InvalidTask) as exc:
            bad.append(BadLine(number, str(exc)))
            continue
        seen[task.id] = number
        good.append(TaskLine(number, task))
    return good, bad


def _task(raw: bytes, flags: Flags, settings: Settings) -> Task:
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        kind = (
            "an array"
            if isinstance(obj, list)
            else "a string"
            if isinstance(obj, str)
            else "a scalar"
        )
        raise ConfigError(f'expected a JSON object such as {{"text": "..."}}, got {kind}')
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    text = obj.get("text")
    if not isinstance(text, str):
        raise ConfigError('"text" (a string) is required')
    spec = _name(obj, "spec", flags.spec)
    defaults = settings.spec(spec)
    shard = _name(obj, "shard", flags.shard)
    task_id = obj.get("id", None)
    if task_id is not None and not isinstance(task_id, str):
        raise ConfigError(f'"id" must be a string, got {task_id!r:.60}')
    max_attempts = _first(obj, "max_attempts", flags.max_attempts, defaults.max_attempts)
    task = Task(
        spec=spec,
        text=text,
        id=task_id or new_task_id(),
        data=obj.get("data", flags.data),
        shard=shard,
        max_attempts=DEFAULT_MAX_ATTEMPTS if max_attempts is None else max_attempts,
        timeout=_first(obj, "timeout", flags.timeout, defaults.timeout),
    )
    encode_task(task)  # what posting it would refuse (InvalidTask), refused now
    return task


def _name(obj: dict[str, Any], field: str, default: str | None) -> Any:
    value = obj.get(field, default)
    if value is not None:
        if not isinstance(value, str):
            raise ConfigError(f'"{field}" must be a string, got {value!r:.60}')
        validate_name(field, value)
    return value


def _first(obj: dict[str, Any], field: str, *fallbacks: Any) -> Any:
    """The line's value of ``field`` (null counts as left out), else the first
    fallback that is set."""
    if obj.get(field) is not None:
        return obj[field]
    return next((f for f in fallbacks if f is not None), None)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
