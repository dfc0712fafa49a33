"""The seed's JSON-lines bus format: one JSON object per line.

A query::

    {"type": "query", "from": "planner", "to": "research", "question": "...",
     "context_file": "notes/q3.md", "timestamp": "2025-01-01T12:00:00+00:00"}

and a response::

    {"type": "response", "from": "research", "to": "planner", "answer": "...",
     "sources": ["docs/ops.md:12-18"], "timestamp": ..., "re": "<id of what it answers>"}

The bridge adds an ``id`` to the query lines it writes, and a ``re`` to its response
lines; a response to one of its queries names that id in ``re`` (or ``id``). Other
``type`` values are other conversations on the bus, left alone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from swarmstream.validate import has_lone_surrogate

QUERY, RESPONSE = "query", "response"
_CITATION = re.compile(r"^(?P<file>.+):(?P<first>\d+)(?:-(?P<last>\d+))?$")


class BadLine(ValueError):
    """A line that is not a message of the bus (reported and skipped)."""


@dataclass(frozen=True, slots=True)
class Query:
    sender: str
    to: str | None
    question: str
    context_file: str | None
    timestamp: Any
    id: str | None


@dataclass(frozen=True, slots=True)
class Response:
    sender: str | None
    to: str | None
    answer: str
    sources: tuple[str, ...]
    re: str | None


@dataclass(frozen=True, slots=True)
class Other:
    """A message of another type (or a blank line): not the bridge's business."""

    kind: str


Message = Query | Response | Other
BLANK = Other("")


def parse(data: bytes) -> Message:
    """The message a line holds; BadLine with the reason if it holds none."""
    if not data.strip():
        return BLANK
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLine(f"not UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BadLine("JSON nested too deeply") from None
    except ValueError as exc:
        raise BadLine(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadLine(f"a JSON {type(obj).__name__}, not an object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise BadLine("missing or non-string 'type'")
    if kind == QUERY:
        return _query(obj)
    if kind == RESPONSE:
        return _response(obj)
    return Other(kind)


def _query(obj: dict[str, Any]) -> Query:
    sender = _string(obj, "from", required=True)
    question = _string(obj, "question", required=True)
    assert sender is not None and question is not None
    timestamp = obj.get("timestamp")
    if timestamp is not None and (
        isinstance(timestamp, bool) or not isinstance(timestamp, str | int | float)
    ):
        raise BadLine(f"'timestamp' must be a string or a number, got {_kind(timestamp)}")
    if isinstance(timestamp, str) and has_lone_surrogate(timestamp):
        raise BadLine("'timestamp' is not valid Unicode")
    return Query(
        sender=sender,
        to=_string(obj, "to"),
        question=question,
        context_file=_string(obj, "context_file"),
        timestamp=timestamp,
        id=_string(obj, "id"),
    )


def _response(obj: dict[str, Any]) -> Response:
    answer = obj.get("answer")
    if not isinstance(answer, str) or has_lone_surrogate(answer):
        raise BadLine(f"'answer' must be a string, got {_kind(answer)}")
    sources = obj.get("sources") or []
    if not isinstance(sources, list) or not all(
        isinstance(s, str) and not has_lone_surrogate(s) for s in sources
    ):
        raise BadLine("'sources' must be a list of strings")
    return Response(
        sender=_string(obj, "from"),
        to=_string(obj, "to"),
        answer=answer,
        sources=tuple(sources),
        re=_string(obj, "re") or _string(obj, "id"),
    )


def _string(obj: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        what = "a non-empty string" if required else "a string"
        raise BadLine(f"'{name}' must be {what}, got {_kind(value)}")
    if has_lone_surrogate(value):
        raise BadLine(f"'{name}' is not valid Unicode")
    return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def citation(source: str) -> str:
    """A finding's source as ``FILE:LINE-LINE`` (``path:12`` -> ``path:12-12``);
    a source without line numbers (a URL, a title) is kept as it is."""
    m = _CITATION.match(source)
    if m is None:
        return source
    return f"{m['file']}:{m['first']}-{m['last'] or m['first']}"


def timestamp_like(original: Any) -> Any:
    """Now, in the style of ``original``: Unix seconds for a number, else ISO 8601."""
    if isinstance(original, int | float) and not isinstance(original, bool):
        return round(time.time(), 6)
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def encode(message: dict[str, Any]) -> bytes:
    """One line of the bus (compact JSON, UTF-8, newline-terminated)."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8", "backslashreplace")  # a lone surrogate, escaped


def query_line(
    *, corr: str, sender: str, to: str, question: str, context_file: str | None
) -> bytes:
    """A query line the bridge writes for a task it serves."""
    return encode(
        {
            "type": QUERY,
            "id": corr,
            "from": sender,
            "to": to,
            "question": question,
            "context_file": context_file,
            "timestamp": timestamp_like(None),
        }
    )


def response_line(
    *,
    re_id: str,
    sender: str,
    to: str,
    answer: str,
    sources: tuple[str, ...],
    original_timestamp: Any,
    error: str | None = None,
) -> bytes:
    """The response line for a query line's task: its finding, sources as citations."""
    message: dict[str, Any] = {
        "type": RESPONSE,
        "from": sender,
        "to": to,
        "answer": answer,
        "sources": [citation(s) for s in sources],
        "timestamp": timestamp_like(original_timestamp),
        "re": re_id,
    }
    if error is not None:
        message["error"] = error
    return encode(message)
