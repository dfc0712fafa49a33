"""MemoryShard (the seed's SwarmMemoryShard): a persistent agent's memory in Redis.

A shard holds a large context, posts tasks that borrow it, collects the findings
of its own tasks (and only those), and synthesizes each pass into knowledge.
Everything lives in Redis, so a shard process can restart without losing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from swarmstream import codec
from swarmstream.answers.citations import CitationChecker
from swarmstream.client import Swarm
from swarmstream.context import Context, Manifest, build, read_paths
from swarmstream.keys import validate_name
from swarmstream.models import DEFAULT_MAX_ATTEMPTS, Finding, Task, new_task_id
from swarmstream.shard.borrow import ContextCache
from swarmstream.shard.synthesis import Knowledge, MergeSynthesizer, Synthesizer


class MemoryShard:
    """One memory shard of a swarm. Use inside ``async with Swarm(...)``."""

    def __init__(self, swarm: Swarm, shard_id: str, spec: str) -> None:
        self.swarm = swarm
        self.id = validate_name("shard", shard_id)
        self.spec = validate_name("spec", spec)
        self.store = swarm.transport.shards
        self.contexts = ContextCache(self.store)

    async def register(self, **extra: str | int | float) -> None:
        """Record this shard (id, spec) and refresh its heartbeat."""
        await self.store.register(self.id, {"spec": self.spec, **extra})

    async def info(self) -> dict[str, str]:
        return await self.store.meta(self.id)

    # -- context -----------------------------------------------------------

    async def load(self, paths: Iterable[str | Path], root: str | Path | None = None) -> Manifest:
        """Load files and directories as this shard's new context version."""
        return await self.load_documents(read_paths(paths, root))

    async def load_documents(self, docs: Sequence[tuple[str, str]]) -> Manifest:
        """Load ``(path, text)`` pairs as the new context version (atomic switch)."""
        blob, manifest = build(docs)
        info: dict[str, str | int] = {
            "spec": self.spec,
            "tokens": manifest.tokens,
            "chars": manifest.chars,
            "documents": len(manifest.documents),
            "sha256": manifest.sha256,
        }
        await self.store.store_context(self.id, blob.encode("utf-8"), manifest.to_bytes(), info)
        await self.register()
        return manifest

    async def context(self) -> Context | None:
        """The current context version, as workers borrow it."""
        return await self.contexts.borrow(self.id)

    # -- tasks and findings --------------------------------------------------

    async def post(
        self,
        texts: Sequence[str],
        *,
        pass_no: int = 0,
        data: Any = None,
        ids: Sequence[str] | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        timeout: float | None = None,
        spec: str | None = None,
    ) -> list[Task]:
        """Post tasks that borrow this shard's context; returns them."""
        return await self.swarm.submit_many(
            self.tasks(
                texts,
                pass_no=pass_no,
                data=data,
                ids=ids,
                max_attempts=max_attempts,
                timeout=timeout,
                spec=spec,
            )
        )

    def tasks(
        self,
        texts: Sequence[str],
        *,
        pass_no: int = 0,
        data: Any = None,
        ids: Sequence[str] | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        timeout: float | None = None,
        spec: str | None = None,
    ) -> list[Task]:
        """The tasks ``post`` would post (to submit several groups in one round trip)."""
        return [
            Task(
                spec=spec or self.spec,
                text=text,
                id=ids[i] if ids else new_task_id(),
                data=data,
                shard=self.id,
                pass_no=pass_no,
                max_attempts=max_attempts,
                timeout=timeout,
            )
            for i, text in enumerate(texts)
        ]

    async def collect(self, spec: str | None = None, block_ms: int | None = None) -> int:
        """Move new findings of this shard's tasks into its collection; returns how many.

        Reads the spec's findings stream from a cursor kept in Redis and keeps only
        entries whose ``shard`` field is this shard. The append and the cursor move
        are one transaction, so a restarted shard neither misses nor repeats any.
        """
        spec = spec or self.spec
        total = 0
        cursor = await self.store.collect_cursor(self.id, spec)
        while True:
            rows = await self.store.read_findings(spec, cursor, 1000, block_ms)
            if not rows:
                return total
            cursor = rows[-1][0]
            mine = [f for _, f in rows if f.get(b"shard") == self.id.encode()]
            await self.store.append_collected(self.id, spec, cursor, mine)
            total += len(mine)
            block_ms = None

    async def findings(self, pass_no: int | None = None, after: str | None = None) -> list[Finding]:
        """Collected findings (the latest per task), optionally of one pass, and only
        those collected after entry id ``after`` (see ``ShardStore.collected_mark``)."""
        latest: dict[str, Finding] = {}
        for entry_id, fields in await self.store.collected(self.id, after):
            f = codec.decode_finding(entry_id, fields)
            if pass_no is None or f.pass_no == pass_no:
                latest[f.task_id] = f
        return list(latest.values())

    # -- knowledge -----------------------------------------------------------

    async def synthesize(
        self,
        pass_no: int,
        expected: Sequence[str] = (),
        synthesizer: Synthesizer | None = None,
        after: str | None = None,
    ) -> Knowledge:
        """Synthesize a pass's findings into knowledge, stored in Redis.

        ``expected`` task ids without an ``ok`` finding are recorded as missing, so
        a pass with failed or dead-lettered tasks yields a partial synthesis.
        ``after``: read only findings collected after this entry id (the mark taken
        before the pass was posted), so the cost does not grow with the history.
        """
        await self.collect()
        findings = await self.findings(pass_no, after)
        if expected:  # only this run's tasks, not earlier runs of the same pass number
            wanted = set(expected)
            findings = [f for f in findings if f.task_id in wanted]
        ok = {f.task_id for f in findings if f.ok}
        missing = [t for t in expected if t not in ok]
        if synthesizer is None:  # flags cited sources this shard's context does not hold
            synthesizer = MergeSynthesizer(checker=CitationChecker(self.store, self.contexts))
        knowledge = await synthesizer(self.id, pass_no, findings, missing)
        await self.store.put_knowledge(self.id, pass_no, knowledge.to_bytes())
        return knowledge

    async def knowledge(self, pass_no: int | None = None) -> Knowledge | None:
        """The synthesis of one pass (default: the latest)."""
        stored = await self.store.knowledge(self.id)
        if not stored:
            return None
        key = max(stored) if pass_no is None else pass_no
        return Knowledge.from_bytes(stored[key]) if key in stored else None

    async def heartbeat(self) -> None:
        """Refresh this shard's heartbeat (``NS:shards`` score and meta field)."""
        await self.store.register(self.id, {"spec": self.spec})

    async def keep_alive(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        """Heartbeat every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            await self.heartbeat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


#: The seed's name for a memory shard.
SwarmMemoryShard = MemoryShard
