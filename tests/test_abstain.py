"""``ask`` says "not found" when no shard supports an answer: the support measure of
the ``retrieve`` handler, the merge's decision over all shards, the threshold, the
CLI's JSON, and findings of handlers that report no support (they still merge)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import spawn, stop
from test_cli import cli

from swarmstream import EphemeralWorker, Settings, Swarm, Task
from swarmstream.context import build
from swarmstream.handlers.base import ContextLike
from swarmstream.handlers.retrieve import QueryTerm, Retrieve, query_terms, support
from swarmstream.models import Finding, Result, Status
from swarmstream.shard import Context, ContextCache, Manifest, MemoryShard
from swarmstream.shard.gather import DEFAULT_THRESHOLD, Answer, ask, merge

LOGISTICS = """# Logistics handbook

Orders leave the warehouses every weekday; each carrier collects them at the dock.
We use three carriers and review their contracts every quarter.

The warehouse in Tromsø ships cold-chain orders on Tuesdays via carrier Nordlys.
Cold-chain orders need a refrigerated truck and a signed temperature log.

The warehouse in Narvik ships bulk orders on Fridays via carrier Polar.
The Narvik dock closes at 17:00 on Fridays.
"""

OFFICES = """# Offices

The Tromsø office reviewed the quarterly budget in March.
The Bodø office hired two engineers for the support desk.

Staff use the shared calendar to book the meeting rooms.
"""

FLEET = """# Fleet

The warehouse in Bodø ships fragile orders on Mondays via carrier Hurtig.
Trucks need a permit above 40 tonnes, and every truck has a log book.
"""

SHARDS = {"kb-1": ("ops/logistics.md", LOGISTICS), "kb-2": ("ops/offices.md", OFFICES)}
SHARDS |= {"kb-3": ("ops/fleet.md", FLEET)}
FACT_LINE = "ops/logistics.md:6"
FOUND = "Which carrier does the Tromsø warehouse use for cold-chain orders?"
NEAR_MISS = "Which carrier does the Bergen warehouse use for cold-chain orders?"
NEAR_MISS_KNOWN = "Which carrier does the Narvik warehouse use for cold-chain orders?"
UNANSWERABLE = "What is the wingspan of the Albatross glider?"
IDS = list(SHARDS)


def context_of(path: str, text: str, shard: str = "kb-1") -> Context:
    blob, manifest = build([(path, text)])
    return Context(shard, 1, blob.encode(), Manifest.from_bytes(manifest.to_bytes()))


# -- the measure, without Redis ------------------------------------------------------


def test_query_terms_mark_names_numbers_and_code() -> None:
    marked = {q.term: q.name for q in query_terms(FOUND)}
    assert marked == {t: t == "tromsø" for t in marked}  # "Which" opens the sentence
    code = {q.term for q in query_terms("Does `logrotd` read app.toml on db-east-07?") if q.name}
    assert code == {"logrotd", "app", "toml", "db", "east", "07"}
    assert not any(q.name for q in query_terms("Tromsø: which carrier?"))  # first word


def test_support_weighs_terms_and_requires_names_and_known_words() -> None:
    query = [QueryTerm("carrier"), QueryTerm("tromsø", name=True), QueryTerm("use")]
    idfs = {"carrier": 2.0, "tromsø": 6.0, "use": 2.0}
    assert support(query, idfs, {"carrier", "tromsø", "use"}) == 1.0
    assert support(query, idfs, {"carrier", "tromsø"}) == pytest.approx(0.8)
    assert support(query, idfs, {"carrier", "use"}) == 0.0  # the name is missing
    assert support(query, {"carrier": 2.0, "use": 2.0}, {"carrier", "use"}) == 0.0  # unknown
    assert support([], idfs, set()) == 0.0


async def test_retrieve_reports_support_matched_terms_and_unknown_terms() -> None:
    ctx = context_of("ops/logistics.md", LOGISTICS)
    task = Task(spec="retrieve", text=NEAR_MISS_KNOWN, shard="kb-1", data={"k": 3})
    result = await Retrieve()(task, ctx)
    hits, query = result.data["hits"], result.data["query"]
    assert {"source", "line", "score", "text", "support", "matched"} <= set(hits[0])
    assert all(0.0 <= h["support"] <= 1.0 for h in hits)
    narvik = next(h for h in hits if "narvik" in h["matched"])
    assert narvik["support"] < DEFAULT_THRESHOLD and "cold" not in narvik["matched"]
    assert query["passages"] == 4
    assert {t["term"]: t["df"] for t in query["terms"]}["narvik"] == 1
    assert query["unknown"] == []
    miss = await Retrieve()(Task(spec="retrieve", text=NEAR_MISS, shard="kb-1"), ctx)
    assert miss.data["query"]["unknown"] == ["bergen"]
    assert all(h["support"] == 0.0 for h in miss.data["hits"])


def _finding(shard: str, data: object = None, content: str = "") -> Finding:
    return Finding(task_id=shard, spec="s", status=Status.OK, content=content, data=data)


def test_old_style_findings_still_merge_as_unchecked_passages() -> None:
    old = {"hits": [{"source": "a.md:1-2", "line": "a.md:1", "score": 3.0, "text": "x"}]}
    older = {"hits": [{"source": "b.md:4", "score": 7.5, "text": "y"}]}
    answer = merge(
        "anything?",
        {"s1": _finding("s1", old), "s2": _finding("s2", older), "s3": None},
        deadline=1.0,
    )
    assert answer.found and answer.sources == ("b.md:4", "a.md:1-2")  # by score
    assert [p.support for p in answer.passages] == [None, None]
    assert "no support measure" in answer.reason
    assert answer.searched == ("s1", "s2") and answer.missing == ("s3",)
    plain = merge("anything?", {"s1": _finding("s1", None, "a plain answer")}, deadline=1.0)
    assert plain.found and plain.passages[0].text == "a plain answer"
    assert merge("anything?", {"s1": _finding("s1", {"hits": []})}, deadline=1.0).found is False


# -- ask over three shards, with a worker running retrieve ------------------------------


@pytest.fixture
async def kb(settings: Settings, swarm: Swarm) -> AsyncIterator[Swarm]:
    """Three shards loaded, and an in-process worker running ``retrieve``."""
    for shard, doc in SHARDS.items():
        await MemoryShard(swarm, shard, "retrieve").load_documents([doc])
    cache = ContextCache(swarm.transport.shards, max_versions=8)
    worker = EphemeralWorker(
        "retrieve", Retrieve(), settings.with_worker(concurrency=8), context=cache
    )
    runner = asyncio.create_task(worker.run())
    yield swarm
    worker.stop()
    await asyncio.wait_for(runner, 30)


async def _ask(swarm: Swarm, question: str, **kw: float) -> Answer:
    answer = await ask(swarm, question, IDS, "retrieve", deadline=20, **kw)  # type: ignore[arg-type]
    assert answer.answered == tuple(IDS), answer.text
    return answer


async def test_found_with_its_exact_line(kb: Swarm) -> None:
    answer = await _ask(kb, FOUND)
    assert answer.found and answer.passages[0].line == FACT_LINE
    assert answer.support is not None and DEFAULT_THRESHOLD <= answer.support < 1.0
    assert all(p.support is not None and p.support >= DEFAULT_THRESHOLD for p in answer.passages)
    assert "Found in kb-1: " in answer.text and f"[{answer.sources[0]}]" in answer.text
    assert answer.to_json()["found"] is True


async def test_unanswerable_and_near_miss_are_not_found(kb: Swarm) -> None:
    for question, unknown in ((UNANSWERABLE, ("wingspan", "albatross", "glider")),
                              (NEAR_MISS, ("bergen",))):  # fmt: skip
        answer = await _ask(kb, question)
        assert not answer.found and answer.passages == ()
        assert answer.unknown == unknown and answer.searched == tuple(IDS)
        assert "no searched shard's text contains" in answer.reason
        assert answer.text.count("Not found in shards kb-1, kb-2, kb-3: ") == 1
        shown = answer.to_json()
        assert shown["found"] is False and shown["searched"] == IDS and shown["reason"]


async def test_a_near_miss_about_a_known_name_and_the_threshold(kb: Swarm) -> None:
    answer = await _ask(kb, NEAR_MISS_KNOWN)
    assert not answer.found and answer.unknown == ()
    assert answer.support is not None and 0.0 < answer.support < DEFAULT_THRESHOLD
    assert answer.nearest[0].source == "ops/logistics.md:9-10"  # Narvik's sentence
    assert "is below the threshold" in answer.reason and "Nearest passages" in answer.text
    lower = await _ask(kb, NEAR_MISS_KNOWN, threshold=round(answer.support, 4))
    assert lower.found and lower.sources[0] == "ops/logistics.md:9-10"
    found = await _ask(kb, FOUND)
    assert found.support is not None
    stricter = await _ask(kb, FOUND, threshold=min(1.0, found.support + 0.01))
    assert not stricter.found and stricter.nearest[0].line == FACT_LINE
    with pytest.raises(ValueError, match="threshold"):
        await ask(kb, FOUND, IDS, "retrieve", deadline=1, threshold=1.5)


async def test_an_old_style_handler_still_answers(settings: Settings, swarm: Swarm) -> None:
    async def legacy(task: Task, context: ContextLike | None) -> Result:
        hit = {"source": "old.md:3", "line": "old.md:3", "score": 1.5, "text": "old news"}
        return Result(content="old news", sources=("old.md:3",), data={"hits": [hit]})

    worker = EphemeralWorker("legacy", legacy, settings.with_worker(concurrency=2))
    runner = asyncio.create_task(worker.run())
    try:
        answer = await ask(swarm, "anything new?", ["old-1"], "legacy", deadline=20)
    finally:
        worker.stop()
        await asyncio.wait_for(runner, 30)
    assert answer.found and answer.sources == ("old.md:3",)
    assert answer.passages[0].support is None and answer.support is None


# -- the CLI ---------------------------------------------------------------------------


def test_cli_ask_json_says_not_found_and_takes_a_threshold(
    settings: Settings, tmp_path: Path
) -> None:
    for shard, (path, text) in SHARDS.items():
        root = tmp_path / shard
        (root / Path(path).parent).mkdir(parents=True)
        (root / path).write_text(text)
        loaded = cli(settings, "context", "load", shard, str(root), "--spec", "research")
        assert loaded.returncode == 0, loaded.stderr
    worker = spawn(settings, ["research"], "retrieve")
    try:
        miss = cli(settings, "ask", NEAR_MISS, "--deadline", "20", "--json")
        hit = cli(settings, "ask", FOUND, "--deadline", "20", "--json")
        strict = cli(settings, "ask", FOUND, "--deadline", "20", "--threshold", "1", "--json")
        text = cli(settings, "ask", UNANSWERABLE, "--deadline", "20")
        bad = cli(settings, "ask", FOUND, "--threshold", "2")
    finally:
        stop(worker)
    assert miss.returncode == 0, miss.stderr
    shown = json.loads(miss.stdout)
    assert shown["found"] is False and sorted(shown["searched"]) == IDS
    assert shown["passages"] == [] and "'bergen'" in shown["reason"]
    assert shown["threshold"] == DEFAULT_THRESHOLD and shown["unknown"] == ["bergen"]
    found = json.loads(hit.stdout)
    assert found["found"] is True and found["passages"][0]["line"].endswith(FACT_LINE)
    assert 0 < found["passages"][0]["support"] <= 1 and found["passages"][0]["matched"]
    assert json.loads(strict.stdout)["found"] is False
    assert text.returncode == 0 and "Not found in shards" in text.stdout
    assert "wingspan" in text.stdout
    assert bad.returncode == 2 and "threshold" in bad.stderr.lower()
