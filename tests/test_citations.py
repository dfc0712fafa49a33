"""Citations: parsing every spelling, checking them against one context version (split
documents keep their file's line numbers), and reading versions from Redis, including
versions that expired or never existed."""

from __future__ import annotations

import pytest
import redis

from swarmstream import Swarm
from swarmstream.answers import (
    CitationChecker,
    CitationStatus,
    ContextView,
    check_citation,
    parse_citation,
    parse_citations,
    versioned_tasks,
)
from swarmstream.answers.citations import normalize_quote, split_sources
from swarmstream.context import Context, DocumentPart, Manifest, build
from swarmstream.shard import MemoryShard

GUIDE = """# Operations guide

Deployments happen on weekdays after the morning review.
Every deployment is announced in the release channel.

The backup rotation keeps seven daily snapshots.
"""
# lines 101-103 of a file split across shards
LOG = "entry 101: boot\nentry 102: “disk” full — retrying\nentry 103: ok\n"


def view_of(docs: list[tuple[str, str]], shard: str = "docs", version: int = 1) -> ContextView:
    blob, manifest = build(docs)
    ctx = Context(shard, version, blob.encode(), Manifest.from_bytes(manifest.to_bytes()))
    return ContextView(ctx)


VIEW = view_of([("ops/guide.md", GUIDE), DocumentPart("logs/big.log", LOG, first_line=101)])


def check(value: object) -> tuple[CitationStatus, str]:
    result = check_citation(parse_citation(value), VIEW)
    return result.status, result.reason


# -- parsing -------------------------------------------------------------------


def test_parse_every_spelling() -> None:
    cases: list[tuple[object, tuple[str | None, int | None, int | None, str | None]]] = [
        ("a.md:12", ("a.md", 12, 12, None)),
        ("a.md:12-18", ("a.md", 12, 18, None)),
        ("a.md:12\u201318", ("a.md", 12, 18, None)),  # an en dash
        ("a.md#L12-L18", ("a.md", 12, 18, None)),
        ("a.md:L12", ("a.md", 12, 12, None)),
        ("a.md, lines 12-18", ("a.md", 12, 18, None)),
        ("a.md (line 12)", ("a.md", 12, 12, None)),
        ("[a.md:3]", ("a.md", 3, 3, None)),
        ("`./a.md:3`", ("a.md", 3, 3, None)),
        ('a.md:3-4 "the quoted words"', ("a.md", 3, 4, "the quoted words")),
        ("a.md:3 “curly quote”", ("a.md", 3, 3, "curly quote")),
        ("dir/a b.md:7", ("dir/a b.md", 7, 7, None)),
        ("weird:name.md:7", ("weird:name.md", 7, 7, None)),
        ("a.md", ("a.md", None, None, None)),
        ({"source": "a.md:3-4", "quote": "q"}, ("a.md", 3, 4, "q")),
        ({"path": "a.md", "line": 5}, ("a.md", 5, 5, None)),
        ({"path": "a.md", "start": 5, "end": 9, "quote": "q"}, ("a.md", 5, 9, "q")),
        ({"path": "a.md", "lines": "5-9"}, ("a.md", 5, 9, None)),
        ({"path": "a.md", "lines": [5, 9]}, ("a.md", 5, 9, None)),
        ({"file": "a.md"}, ("a.md", None, None, None)),
    ]
    for value, (path, start, end, quote) in cases:
        c = parse_citation(value)
        assert (c.path, c.start, c.end, c.quote) == (path, start, end, quote), value


def test_unparsable_citations_are_kept_as_given() -> None:
    for value in ["not a citation at all", "", 42, None, {"quote": "no source"}, ["a.md:1"]]:
        c = parse_citation(value)
        assert c.path is None
        assert c.source == c.given
    assert parse_citation({"quote": "x"}).given == '{"quote": "x"}'
    huge = parse_citation("a.md:1 " + "x" * 10_000)
    assert huge.path is None and len(huge.given) == 4003


def test_parse_citations_and_split_sources() -> None:
    assert [c.source for c in parse_citations(["a.md:1", "b.md:2-3"])] == ["a.md:1", "b.md:2-3"]
    assert [c.source for c in parse_citations("a.md:4")] == ["a.md:4"]
    assert parse_citations(None) == ()
    assert split_sources("a.md:1-3, b.md:4") == ["a.md:1-3", "b.md:4"]
    assert split_sources("notes, drafts.md:4") == ["notes, drafts.md:4"]


def test_quotes_are_normalized() -> None:
    assert normalize_quote("“Disk”  full —\n retrying…") == normalize_quote(
        '"disk" full - retrying'
    )
    assert normalize_quote("  ...The End.  ") == "the end"


# -- checking against one version ------------------------------------------------


def test_lines_and_quotes_that_exist_are_ok() -> None:
    assert check("ops/guide.md:3")[0] is CitationStatus.OK
    assert check("ops/guide.md:3-4")[0] is CitationStatus.OK
    assert check("ops/guide.md")[0] is CitationStatus.OK
    quote = "after the morning review. Every deployment"  # across two lines
    assert check({"source": "ops/guide.md:3-4", "quote": quote}) == (
        CitationStatus.OK,
        "the cited lines hold the quote",
    )
    assert check({"source": "ops/guide.md", "quote": "seven daily snapshots"}) == (
        CitationStatus.OK,
        "the document holds the quote",
    )
    assert check({"source": "ops/guide.md", "quote": "eight"})[0] == "quote not found"


def test_split_document_keeps_the_files_line_numbers() -> None:
    plain = {"source": "logs/big.log:102", "quote": '"disk" full - retrying'}
    assert check(plain)[0] is CitationStatus.OK
    assert check('logs/big.log:102 "“disk” full — retrying"')[0] is CitationStatus.OK
    status, reason = check("logs/big.log:3")
    assert status is CitationStatus.OUT_OF_RANGE
    assert reason == (
        "logs/big.log has lines 101-103 in shard docs's context version 1; line 3 is not among them"
    )
    assert check("logs/big.log:103-104")[0] is CitationStatus.OUT_OF_RANGE


def test_wrong_citations_say_why() -> None:
    status, reason = check("ops/guide.md:999")
    assert status is CitationStatus.OUT_OF_RANGE and "has lines 1-6" in reason
    status, reason = check("guide.md:3")
    assert status is CitationStatus.UNKNOWN_PATH
    assert (
        reason
        == "no document guide.md in shard docs's context version 1 (did you mean ops/guide.md?)"
    )
    status, reason = check('ops/guide.md:3 "seven daily snapshots"')
    assert status is CitationStatus.QUOTE_NOT_FOUND
    assert reason == "the quote is not in ops/guide.md:3; it is at ops/guide.md:6"
    assert check("ops/guide.md:5-3")[0] is CitationStatus.MALFORMED
    assert check("ops/guide.md:0")[0] is CitationStatus.OUT_OF_RANGE
    assert check("what the agent made up")[0] is CitationStatus.MALFORMED


def test_every_citation_the_context_writes_checks_out() -> None:
    """``Context.cite`` and the checker count lines the same way, line by line."""
    ctx = VIEW.context
    for i, doc in enumerate(ctx.documents):
        text = ctx.document_text(i)
        pos = doc.start
        for line in text.splitlines(keepends=True):
            source = ctx.cite(pos, pos + len(line))
            result = check_citation(parse_citation({"source": source, "quote": line}), VIEW)
            assert result.ok, (source, result.reason)
            pos += len(line)


def test_empty_and_duplicate_documents() -> None:
    view = view_of([("empty.md", ""), ("a.md", "one\n"), ("a.md", "two\n")])
    assert check_citation(parse_citation("empty.md"), view).ok
    assert check_citation(parse_citation("empty.md:1"), view).status is CitationStatus.OUT_OF_RANGE
    assert check_citation(parse_citation('a.md:1 "one"'), view).ok


# -- reading versions from Redis ------------------------------------------------


@pytest.mark.contract
async def test_checker_reads_versions_and_reports_expired_ones(
    swarm: Swarm, raw: redis.Redis
) -> None:
    shard = MemoryShard(swarm, "ops", spec="research")
    await shard.load_documents([("ops/guide.md", GUIDE)])
    checker = CitationChecker.of(swarm)
    first = await checker.check(["ops/guide.md:6", "ops/guide.md:7"], "ops", 1)
    assert [c.status for c in first] == [CitationStatus.OK, CitationStatus.OUT_OF_RANGE]
    assert first[0].version == 1 and first[0].shard == "ops"

    await shard.load_documents([("ops/guide.md", GUIDE + "A seventh line.\n")])
    now = await checker.check(["ops/guide.md:7"], "ops")  # the current version: 2
    assert now[0].ok and now[0].version == 2
    # version 1 is still readable for 600 s; delete it as its expiry would
    keys = swarm.keys.shard("ops")
    raw.delete(keys.context(1), keys.manifest(1))
    fresh = CitationChecker.of(swarm)
    gone = await fresh.check(["ops/guide.md:6"], "ops", 1)
    assert gone[0].status is CitationStatus.EXPIRED and gone[0].unverifiable
    assert not gone[0].wrong
    assert gone[0].reason == "unverifiable: context version 1 of shard ops expired (current is 2)"
    never = await fresh.check(["ops/guide.md:6"], "ops", 9)
    assert never[0].status is CitationStatus.NO_CONTEXT
    assert never[0].reason == "unverifiable: shard ops has no context version 9"
    none = await fresh.check(["x.md:1"], "nobody")
    assert none[0].reason == "unverifiable: shard nobody has no context"
    assert await fresh.flag_sources("ops", ["ops/guide.md:7", "ops/guide.md:70"]) == [
        (
            "ops/guide.md:70",
            "ops/guide.md has lines 1-7 in shard ops's context version 2; "
            "line 70 is not among them",
        )
    ]
    assert fresh.cache.fetches == 3  # versions 1 and 9 found gone, version 2 read
    await fresh.check(["ops/guide.md:1"], "ops", 1)
    await fresh.check(["ops/guide.md:1"], "ops", 2)
    assert fresh.cache.fetches == 3  # versions are immutable: never read twice


@pytest.mark.contract
async def test_versioned_tasks_record_each_shards_version(swarm: Swarm) -> None:
    a = MemoryShard(swarm, "a", spec="research")
    b = MemoryShard(swarm, "b", spec="research")
    await a.load_documents([("x.md", "x\n")])
    await b.load_documents([("y.md", "y\n")])
    await b.load_documents([("y.md", "y2\n")])
    versions = await swarm.transport.shards.context_versions(["a", "b", "none"])
    assert versions == {"a": 1, "b": 2, "none": None}
    tasks = await versioned_tasks(swarm, "q?", ["a", "b", "none", "a"], "research", data={"k": 3})
    assert [(t.shard, t.data) for t in tasks] == [
        ("a", {"k": 3, "context_version": 1}),
        ("b", {"k": 3, "context_version": 2}),
        ("none", {"k": 3}),
    ]
    assert all(t.spec == "research" and t.text == "q?" for t in tasks)
