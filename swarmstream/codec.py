"""Wire format: stream entry fields <-> domain objects.

A task entry has one field, ``body``: a msgpack map, or a JSON object from a
foreign producer (detected by its first byte, ``{``). A finding is encoded the
way its task was, so a JSON producer reads JSON back. docs/protocol.md is the
reference for other languages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import msgpack

from swarmstream.errors import InvalidTask, MalformedEntry, UnencodableResult
from swarmstream.models import DeadLetter, Finding, Status, Task
from swarmstream.validate import (
    MAX_ID_LEN,
    SURROGATE_ESCAPE,
    check_task,
    check_unicode,
    has_lone_surrogate,
    task_from_body,
)

BODY = "body"
MSGPACK = "msgpack"
JSON = "json"
#: Default limit on the total size of one task entry's fields.
DEFAULT_MAX_ENTRY_BYTES = 1 << 20
_ORIG = "orig:"


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def pack_for_lua(obj: Any) -> bytes:
    """msgpack for Redis's Lua ``cmsgpack``, which reads bytes only as str types."""
    return msgpack.packb(obj, use_bin_type=False)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def text(value: bytes | str) -> str:
    """A Redis reply (bytes) as str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


_s = text


def safe_text(value: str) -> str:
    """``value`` made encodable as UTF-8: lone surrogates become backslash escapes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def entry_order(entry_id: str | None) -> tuple[int, int]:
    """A stream entry id (``ms-seq``) as a sortable pair; ``None`` sorts first."""
    ms, _, seq = (entry_id or "0-0").partition("-")
    return int(ms or 0), int(seq or 0)


def encode_task(task: Task) -> dict[str, bytes]:
    """Stream fields for a task (msgpack body); InvalidTask if no worker could run it."""
    check_task(task)
    body: dict[str, Any] = {
        "id": task.id,
        "spec": task.spec,
        "text": task.text,
        "max_attempts": task.max_attempts,
        "created": task.created,
    }
    if task.data is not None:
        body["data"] = task.data
    if task.shard is not None:
        body["shard"] = task.shard
    if task.pass_no:
        body["pass"] = task.pass_no
    if task.timeout is not None:
        body["timeout"] = task.timeout
    try:
        return {BODY: pack(body)}
    except Exception as exc:  # data msgpack cannot carry, a lone surrogate, deep nesting
        raise InvalidTask(
            f"invalid task: it cannot be encoded ({type(exc).__name__}: {exc})"
        ) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode_body(raw: bytes) -> tuple[Any, str]:
    """The body as Python values and its encoding; MalformedEntry and nothing else."""
    if raw[:1] in (b"{", b" ", b"\n"):
        try:
            body = json.loads(raw, parse_constant=_no_constant)
        except RecursionError:
            raise MalformedEntry("body is nested too deeply") from None
        except ValueError as exc:
            raise MalformedEntry(f"body is not valid JSON: {exc}") from None
        if isinstance(body, dict) and SURROGATE_ESCAPE.search(raw):
            check_unicode(body)
        return body, JSON
    try:
        return unpack(raw), MSGPACK
    except (msgpack.exceptions.StackError, RecursionError):
        raise MalformedEntry("body is nested too deeply") from None
    except UnicodeDecodeError:
        raise MalformedEntry("body is msgpack with a string that is not valid UTF-8") from None
    except Exception as exc:  # msgpack raises several unrelated types
        raise MalformedEntry(f"body is neither msgpack nor JSON ({type(exc).__name__})") from None


_PACKER = msgpack.Packer(use_bin_type=True)


def decode_task(
    spec: str,
    fields: dict[bytes, bytes] | None,
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    attempt: int = 1,
) -> tuple[Task, str]:
    """Decode and validate a task entry. Returns the task and its wire encoding.

    Raises MalformedEntry with a human-readable reason for anything that is not
    a valid task, including entries whose fields are missing (deleted entries).
    """
    if not fields:
        raise MalformedEntry("entry has no fields (deleted or empty)")
    raw = fields.get(b"body")
    if raw is not None and len(fields) == 1:
        size = len(raw) + 4
    else:
        size = sum(len(k) + len(v) for k, v in fields.items())
    if size > max_entry_bytes:
        raise MalformedEntry(
            f"entry is {size} bytes, over the limit of {max_entry_bytes}",
            task_id=guess_task_id(fields),
        )
    if raw is None:
        names = ", ".join(sorted(_s(k) for k in fields))
        raise MalformedEntry(f"entry has no 'body' field (fields: {names})")
    body, wire = _decode_body(raw)
    if not isinstance(body, dict):
        raise MalformedEntry(f"body must be a map/object, got {type(body).__name__}")
    return task_from_body(body, spec, attempt), wire


def wire_of(fields: dict[bytes, bytes] | None) -> str:
    """The encoding of an entry's body (for answering in kind), JSON or msgpack."""
    raw = (fields or {}).get(b"body") or b""
    return JSON if raw[:1] in (b"{", b" ", b"\n") else MSGPACK


def guess_task_id(fields: dict[bytes, bytes] | None) -> str | None:
    """Best-effort task id of a malformed entry, for its dead letter and finding."""
    raw = (fields or {}).get(b"body")
    if not raw:
        return None
    try:
        body, _ = _decode_body(raw)
    except MalformedEntry:
        return None
    task_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_ID_LEN:
        return None
    return None if has_lone_surrogate(task_id) else task_id


def finding_body(
    task: Task,
    *,
    status: str,
    content: str,
    worker: str,
    sources: Sequence[str] = (),
    usage: dict[str, Any] | None = None,
    data: Any = None,
    started: float,
    finished: float,
    error: str | None = None,
    wire: str = MSGPACK,
) -> bytes:
    """The body of a finding entry for ``task``, in the wire encoding of the task.

    The worker's hot path builds it straight from the task and the handler's result,
    without a Finding object; ``encode_finding`` gives the same bytes for a Finding."""
    return _finding_body(
        task.id,
        task.spec,
        status,
        content,
        task.shard,
        task.pass_no,
        worker,
        sources,
        usage,
        data,
        task.attempt,
        task.created,
        started,
        finished,
        error,
        wire,
    )


def encode_finding(finding: Finding, wire: str = MSGPACK) -> bytes:
    """The body of a finding entry, in the wire encoding of its task."""
    f = finding
    return _finding_body(
        f.task_id,
        f.spec,
        f.status.value,
        f.content,
        f.shard,
        f.pass_no,
        f.worker,
        f.sources,
        f.usage,
        f.data,
        f.attempt,
        f.created,
        f.started,
        f.finished,
        f.error,
        wire,
    )


def _finding_body(
    task_id: str,
    spec: str,
    status: str,
    content: str,
    shard: str | None,
    pass_no: int,
    worker: str,
    sources: Sequence[str],
    usage: dict[str, Any] | None,
    data: Any,
    attempt: int,
    created: float,
    started: float,
    finished: float,
    error: str | None,
    wire: str,
) -> bytes:
    body = {
        "task_id": task_id,
        "spec": spec,
        "status": status,
        "content": content,
        "shard": shard,
        "pass": pass_no,
        "worker": worker,
        "sources": list(sources),
        "usage": usage,
        "data": data,
        "attempt": attempt,
        "created": created,
        "started": started,
        "finished": finished,
        "duration_ms": round(max(0.0, (finished - started) * 1000.0), 3),
        "error": error,
    }
    try:
        if wire == JSON:
            text = json.dumps(body, default=str, ensure_ascii=False, allow_nan=False)
            return text.encode("utf-8")
        packed: bytes = _PACKER.pack(body)
        if usage is not None or data is not None:
            unpack(packed)  # readers must read it back (a tuple as a map key cannot be)
        return packed
    except Exception as exc:  # what a handler returned cannot be carried
        raise UnencodableResult(
            f"handler result cannot be encoded: {_culprit(body, wire)}"
            f"{type(exc).__name__}: {safe_text(str(exc))}"
        ) from None


def _culprit(body: dict[str, Any], wire: str) -> str:
    """``field 'data': `` for the first field of a finding body that fails alone."""
    for name, value in body.items():
        try:
            if wire == JSON:
                json.dumps(value, default=str, ensure_ascii=False, allow_nan=False).encode()
            else:
                unpack(msgpack.packb(value, use_bin_type=True))
        except Exception:
            return f"field {name!r}: "
    return ""


def finding_fields(finding: Finding, wire: str = MSGPACK) -> dict[str, bytes | str]:
    """Stream fields of a finding entry: plain routing fields plus the body."""
    return {
        "task_id": finding.task_id,
        "shard": finding.shard or "",
        "status": finding.status.value,
        BODY: encode_finding(finding, wire),
    }


def decode_finding(entry_id: str, fields: dict[bytes, bytes]) -> Finding:
    """Decode a finding entry (msgpack or JSON body)."""
    body, _ = _decode_body(fields[b"body"])
    return Finding(
        task_id=body["task_id"],
        spec=body["spec"],
        status=Status(body["status"]),
        content=body.get("content") or "",
        shard=body.get("shard") or None,
        pass_no=int(body.get("pass") or 0),
        worker=body.get("worker") or "",
        sources=tuple(body.get("sources") or ()),
        usage=body.get("usage"),
        data=body.get("data"),
        attempt=int(body.get("attempt") or 1),
        started=float(body.get("started") or 0.0),
        finished=float(body.get("finished") or 0.0),
        error=body.get("error"),
        entry_id=entry_id,
        created=float(body.get("created") or 0.0),
        attempts=_attempts(fields.get(b"attempts")),
    )


def _attempts(raw: bytes | None) -> tuple[dict[str, Any], ...]:
    """A finding entry's ``attempts`` field (a JSON array of objects), decoded; what
    does not parse is left out."""
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(a for a in value if isinstance(a, dict))


def finding_to_json(finding: Finding) -> dict[str, Any]:
    """A finding as a JSON-ready dict (the CLI's ``--json`` shape)."""
    return {
        "task_id": finding.task_id,
        "spec": finding.spec,
        "shard": finding.shard,
        "pass": finding.pass_no,
        "worker": finding.worker,
        "status": finding.status.value,
        "content": finding.content,
        "sources": list(finding.sources),
        "usage": finding.usage,
        "data": finding.data,
        "attempt": finding.attempt,
        "created": finding.created,
        "started": finding.started,
        "finished": finding.finished,
        "duration_ms": round(finding.duration_ms, 3),
        "error": finding.error,
        "entry_id": finding.entry_id,
        "retried": finding.attempt > 1,
        "history": attempt_history(finding),
    }


#: the error of an attempt that left no record
NO_RECORD = "no record: its worker was killed, stopped or lost its lease before reporting"


def attempt_history(finding: Finding) -> list[dict[str, Any]]:
    """Every attempt of a finding's task, oldest first: the recorded ones (failed and
    retried), one per attempt that left no record (its worker died), and the last,
    which the finding itself describes."""
    known: dict[int, dict[str, Any]] = {}
    for record in finding.attempts:
        number = record.get("attempt")
        if isinstance(number, int) and not isinstance(number, bool):
            known.setdefault(number, record)
    out = [
        known.get(n) or {"attempt": n, "outcome": "unknown", "error": NO_RECORD}
        for n in range(1, finding.attempt)
    ]
    out.append(
        {
            "attempt": finding.attempt,
            "worker": finding.worker,
            "started": finding.started,
            "finished": finding.finished,
            "outcome": finding.status.value,
            "error": finding.error,
            "usage": finding.usage,
        }
    )
    return out


def dead_task(letter: DeadLetter) -> Task | None:
    """The dead-lettered task, if its original entry decodes as one."""
    try:
        fields = {k.encode(): v for k, v in letter.fields.items()}
        return decode_task(letter.spec, fields)[0]
    except MalformedEntry:
        return None


def dead_to_json(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as a JSON-ready dict, with the task it carried when its original
    entry decodes (the shape of ``dead list --json`` and the MCP ``dead_letters`` tool)."""
    task = dead_task(letter)
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


def dead_fields(
    *,
    reason: str,
    error: str | None,
    task_id: str | None,
    attempts: int,
    worker: str,
    origin_id: str,
    fields: dict[bytes, bytes] | None,
) -> dict[str | bytes, bytes | str]:
    """Fields of a dead-letter entry: why, plus every original field as ``orig:<name>``."""
    out: dict[str | bytes, bytes | str] = {
        "reason": reason,
        "error": error or "",
        "task_id": task_id or "",
        "attempts": str(attempts),
        "worker": worker,
        "ts": f"{time.time():.6f}",
        "origin": origin_id,
    }
    for name, value in (fields or {}).items():
        out[_ORIG.encode() + name] = value
    return out


def decode_dead(spec: str, entry_id: str, fields: dict[bytes, bytes]) -> DeadLetter:
    """Decode a dead-letter entry."""
    orig = {_s(k)[len(_ORIG) :]: v for k, v in fields.items() if k.startswith(_ORIG.encode())}
    return DeadLetter(
        entry_id=entry_id,
        spec=spec,
        reason=_s(fields.get(b"reason", b"")),
        task_id=_s(fields.get(b"task_id", b"")) or None,
        error=_s(fields.get(b"error", b"")) or None,
        attempts=int(fields.get(b"attempts", b"0") or 0),
        worker=_s(fields.get(b"worker", b"")),
        ts=float(fields.get(b"ts", b"0") or 0),
        origin_id=_s(fields.get(b"origin", b"")),
        fields={k: v for k, v in orig.items()},
    )
