"""Answers with verified citations: shard-level answers from stand-in ``--exec`` agents
(tests/agents/), merged with their disagreements; an answer composed from passages by
a worker of another spec; and the citation check on pass syntheses."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import running_worker

from swarmstream import Settings, Status, Swarm, Task
from swarmstream.answers import (
    CitationChecker,
    CitationStatus,
    ShardAnswer,
    agreement,
    ask_shards,
    compose_answer,
    compose_task,
    merge_answers,
    parse_answer,
    parse_citation,
)
from swarmstream.answers.citations import CitationCheck
from swarmstream.answers.compose import check_against_passages
from swarmstream.codec import pack, unpack
from swarmstream.context import DocumentPart
from swarmstream.handlers.base import as_handler
from swarmstream.handlers.exec import ExecHandler
from swarmstream.models import Finding, Result
from swarmstream.shard import HandlerSynthesizer, Knowledge, MemoryShard, MergeSynthesizer

AGENTS = Path(__file__).resolve().parent / "agents"
QUESTION = "What is the vault code of Project Zeta?"
ZETA = """# Project Zeta

Owner: the platform team.
The vault code of Project Zeta is 4417-ZETA.
It opens the staging vault only.
"""
BETA = "# Notes\n\nProject Zeta vault code: 4417-ZETA (see the runbook).\n"
OLD_MEMO = "# Memo\n\nProject Zeta's vault code was changed to 9999-OMEGA last spring.\n"
UNRELATED = "# Lunch\n\nThe canteen serves soup on Mondays.\n"
# lines 201-203 of a long handbook split across shards
HANDBOOK_PART = "Access rules.\nFor Project Zeta the vault code is 4417-ZETA.\nEnd of rules.\n"


def agent(script: str, *args: str) -> ExecHandler:
    return ExecHandler([sys.executable, str(AGENTS / script), *args])


def finding(content: str = "", **kw: Any) -> Finding:
    return Finding(task_id="t1", spec="answer", status=Status.OK, content=content, **kw)


# -- shard-level answers end to end -------------------------------------------


async def test_shard_answers_are_verified_merged_and_disagreements_reported(
    swarm: Swarm, settings: Settings
) -> None:
    loads = {
        "alpha": [("projects/zeta.md", ZETA)],
        "beta": [("notes/beta.md", BETA)],  # bad_line: right answer, line that does not exist
        "gamma": [("memos/old.md", OLD_MEMO)],  # honest, but its text contradicts
        "delta": [("misc/lunch.md", UNRELATED)],  # not_found
        "epsilon": [("misc/lunch.md", UNRELATED)],  # garbage
        "zeta": [DocumentPart("handbook.md", HANDBOOK_PART, first_line=201)],
        "eta": [("x.md", "x\n")],  # failing
    }
    for name, docs in loads.items():
        await MemoryShard(swarm, name, spec="answer").load_documents(docs)
    handler = agent(
        "by_shard.py", "beta=bad_line", "delta=not_found", "epsilon=garbage", "eta=failing"
    )
    async with running_worker("answer", handler, settings, concurrency=3):
        merged = await ask_shards(swarm, QUESTION, list(loads), "answer", 60, max_attempts=1)

    assert merged.status == "resolved", merged.text
    assert merged.found and merged.answer == "4417-ZETA"
    best = merged.best
    assert best is not None
    assert best.shards == ("alpha", "zeta", "beta")
    assert best.verified == ("projects/zeta.md:4", "handbook.md:202")  # the file's own lines
    by_shard = {a.shard: a for a in merged.answers}
    alpha = by_shard["alpha"]
    assert [c.status for c in alpha.checks] == [CitationStatus.OK]
    assert alpha.checks[0].citation.quote == "The vault code of Project Zeta is 4417-ZETA."
    assert alpha.checks[0].version == 1
    (bad,) = by_shard["beta"].checks  # flagged: counts as no support
    assert bad.status is CitationStatus.OUT_OF_RANGE and bad.source == "notes/beta.md:5003"
    assert "notes/beta.md has lines 1-3" in bad.reason
    assert best.score == pytest.approx(0.9 + 0.9 + 0.9 * 0.25)

    # the contradicting shard is reported, with its own verified citation
    contra = merged.disagreements[0]
    assert (contra.answer, contra.shards, contra.verified) == (
        "9999-OMEGA",
        ("gamma",),
        ("memos/old.md:3",),
    )
    garbage = by_shard["epsilon"]
    assert garbage.malformed and garbage.confidence == 0.1
    assert "not the answer object" in garbage.flags[0]
    assert [g.shards for g in merged.disagreements] == [("gamma",), ("epsilon",)]
    assert [a.shard for a in merged.not_found] == ["delta"]
    assert merged.missing == ("eta",)
    assert "model overloaded" in dict(merged.why_missing)["eta"]
    assert [c.source for c in merged.flagged] == ["notes/beta.md:5003"]

    text = merged.text
    assert "Answer (resolved): 4417-ZETA" in text
    assert "[FLAGGED lines out of range] notes/beta.md:5003" in text
    assert "Disagreements (2):" in text and "'9999-OMEGA'" in text
    assert "Not found by: delta" in text and "Missing: eta (failed:" in text
    as_json = merged.to_json()
    assert as_json["status"] == "resolved" and as_json["flagged"][0]["ok"] is False
    assert as_json["disagreements"][0]["members"][0]["citations"][0]["status"] == "ok"


async def test_answer_prompt_maps_the_context_file(swarm: Swarm, settings: Settings) -> None:
    """The task text tells an agent which context-file lines are which document lines."""
    shard = MemoryShard(swarm, "map", spec="answer")
    await shard.load_documents(
        [("a.md", "one\ntwo\n"), DocumentPart("big.log", "x\ny\nz\n", first_line=41)]
    )
    seen: list[Task] = []

    def record(task: Task) -> str:
        seen.append(task)
        return '{"answer": "", "found": false}'

    async with running_worker("answer", as_handler(record), settings, concurrency=3):
        merged = await ask_shards(swarm, "q?", ["map"], "answer", 30)
    assert merged.status == "not found" and merged.reason == "no shard found an answer (1 answered)"
    (task,) = seen
    assert task.data == {"question": "q?", "format": "swarmstream.answer/1", "context_version": 1}
    assert "[a.md] lines 1-2 = context-file lines 1-2\n" in task.text
    assert "[big.log] lines 41-43 = context-file lines 3-5\n" in task.text
    assert '"context_version": 1}' in task.text and '"citations"' in task.text


# -- parsing what agents print ---------------------------------------------------


def test_parse_the_answer_object_in_every_form() -> None:
    flat = parse_answer(
        finding(
            '{"answer": "Paris", "rationale": "r", "confidence": 0.8, "found": true, '
            '"citations": ["geo.md:3", {"source": "geo.md:4", "quote": "q"}], '
            '"context_version": 2}',
            shard="alpha",
        )
    )
    assert (flat.shard, flat.answer, flat.rationale, flat.confidence, flat.found) == (
        "alpha",
        "Paris",
        "r",
        0.8,
        True,
    )
    assert [c.source for c in flat.citations] == ["geo.md:3", "geo.md:4"]
    assert flat.version == 2 and flat.flags == () and not flat.malformed

    fenced = parse_answer(finding('Here:\n```json\n{"answer": "Paris", "confidence": 1}\n```'))
    assert fenced.answer == "Paris" and fenced.confidence == 1.0

    structured = parse_answer(  # {"content", "sources", "data"} as the exec handler reads it
        finding(
            "Paris",
            sources=("geo.md:3",),
            data={"confidence": 0.7, "found": True, "rationale": "r", "context_version": 4},
        )
    )
    assert structured.answer == "Paris" and structured.confidence == 0.7
    assert [c.source for c in structured.citations] == ["geo.md:3"]
    assert structured.version == 4

    sources_key = parse_answer(finding('{"answer": "Paris", "sources": ["geo.md:3"]}'))
    assert [c.source for c in sources_key.citations] == ["geo.md:3"]
    assert sources_key.flags == ("no valid confidence given (0.5 assumed)",)


def test_bad_output_becomes_a_flagged_answer() -> None:
    garbage = parse_answer(finding("I think it is Paris {maybe"))
    assert garbage.malformed and garbage.found and garbage.answer == "I think it is Paris {maybe"
    assert garbage.confidence == 0.1
    assert garbage.flags == ("output is not JSON, not the answer object: read as plain text",)
    other = parse_answer(finding('{"result": 3}'))
    assert other.malformed and "a JSON object without the answer keys" in other.flags[0]
    lost = parse_answer(finding("", sources=("geo.md:3",)))  # a printed top-level "sources"
    assert lost.malformed and not lost.found and "name the list 'citations'" in lost.flags[0]
    empty = parse_answer(finding("  "))
    assert empty.flags == ("empty output",) and not empty.found

    pct = parse_answer(finding('{"answer": "x", "confidence": "85%"}'))
    assert pct.confidence == 0.85 and pct.flags == ()
    hundred = parse_answer(finding('{"answer": "x", "confidence": 85}'))
    assert hundred.confidence == 0.85 and hundred.flags == ("confidence 85 read as a percentage",)
    clamp = parse_answer(finding('{"answer": "x", "confidence": -2}'))
    assert clamp.confidence == 0.0 and clamp.flags == ("confidence -2 clamped to 0..1",)
    hollow = parse_answer(finding('{"answer": "", "found": true, "confidence": 0.5}'))
    assert not hollow.found and hollow.flags == ("found without an answer",)


def test_the_version_to_check_against() -> None:
    task = Task("answer", "q", data={"context_version": 1}, shard="a")
    assert parse_answer(finding('{"answer": "x"}'), task=task).version == 1
    reported = finding('{"answer": "x"}', data={"context_version": 2})
    assert parse_answer(reported, task=task).version == 2
    in_object = finding('{"answer": "x", "context_version": 3}', data={"context_version": 2})
    assert parse_answer(in_object, task=task).version == 3
    assert parse_answer(finding('{"answer": "x"}')).version is None  # the current one


# -- merging ----------------------------------------------------------------------


def test_agreement_rules() -> None:
    cases = [
        ("4417-ZETA", "4417-zeta.", True, "the same answer"),
        ("4417-ZETA", "The code is 4417-ZETA.", True, "the key terms of one are all in the other"),
        ("4417-ZETA", "4418-ZETA", False, "different numbers (4417, 4418)"),
        ("Paris", "Not Paris", False, "one answer negates"),
        ("yes", "no", False, "one answer negates"),
        ("It isn't Paris", "Paris", False, "one answer negates"),
        ("Paris", "Lyon", False, "different key terms"),
        (
            "snapshots stored in the archive bucket encrypted",
            "snapshot stored in archive bucket, not encrypted",
            False,
            "one answer negates",
        ),
        (
            "weekly backups kept in the archive bucket",
            "backups kept in archive bucket for a week",
            True,
            "67% of key terms shared",
        ),
    ]
    for a, b, agree, why in cases:
        assert agreement(a, b) == (agree, why), (a, b)


def answer(shard: str, text: str, confidence: float, *statuses: CitationStatus) -> ShardAnswer:
    checks = tuple(
        CitationCheck(parse_citation(f"{shard}.md:{i + 1}"), s, str(s), shard, 1)
        for i, s in enumerate(statuses)
    )
    return ShardAnswer(shard, f"t-{shard}", text, "r", confidence, bool(text), checks=checks)


def test_conflict_with_equal_weight_is_contested() -> None:
    ok = CitationStatus.OK
    merged = merge_answers("q", [answer("a", "Paris", 0.9, ok), answer("b", "Lyon", 0.8, ok)])
    assert merged.status == "contested" and merged.answer == "Paris"
    assert merged.reason == (
        "'Paris' (a; score 0.90) against 'Lyon' (b; score 0.80): not 1.5 times the score"
    )
    assert [g.answer for g in merged.disagreements] == ["Lyon"]
    zero = merge_answers("q", [answer("a", "Paris", 0.0), answer("b", "Lyon", 0.0)])
    assert zero.status == "contested"


def test_flagged_citations_do_not_count_as_support() -> None:
    wrong = CitationStatus.OUT_OF_RANGE
    merged = merge_answers(
        "q",
        [
            answer("a", "Paris", 0.9, wrong),
            answer("b", "Paris", 0.9, CitationStatus.QUOTE_NOT_FOUND),
            answer("c", "Lyon", 0.8, CitationStatus.OK),
        ],
    )
    assert merged.answer == "Lyon" and merged.status == "resolved"
    assert merged.best is not None and merged.best.score == 0.8
    assert merged.disagreements[0].score == 0.9 * 0.25 * 2
    assert merged.disagreements[0].verified == ()
    expired = merge_answers("q", [answer("a", "Paris", 0.8, CitationStatus.EXPIRED)])
    assert expired.best is not None and expired.best.score == 0.4  # as if uncited
    assert expired.status == "agreed"


def test_not_found_and_no_answer() -> None:
    none = merge_answers("q", [answer("a", "", 0.7)], missing={"b": "no answer within 5s"})
    assert none.status == "not found" and not none.found and none.missing == ("b",)
    assert "Missing: b (no answer within 5s)." in none.text
    nothing = merge_answers("q", [], missing={"a": "failed: boom"})
    assert nothing.status == "no answer" and nothing.reason == "no shard answered"


# -- composing from passages (--answer-spec) ---------------------------------------


@dataclass(frozen=True)
class P:
    """A passage as ``ask`` returns it."""

    source: str
    shard: str
    score: float
    text: str
    line: str = ""


async def test_composed_answer_citations_are_checked_against_passages(
    swarm: Swarm, settings: Settings
) -> None:
    kb = MemoryShard(swarm, "kb", spec="research")
    await kb.load_documents([("projects/zeta.md", ZETA)])
    await MemoryShard(swarm, "kb2", spec="research").load_documents([("misc/lunch.md", UNRELATED)])
    lines = ZETA.splitlines()
    passages = [
        P("misc/lunch.md:3", "kb2", 1.0, "The canteen serves soup on Mondays."),
        P("projects/zeta.md:3-5", "kb", 2.0, "\n".join(lines[2:5]), "projects/zeta.md:4"),
    ]
    task = compose_task(QUESTION, passages, "compose", {"kb": 1, "kb2": 1})
    assert task.shard is None and task.data["format"] == "swarmstream.answer/1"
    assert task.data["passages"][1] == {
        "n": 2,
        "source": "projects/zeta.md:3-5",
        "line": "projects/zeta.md:4",
        "shard": "kb",
        "context_version": 1,
        "score": 2.0,
        "text": "\n".join(lines[2:5]),
    }
    assert "[2] projects/zeta.md:3-5 (shard kb, context version 1)\n" in task.text

    # the shard changes after the passages were gathered: line 4 is no longer the code
    await kb.load_documents([("projects/zeta.md", "# Moved\n")])
    async with running_worker("compose", agent("composer.py"), settings, concurrency=3):
        composed = await compose_answer(
            swarm, QUESTION, passages, "compose", 60, versions={"kb": 1}
        )
        current = await compose_answer(swarm, QUESTION, passages, "compose", 60)
    assert composed.status == "answered" and composed.answer == "4417-ZETA", composed.text
    statuses = [c.status for c in composed.checks]
    assert statuses == [
        CitationStatus.OK,  # [2], quote in the passage's lines
        CitationStatus.OK,  # projects/zeta.md:4, inside passage 2
        CitationStatus.QUOTE_NOT_FOUND,
        CitationStatus.NOT_IN_PASSAGES,
    ]
    assert composed.checks[0].source == "projects/zeta.md:3-5"
    assert composed.checks[0].reason == "passage [2]: the cited lines hold the quote"
    assert composed.reason == "2 of 4 citation(s) verified"
    assert [c.version for c in composed.checks[:3]] == [1, 1, 1]
    assert "[FLAGGED not in passages] elsewhere.md:3" in composed.text
    assert composed.to_json()["flagged"][0]["status"] == "quote not found"
    # against the current version (2), the same lines no longer exist
    assert [c.status for c in current.checks[:2]] == [CitationStatus.OUT_OF_RANGE] * 2


async def test_compose_without_passages_or_worker(swarm: Swarm) -> None:
    checker = CitationChecker.of(swarm)
    made_up = await check_against_passages(
        [parse_citation("as the text says"), parse_citation("[7]")],
        [P("a.md:1", "kb", 1.0, "a")],
        checker,
        {},
    )
    assert [c.status for c in made_up] == [
        CitationStatus.MALFORMED,
        CitationStatus.NOT_IN_PASSAGES,  # there is no passage 7
    ]
    empty = await compose_answer(swarm, QUESTION, [], "compose", 5)
    assert empty.status == "no passages" and empty.task_id is None
    late = await compose_answer(swarm, QUESTION, [P("a.md:1", "kb", 1.0, "a")], "nobody", 0.3)
    assert late.status == "no answer" and late.reason == "no answer within 0.3s"
    assert not late.found and "No composed answer (no answer)" in late.text


# -- pass syntheses ------------------------------------------------------------------


async def test_synthesis_records_unverified_sources(swarm: Swarm, settings: Settings) -> None:
    shard = MemoryShard(swarm, "syn", spec="syn")
    await shard.load_documents([("notes.md", "a\nb\nc\nd\ne\n")])
    cites = {
        "valid": (["notes.md:2"], None),
        "bad": (["notes.md:2", "notes.md:99", "ghost.md:1"], None),
        "old": (["notes.md:4"], {"context_version": 1}),  # reports the version it read
        "new": (["notes.md:5"], None),  # checked against the current version
    }

    def handler(task: Task) -> Result:
        sources, data = cites[task.text]
        return Result(f"finding {task.text}", tuple(sources), data=data)

    async with running_worker("syn", as_handler(handler), settings, concurrency=3):
        tasks = await shard.post(list(cites), pass_no=1)
        found = await swarm.wait_many(tasks, timeout=30)
    assert len(found) == 4
    await shard.load_documents([("notes.md", "a\nb\nc\n")])  # version 2: three lines
    checker = CitationChecker.of(swarm)
    ids = [t.id for t in tasks]
    knowledge = await shard.synthesize(1, ids, MergeSynthesizer(checker=checker))
    reasons = dict(knowledge.unverified)
    assert list(reasons) == ["ghost.md:1", "notes.md:5", "notes.md:99"]
    assert reasons["ghost.md:1"] == "no document ghost.md in shard syn's context version 2"
    assert reasons["notes.md:99"].startswith(
        "notes.md has lines 1-3 in shard syn's context version 2"
    )
    assert "line 5 is not among them" in reasons["notes.md:5"]
    assert "notes.md:99 (unverified)" in knowledge.summary
    assert "Unverified citations (3):" in knowledge.summary
    stored = await shard.knowledge(1)
    assert stored is not None and stored.unverified == knowledge.unverified

    by_handler = await HandlerSynthesizer(as_handler(lambda t: "summary"), checker=checker)(
        "syn", 1, list(found.values()), []
    )
    assert by_handler.summary == "summary" and by_handler.unverified == knowledge.unverified
    plain = await MergeSynthesizer()("syn", 1, list(found.values()), [])
    assert plain.unverified == ()  # no checker: nothing checked, as before


def test_old_knowledge_records_still_load() -> None:
    old = unpack(Knowledge("s", 1, "sum", sources=("a.md:1",)).to_bytes())
    del old["unverified"]
    loaded = Knowledge.from_bytes(pack(old))
    assert loaded.unverified == () and loaded.sources == ("a.md:1",)
