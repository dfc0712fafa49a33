"""Wire format: decoding tasks and rejecting malformed entries with a reason."""

from __future__ import annotations

import json

import msgpack
import pytest

from swarmstream import codec
from swarmstream.errors import MalformedEntry
from swarmstream.models import Finding, Status, Task


def _fields(body: object) -> dict[bytes, bytes]:
    return {b"body": msgpack.packb(body)}


def test_msgpack_round_trip() -> None:
    task = Task(
        spec="research",
        text="hi",
        data={"k": [1, 2]},
        shard="s1",
        pass_no=3,
        max_attempts=5,
        timeout=2.5,
    )
    fields = {k.encode(): v for k, v in codec.encode_task(task).items()}
    decoded, wire = codec.decode_task("research", fields)
    assert wire == codec.MSGPACK
    assert decoded == task


def test_json_body_from_foreign_producer() -> None:
    decoded, wire = codec.decode_task("research", {b"body": b'{"id": "t1", "text": "hello"}'})
    assert wire == codec.JSON
    assert (decoded.id, decoded.text, decoded.max_attempts) == ("t1", "hello", 3)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"body": b"\xc1\xff\x00garbage"}, "neither msgpack nor JSON"),
        ({b"body": b"{not json"}, "not valid JSON"),
        ({b"text": b"hi"}, "no 'body' field"),
        ({}, "no fields"),
        (_fields([1, 2]), "must be a map"),
        (_fields({"text": "x"}), "'id'"),
        (_fields({"id": "a"}), "missing field 'text'"),
        (_fields({"id": "a", "text": 5}), "'text' must be str"),
        (_fields({"id": "a", "text": "x", "max_attempts": "3"}), "'max_attempts' must be int"),
        (_fields({"id": "a", "text": "x", "max_attempts": 0}), "between 1 and 1000"),
        (_fields({"id": "a", "text": "x", "timeout": -1}), "positive"),
        (_fields({"id": "a", "text": "x", "spec": "other"}), "spec"),
        (_fields({"id": "a", "text": "x", "pass": True}), "'pass' must be int"),
    ],
)
def test_malformed_entries_have_reasons(fields: dict[bytes, bytes], reason: str) -> None:
    with pytest.raises(MalformedEntry, match=reason):
        codec.decode_task("research", fields)


def test_oversized_entry() -> None:
    body = _fields({"id": "big", "text": "x" * 2000})
    with pytest.raises(MalformedEntry, match="over the limit"):
        codec.decode_task("research", body, max_entry_bytes=1000)
    assert codec.guess_task_id(body) == "big"


def test_finding_encoded_like_its_task() -> None:
    f = Finding(
        task_id="t1",
        spec="s",
        status=Status.OK,
        content="c",
        sources=("a.md:1-2",),
        started=1.0,
        finished=1.5,
    )
    as_json = codec.encode_finding(f, codec.JSON)
    assert json.loads(as_json)["sources"] == ["a.md:1-2"]
    back = codec.decode_finding("1-0", {b"body": codec.encode_finding(f)})
    assert back.sources == f.sources and back.duration_ms == 500.0


def test_null_optional_fields_take_defaults() -> None:
    body = {
        "id": "n",
        "text": "x",
        "spec": None,
        "pass": None,
        "max_attempts": None,
        "created": None,
        "shard": None,
        "timeout": None,
    }
    task, _ = codec.decode_task("research", _fields(body))
    assert (task.pass_no, task.max_attempts, task.shard, task.timeout) == (0, 3, None, None)


def test_wire_of_and_guess_id_for_oversized() -> None:
    assert codec.wire_of({b"body": b'{"id":"j"}'}) == codec.JSON
    assert codec.wire_of(_fields({"id": "m"})) == codec.MSGPACK
    big = {b"body": b'{"id": "huge", "text": "' + b"y" * 3000 + b'"}'}
    with pytest.raises(MalformedEntry) as info:
        codec.decode_task("research", big, max_entry_bytes=100)
    assert info.value.task_id == "huge"
