"""What makes a task valid, on both sides of the stream.

Consumers: ``task_from_body`` turns a decoded body into a ``Task`` or raises
``MalformedEntry`` with a reason a person can act on (docs/protocol.md §3); it never
raises anything else, whatever the body holds. Producers: ``check_task`` refuses a
task that no worker could run (``InvalidTask``), before it is posted.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from swarmstream.errors import InvalidTask, MalformedEntry
from swarmstream.models import DEFAULT_MAX_ATTEMPTS, Task

MAX_ID_LEN = 200
INT64 = 2**63
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_STANDARD = frozenset(("id", "spec", "text", "max_attempts", "created"))
#: a JSON escape of a UTF-16 surrogate (``\\uD800``-``\\uDFFF``): only bodies holding
#: one can decode to a string that is not valid Unicode
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def has_lone_surrogate(text: str) -> bool:
    """True for a str that cannot be encoded as UTF-8 (a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_string(value: Any, depth: int = 0) -> bool:
    """True if ``value`` holds, anywhere, a string that is not valid Unicode."""
    if isinstance(value, str):
        return has_lone_surrogate(value)
    if depth > 200:  # the decoders' nesting limits are far below this
        return False
    if isinstance(value, dict):
        return any(_bad_string(k, depth + 1) or _bad_string(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_bad_string(v, depth + 1) for v in value)
    return False


def check_unicode(body: dict[Any, Any]) -> None:
    """Refuse a body with a lone surrogate, naming the top-level field that holds it."""
    for name, value in body.items():
        if _bad_string(name) or _bad_string(value):
            field = name if isinstance(name, str) and not has_lone_surrogate(name) else "?"
            raise MalformedEntry(
                f"field {field!r} holds a string that is not valid Unicode (lone surrogate)",
                task_id=_id_of(body),
            )


def _id_of(body: dict[Any, Any]) -> str | None:
    value = body.get("id")
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LEN and not has_lone_surrogate(value):
        return value
    return None


def _typed(body: dict[Any, Any], name: str, types: tuple[type, ...], default: Any) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in types)
        raise MalformedEntry(
            f"field {name!r} must be {expected}, got {type(value).__name__}", task_id=_id_of(body)
        )
    return value


def _finite(body: dict[Any, Any], name: str, what: str) -> float | None:
    """A number field as a finite float (ints of any size are checked first)."""
    value = _typed(body, name, (int, float), None)
    if value is None:
        return None
    number = math.inf if isinstance(value, int) and abs(value) >= INT64 else float(value)
    if not math.isfinite(number):
        raise MalformedEntry(f"field {name!r} must be {what}", task_id=_id_of(body))
    return number


def task_from_body(body: dict[Any, Any], spec: str, attempt: int = 1) -> Task:
    """The task a decoded body describes, or MalformedEntry with the reason."""
    # Fast path: the body exactly as encode_task writes it without optional fields
    # (the common case); the same checks, inlined. Anything else takes the full path.
    if body.keys() == _STANDARD:
        task_id, text, max_attempts, created = (
            body["id"],
            body["text"],
            body["max_attempts"],
            body["created"],
        )
        if (
            type(task_id) is str
            and 0 < len(task_id) <= MAX_ID_LEN
            and type(text) is str
            and body["spec"] == spec
            and type(max_attempts) is int
            and 1 <= max_attempts <= 1000
            and type(created) is float
            and 0 < created < 1e300  # also refuses NaN and infinities
        ):
            return Task(spec, text, task_id, None, None, 0, attempt, max_attempts, None, created)
    return _task_full(body, spec, attempt)


def _task_full(body: dict[Any, Any], spec: str, attempt: int) -> Task:
    task_id = body.get("id")
    if not isinstance(task_id, str) or not task_id or len(task_id) > MAX_ID_LEN:
        raise MalformedEntry("missing or invalid field 'id' (a string of 1-200 characters)")
    if "text" not in body:
        raise MalformedEntry("missing field 'text'", task_id=task_id)
    text = _typed(body, "text", (str,), "")
    body_spec = body.get("spec")
    if body_spec is not None and body_spec != spec:
        raise MalformedEntry(f"field 'spec' is {body_spec!r} but the stream is {spec!r}", task_id)
    shard = _typed(body, "shard", (str,), None)
    if shard and not _NAME.match(shard):
        raise MalformedEntry(
            "field 'shard' must be a shard name (1-64 letters, digits, '.', '_' or '-')", task_id
        )
    pass_no = _typed(body, "pass", (int,), 0)
    if not -INT64 <= pass_no < INT64:
        raise MalformedEntry("field 'pass' must be an integer that fits in 64 bits", task_id)
    max_attempts = _typed(body, "max_attempts", (int,), DEFAULT_MAX_ATTEMPTS)
    if not 1 <= max_attempts <= 1000:
        raise MalformedEntry("field 'max_attempts' must be between 1 and 1000", task_id)
    timeout = _finite(body, "timeout", "a positive number of seconds")
    if timeout is not None and timeout <= 0:
        raise MalformedEntry("field 'timeout' must be a positive number of seconds", task_id)
    created = _finite(body, "created", "a finite number (Unix seconds)") or 0.0
    return Task(
        spec=spec,
        text=text,
        id=task_id,
        data=body.get("data"),
        shard=shard or None,
        pass_no=pass_no,
        attempt=attempt,
        max_attempts=max_attempts,
        timeout=timeout,
        created=created or time.time(),
    )


def check_task(task: Task) -> None:
    """Refuse, before it is posted, a task no worker could run (InvalidTask)."""
    t = task
    problem = None
    if not isinstance(t.id, str) or not 0 < len(t.id) <= MAX_ID_LEN:
        problem = f"id must be a string of 1-200 characters, got {t.id!r:.60}"
    elif not isinstance(t.spec, str) or not _NAME.match(t.spec):
        problem = f"spec {t.spec!r} is not a valid name"
    elif not isinstance(t.text, str):
        problem = f"text must be a str, got {type(t.text).__name__}"
    elif isinstance(t.max_attempts, bool) or not isinstance(t.max_attempts, int):
        problem = f"max_attempts must be an integer, got {t.max_attempts!r}"
    elif not 1 <= t.max_attempts <= 1000:
        problem = f"max_attempts must be between 1 and 1000, got {t.max_attempts}"
    elif t.timeout is not None and not _positive(t.timeout):
        problem = f"timeout must be a positive number of seconds, got {t.timeout!r}"
    elif t.shard is not None and (not isinstance(t.shard, str) or not _NAME.match(t.shard)):
        problem = f"shard {t.shard!r} is not a valid name"
    elif isinstance(t.pass_no, bool) or not isinstance(t.pass_no, int):
        problem = f"pass_no must be an integer, got {t.pass_no!r}"
    elif not -INT64 <= t.pass_no < INT64:
        problem = "pass_no must fit in 64 bits"
    elif not _number(t.created):
        problem = f"created must be a finite number, got {t.created!r:.60}"
    if problem is not None:
        raise InvalidTask(f"invalid task: {problem}")


def _number(value: Any) -> bool:
    """A finite int or float (not a bool) that msgpack and JSON can carry."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < INT64
    return isinstance(value, float) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _number(value) and value > 0
