"""Memory shards: context storage and borrowing, versioned reloads, collection of
a shard's own findings, synthesis, and restarts that lose nothing."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
import redis
from helpers import await_until

from swarmstream import EphemeralWorker, Settings, Status, Swarm, Task
from swarmstream.context import build, read_paths
from swarmstream.handlers import as_handler
from swarmstream.models import Finding
from swarmstream.shard import Context, ContextCache, MemoryShard, MergeSynthesizer
from swarmstream.shard.synthesis import HandlerSynthesizer

#: every test here runs on a single server, a Redis Cluster and a Sentinel group
pytestmark = pytest.mark.contract


def _big_docs(total_chars: int, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "ünïcode", "日本", "ledger", "route", "cargo"]
    docs, size, i = [], 0, 0
    while size < total_chars:
        lines = [" ".join(rng.choices(words, k=12)) for _ in range(400)]
        text = "\n".join(lines) + "\n"
        docs.append((f"docs/part{i:03d}.md", text))
        size += len(text)
        i += 1
    return docs


async def test_4mb_context_round_trips_byte_for_byte(swarm: Swarm) -> None:
    docs = _big_docs(4_200_000)
    shard = MemoryShard(swarm, "big", "research")
    manifest = await shard.load_documents(docs)
    ctx = await shard.context()
    assert ctx is not None
    expected, _ = build(docs)
    assert ctx.text == expected
    assert ctx.blob == expected.encode("utf-8")
    assert manifest.chars == len(expected) >= 4_000_000
    assert manifest.tokens == (len(expected) + 3) // 4
    info = await shard.info()
    assert int(info["tokens"]) == manifest.tokens and int(info["documents"]) == len(docs)


async def test_citations_point_at_the_right_lines(swarm: Swarm, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("one\ntwo\nthree needle\nfour\n")
    (tmp_path / "notes" / "b.md").write_text("x\ny\nz\n")
    (tmp_path / "notes" / "blob.bin").write_bytes(b"\x00\x01binary")
    shard = MemoryShard(swarm, "cite", "research")
    await shard.load([tmp_path / "notes"])
    ctx = await shard.context()
    assert ctx is not None
    assert [d.path for d in ctx.documents] == ["notes/a.md", "notes/b.md"]
    at = ctx.text.index("three needle")
    assert ctx.cite(at, at + 5) == "notes/a.md:3"
    assert ctx.cite(at, ctx.text.index("four") + 2) == "notes/a.md:3-4"
    zb = ctx.text.index("z\n", ctx.documents[1].start)
    assert ctx.cite(zb, zb + 1) == "notes/b.md:3"
    assert read_paths([tmp_path / "notes" / "b.md"]) == [("b.md", "x\ny\nz\n")]


async def test_reload_is_atomic_for_concurrent_readers(swarm: Swarm, settings: Settings) -> None:
    """Readers borrowing while the context is reloaded only ever see whole versions."""
    shard = MemoryShard(swarm, "flip", "research")
    versions = {
        n: [(f"v{n}/doc{j}.md", f"version {n} " * 20_000 + "\n") for j in range(4)]
        for n in range(6)
    }
    await shard.load_documents(versions[0])
    seen: list[tuple[int, str]] = []
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            cache = ContextCache(swarm.transport.shards)  # always a cold fetch
            ctx = await cache.borrow("flip")
            assert ctx is not None
            marks = {
                t.split(" ", 2)[1]
                for t in (ctx.document_text(i) for i in range(len(ctx.documents)))
            }
            assert len(marks) == 1, f"mixed versions: {marks}"
            assert {d.path.split("/")[0] for d in ctx.documents} == {f"v{marks.pop()}"}
            seen.append((ctx.version, ctx.manifest.sha256))

    readers = [asyncio.create_task(reader()) for _ in range(4)]
    for n in range(1, 6):
        await shard.load_documents(versions[n])
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*readers)
    assert len({v for v, _ in seen}) >= 2, "readers saw several versions"
    assert len(seen) > 10


async def test_workers_borrow_by_reference_and_cache_by_version(
    swarm: Swarm, settings: Settings
) -> None:
    shard = MemoryShard(swarm, "lender", "research")
    await shard.load_documents([("a.md", "the context\n" * 1000)])
    seen: list[tuple[int, int]] = []

    def handler(task: Task, context: Context | None) -> str:
        assert context is not None
        seen.append((context.version, len(context.text)))
        return f"{context.tokens} tokens"

    cache = ContextCache(swarm.transport.shards)
    worker = EphemeralWorker("research", handler, settings, context=cache)
    runner = asyncio.create_task(asyncio.wait_for(worker.run(), 30))
    first = await shard.post(["q1", "q2", "q3"])
    found = await swarm.wait_many(first, timeout=10)
    await shard.load_documents([("a.md", "new context\n" * 500)])
    second = await shard.post(["q4"])
    found.update(await swarm.wait_many(second, timeout=10))
    worker.stop()
    await runner
    assert all(f.status is Status.OK for f in found.values())
    assert cache.fetches == 2, "one fetch per version, however many tasks"
    assert sorted(set(seen)) == [(1, 12_000), (2, 6_000)]


async def test_shard_collects_only_its_own_findings_and_survives_restart(
    swarm: Swarm, settings: Settings, raw: redis.Redis
) -> None:
    a = MemoryShard(swarm, "shard-a", "research")
    b = MemoryShard(swarm, "shard-b", "research")
    await a.register()
    await b.register()
    worker = EphemeralWorker("research", lambda t: f"answer to {t.text}", settings)
    runner = asyncio.create_task(asyncio.wait_for(worker.run(), 30))
    ta = await a.post([f"a{i}" for i in range(5)], pass_no=1)
    tb = await b.post([f"b{i}" for i in range(7)], pass_no=1)
    await swarm.submit("research", "no shard at all")
    await swarm.wait_many(ta + tb, timeout=10)
    assert await a.collect() == 5
    assert await a.collect() == 0, "nothing is collected twice"
    # a restarted shard process: a new object, same id, continues from Redis
    a2 = MemoryShard(swarm, "shard-a", "research")
    more = await a2.post(["a-late"], pass_no=2)
    await swarm.wait_many(more, timeout=10)
    assert await a2.collect() == 1
    worker.stop()
    await runner
    mine = await a2.findings()
    assert sorted(f.task_id for f in mine) == sorted(t.id for t in ta + more)
    assert {f.shard for f in mine} == {"shard-a"}
    assert await b.collect() == 7
    k1 = await a2.synthesize(1, expected=[t.id for t in ta])
    assert k1.findings == 5 and not k1.partial
    assert "answer to a0" in k1.summary
    stored = await MemoryShard(swarm, "shard-a", "research").knowledge(1)
    assert stored == k1


async def test_merge_synthesis_dedupes_ranks_and_keeps_citations() -> None:
    def f(
        tid: str, content: str, sources: tuple[str, ...], status: Status = Status.OK, t: float = 0.0
    ) -> Finding:
        return Finding(
            task_id=tid, spec="s", status=status, content=content, sources=sources, finished=t
        )

    findings = [
        f("1", "Ports close at 6pm", ("ops.md:3",), t=1),
        f("2", "ports  close at 6PM", ("ops.md:3", "faq.md:9-11"), t=2),
        f("3", "Trucks need permits", ("law.md:40",), t=3),
        f("4", "", (), Status.FAILED, t=4),
    ]
    k = await MergeSynthesizer()("s1", 2, findings, missing=["4", "5"])
    assert [i.content for i in k.items] == ["Ports close at 6pm", "Trucks need permits"]
    assert k.items[0].support == 2
    assert k.items[0].sources == ("ops.md:3", "faq.md:9-11")
    assert k.partial and k.missing == ("4", "5")
    assert "[ops.md:3, faq.md:9-11] (x2)" in k.summary


async def test_handler_synthesizer_uses_any_handler() -> None:
    async def llm(task: Task) -> dict[str, object]:
        return {"content": "SYNTH: " + task.text.splitlines()[-1], "sources": ["x.md:1"]}

    findings = [Finding(task_id="1", spec="s", status=Status.OK, content="fact", sources=("a:1",))]
    k = await HandlerSynthesizer(as_handler(llm))("s1", 1, findings, [])
    assert k.summary == "SYNTH: - fact [a:1]"
    assert k.sources == ("x.md:1",)


async def test_shard_registers_and_keeps_a_heartbeat(swarm: Swarm) -> None:
    shard = MemoryShard(swarm, "beating", "research")
    stop = asyncio.Event()
    alive = asyncio.create_task(shard.keep_alive(stop, interval=0.05))
    await await_until(shard.info, what="registration")
    first = float((await shard.info())["heartbeat"])

    async def beat_again() -> bool:
        return float((await shard.info())["heartbeat"]) > first

    await await_until(beat_again, what="a second heartbeat")
    stop.set()
    await alive
    info = await shard.info()
    assert info["id"] == "beating" and info["spec"] == "research"
    assert float(info["heartbeat"]) > first
    assert "beating" in await swarm.transport.shards.shard_ids()
