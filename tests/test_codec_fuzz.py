"""Properties of the wire format (issue 10): the decoder returns a Task or raises
MalformedEntry, nothing else; the finding encoder returns bytes that decode back,
or raises UnencodableResult; the producer's check refuses what no worker could run."""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmstream import Swarm, Task
from swarmstream.codec import (
    JSON,
    MSGPACK,
    decode_finding,
    decode_task,
    encode_task,
    finding_body,
    guess_task_id,
    wire_of,
)
from swarmstream.errors import InvalidTask, MalformedEntry, UnencodableResult

#: Hypothesis examples per property (the note reports them)
EXAMPLES = 400

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: also ints no 64-bit field can hold
    st.floats(),  # nan and infinities included
    st.text(alphabet=st.characters(), max_size=20),  # characters() includes surrogates
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=4),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=15,
)
FIELDS = ["id", "text", "spec", "shard", "pass", "max_attempts", "timeout", "created", "data"]
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), values, max_size=9)


def _pack(body: Any) -> bytes | None:
    for packer in (
        lambda b: msgpack.packb(b, use_bin_type=True),
        lambda b: json.dumps(b, default=repr).encode("utf-8", "surrogatepass"),
    ):
        try:
            return packer(body)
        except Exception:
            continue
    return None


@st.composite
def raw_entries(draw: st.DrawFn) -> dict[bytes, bytes]:
    kind = draw(st.sampled_from(["body", "bytes", "fields", "deep", "json-text"]))
    if kind == "bytes":
        return {b"body": draw(st.binary(max_size=64))}
    if kind == "fields":
        return draw(st.dictionaries(st.binary(max_size=8), st.binary(max_size=16), max_size=3))
    if kind == "deep":
        depth = draw(st.integers(1, 300_000))
        open_, close = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return {
            b"body": b'{"id":"x","text":"t","data":' + open_ * depth + b"1" + close * depth + b"}"
        }
    if kind == "json-text":  # JSON escapes as a foreign producer writes them
        text = draw(st.text(max_size=30))
        escaped = json.dumps({"id": "j", "text": text}, ensure_ascii=True)
        extra = draw(st.sampled_from(["", "\\ud800", "\\udfff", "\\uD83D\\uDE00", "\\u0000"]))
        return {b"body": escaped.replace('"text": "', f'"text": "{extra}').encode()}
    packed = _pack(draw(bodies))
    return {b"body": packed if packed is not None else b"\x00"}


@settings(max_examples=EXAMPLES, deadline=None)
@given(fields=raw_entries(), spec=st.sampled_from(["s", "research"]))
def test_decoder_returns_a_task_or_a_malformed_entry(fields: dict[bytes, bytes], spec: str) -> None:
    wire_of(fields)  # never raises
    guess_task_id(fields)  # never raises
    try:
        task, wire = decode_task(spec, fields)
    except MalformedEntry as exc:
        assert exc.reason
        exc.reason.encode("utf-8")  # a reason can always be written
        return
    assert wire in (JSON, MSGPACK)
    assert isinstance(task.id, str) and 0 < len(task.id) <= 200
    task.id.encode("utf-8")
    task.text.encode("utf-8")
    assert math.isfinite(task.created) and (task.timeout is None or task.timeout > 0)
    for out_wire in (JSON, MSGPACK):
        try:
            body = finding_body(
                task,
                status="ok",
                content=task.text,
                worker="w",
                data=task.data,
                started=1.0,
                finished=2.0,
                wire=out_wire,
            )
        except UnencodableResult:
            continue
        assert decode_finding("1-1", {b"body": body}).task_id == task.id


result_values = st.recursive(
    scalars | st.builds(object) | st.just(float("nan")),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=6), st.integers(), st.tuples()), inner, max_size=3
        ),
        st.sets(st.integers(), max_size=3),
    ),
    max_leaves=10,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    content=st.text(alphabet=st.characters(), max_size=20),
    sources=st.lists(st.text(alphabet=st.characters(), max_size=10), max_size=3),
    usage=st.none() | st.dictionaries(st.text(max_size=5), result_values, max_size=3),
    data=result_values,
    wire=st.sampled_from([JSON, MSGPACK]),
)
def test_encoder_returns_decodable_bytes_or_unencodable_result(
    content: str, sources: list[str], usage: dict[str, Any] | None, data: Any, wire: str
) -> None:
    task = Task(spec="s", text="t", id="task-1")
    try:
        body = finding_body(
            task,
            status="ok",
            content=content,
            worker="w",
            sources=sources,
            usage=usage,
            data=data,
            started=1.0,
            finished=2.0,
            wire=wire,
        )
    except UnencodableResult as exc:
        assert str(exc).startswith("handler result cannot be encoded")
        str(exc).encode("utf-8")
        return
    finding = decode_finding("1-1", {b"body": body})
    assert finding.content == content and list(finding.sources) == sources
    if wire == JSON:
        json.loads(body)  # standard JSON: no NaN, no Infinity


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    task_id=values,
    text=values,
    max_attempts=values,
    timeout=values,
    shard=values,
    pass_no=values,
    created=values,
    data=values,
)
def test_producer_check_refuses_what_no_worker_could_run(
    task_id: Any,
    text: Any,
    max_attempts: Any,
    timeout: Any,
    shard: Any,
    pass_no: Any,
    created: Any,
    data: Any,
) -> None:
    task = Task(
        spec="s",
        text=text,
        id=task_id,
        data=data,
        shard=shard,
        pass_no=pass_no,
        max_attempts=max_attempts,
        timeout=timeout,
        created=created,
    )
    try:
        fields = encode_task(task)
    except InvalidTask as exc:
        str(exc).encode("utf-8")
        return
    decoded, _ = decode_task("s", fields)  # what a producer may post, a worker can run
    assert decoded.id == task.id and decoded.max_attempts == task.max_attempts


# -- the cases of the issue, one by one ------------------------------------------

Z400 = "1" + "0" * 400


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"id":"a","text":"x","created":' + Z400 + "}", "field 'created' must be a finite"),
        ('{"id":"a","text":"x","timeout":' + Z400 + "}", "field 'timeout' must be a positive"),
        ('{"id":"a","text":"x","timeout":-1}', "field 'timeout' must be a positive"),
        ('{"id":"a","text":"\\ud800"}', "field 'text' holds a string that is not valid Unicode"),
        ('{"id":"\\udfff","text":"x"}', "field 'id' holds a string that is not valid Unicode"),
        ('{"id":"a","text":"x","shard":"\\ud800"}', "field 'shard' holds a string"),
        ('{"id":"a","text":"x","data":{"k":["\\ud800"]}}', "field 'data' holds a string"),
        ('{"id":"a","text":"x","created":NaN}', "NaN is not JSON"),
        ('{"id":"a","text":"x","timeout":Infinity}', "Infinity is not JSON"),
        ('{"id":"a","text":"x","data":' + "[" * 10**5 + "]" * 10**5 + "}", "nested too deeply"),
        ("[" * 100_000 + "]" * 100_000, "body is neither msgpack nor JSON"),  # JSON starts "{"
        ('{"id":"a","text":"x","spec":""}', "field 'spec' is '' but the stream is 's'"),
        ('{"id":"a","text":"x","spec":0}', "field 'spec' is 0 but the stream is 's'"),
        ('{"id":"a","text":"x","spec":false}', "field 'spec' is False but the stream is 's'"),
        ('{"id":"a","text":"x","spec":[]}', "field 'spec' is [] but the stream is 's'"),
        ('{"id":"a","text":"x","pass":' + Z400 + "}", "field 'pass' must be an integer that fits"),
        ('{"id":"a","text":"x","shard":"a:b"}', "field 'shard' must be a shard name"),
    ],
)
def test_the_issue_cases_are_malformed_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(MalformedEntry) as info:
        decode_task("s", {b"body": body.encode()})
    assert reason in info.value.reason


def test_a_surrogate_pair_is_valid_unicode() -> None:
    task, _ = decode_task("s", {b"body": b'{"id":"a","text":"\\ud83d\\ude00","spec":null}'})
    assert task.text == "\U0001f600"


def test_msgpack_nesting_and_bad_utf8_are_malformed() -> None:
    deep = b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(MalformedEntry, match="nested too deeply"):
        decode_task("s", {b"body": deep})
    bad = msgpack.packb({"id": "a", "text": "x"}).replace(b"\xa1x", b"\xa1\xff")
    with pytest.raises(MalformedEntry, match="not valid UTF-8"):
        decode_task("s", {b"body": bad})


async def test_submit_refuses_an_invalid_task(swarm: Swarm) -> None:
    with pytest.raises(InvalidTask, match="max_attempts must be between 1 and 1000, got 0"):
        await swarm.submit("s", "x", max_attempts=0)
    with pytest.raises(InvalidTask, match="timeout"):
        await swarm.submit("s", "x", timeout=float("inf"))
    with pytest.raises(InvalidTask, match="cannot be encoded"):
        await swarm.submit("s", "x", data={1, 2})
    with pytest.raises(InvalidTask, match="cannot be encoded"):
        await swarm.submit("s", "lone \ud800")
    with pytest.raises(InvalidTask):
        await swarm.submit_many([Task(spec="s", text="x", shard="a:b")])
