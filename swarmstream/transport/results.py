"""Reading findings and managing dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from swarmstream import codec
from swarmstream.codec import text as _s
from swarmstream.keys import Keys
from swarmstream.models import DeadLetter, Finding
from swarmstream.transport.connection import fields_of, stream_entries
from swarmstream.transport.link import Link, first_replies
from swarmstream.transport.scripts import Scripts


class Results:
    """Findings and dead letters of one namespace."""

    def __init__(self, link: Link, keys: Keys, scripts: Scripts) -> None:
        self.link = link
        self.client: Any = link.client  # replies are bytes; converted here
        self.keys = keys
        self.scripts = scripts

    async def specs(self) -> list[str]:
        """Every spec that has ever had a task stream in this namespace."""
        return sorted(_s(s) for s in await self.client.smembers(self.keys.specs))

    async def finding(self, spec: str, task_id: str) -> Finding | None:
        """The finding of one task, or None if it has none (yet, or trimmed)."""
        k = self.keys.spec(spec)
        fid = await self.client.get(k.done(task_id))
        if fid is None:
            return None
        rows = await self.client.xrange(k.findings, min=fid, max=fid, count=1)
        if not rows:
            return None
        entry_id, fields = rows[0]
        return codec.decode_finding(_s(entry_id), fields)

    async def findings(
        self, spec: str, start: str = "-", end: str = "+", count: int | None = None
    ) -> list[Finding]:
        """Findings of a spec in stream order."""
        rows = await self.client.xrange(self.keys.spec(spec).findings, start, end, count)
        return [codec.decode_finding(_s(i), f) for i, f in rows]

    async def newest_findings(
        self, spec: str, count: int, shard: str | None = None, page: int = 1000
    ) -> list[Finding]:
        """The newest ``count`` findings of a spec (of one shard, if given), oldest
        first. XREVRANGE reads backwards from the newest entry: ``count`` entries
        without a shard; with one, pages of ``max(count, page)`` until enough match
        or the stream is exhausted."""
        if count <= 0:
            return []
        key = self.keys.spec(spec).findings
        size = count if shard is None else max(count, page)
        out: list[Finding] = []
        end = "+"
        while len(out) < count:
            rows = await self.client.xrevrange(key, end, "-", size)
            for entry_id, fields in rows:
                finding = codec.decode_finding(_s(entry_id), fields)
                if shard is None or finding.shard == shard:
                    out.append(finding)
                    if len(out) == count:
                        break
            if len(rows) < size:
                break
            end = f"({_s(rows[-1][0])}"
        out.reverse()
        return out

    async def last_finding_id(self, spec: str) -> str:
        """The id of the newest finding of a spec ('0-0' if none): a follow cursor."""
        rows = await self.client.xrevrange(self.keys.spec(spec).findings, count=1)
        return _s(rows[0][0]) if rows else "0-0"

    async def follow(
        self, cursors: dict[str, str], block_ms: int, count: int = 500
    ) -> tuple[dict[str, str], list[Finding]]:
        """Block until new findings arrive after the per-spec cursors (XREAD).

        Returns the advanced cursors and the findings, in arrival order per spec.
        """
        by_key = {self.keys.spec(s).findings: s for s in cursors}

        async def xread(keys: list[str]) -> Any:
            args: list[Any] = ["XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", *keys]
            args += [cursors[by_key[k]] for k in keys]
            return await self.link.call(*args, key=keys[0], block_ms=block_ms)

        replies = await first_replies(self.link.slot_groups(list(by_key)), xread)
        out: list[Finding] = []
        nxt = dict(cursors)
        entries = (e for reply in replies for e in stream_entries(reply))
        for raw_key, entry_id, fields in entries:
            key = raw_key.decode()
            nxt[by_key[key]] = entry_id
            out.append(codec.decode_finding(entry_id, fields))
        return nxt, out

    async def probe(self, spec: str, task_ids: Sequence[str]) -> tuple[str, list[Finding]]:
        """A follow cursor for the spec's findings and the findings that already exist
        for ``task_ids``: two round trips at most (cursor + markers, then the entries).

        The cursor is read before the markers, so a finding written in between is
        either found by its marker or read after the cursor: never missed."""
        k = self.keys.spec(spec)
        last, marks = await self.link.pipeline(
            [("XREVRANGE", k.findings, "+", "-", "COUNT", 1), ("MGET", *map(k.done, task_ids))],
            key=k.findings,
        )
        for reply in (last, marks):
            if isinstance(reply, ResponseError):
                raise reply
        cursor = _s(last[0][0]) if last else "0-0"
        return cursor, await self.entries(spec, [_s(m) for m in marks if m is not None])

    async def entries(self, spec: str, finding_ids: Sequence[str]) -> list[Finding]:
        """The findings with these entry ids (one pipelined round trip)."""
        if not finding_ids:
            return []
        k = self.keys.spec(spec)
        rows = await self.link.pipeline(
            [("XRANGE", k.findings, fid, fid, "COUNT", 1) for fid in finding_ids], key=k.findings
        )
        return [
            codec.decode_finding(_s(r[0][0]), fields_of(r[0][1]))
            for r in rows
            if r and not isinstance(r, ResponseError)
        ]

    async def done_many(self, spec: str, task_ids: Sequence[str]) -> dict[str, str]:
        """Map task ids that have a finding to their finding entry ids (one MGET)."""
        if not task_ids:
            return {}
        k = self.keys.spec(spec)
        values = await self.client.mget([k.done(t) for t in task_ids])
        return {t: _s(v) for t, v in zip(task_ids, values, strict=True) if v is not None}

    # -- dead letters ------------------------------------------------------

    async def dead(self, spec: str, count: int = 100) -> list[DeadLetter]:
        """The newest dead letters of a spec, oldest first."""
        rows = await self.client.xrevrange(self.keys.spec(spec).dead, count=count)
        return [codec.decode_dead(spec, _s(i), f) for i, f in reversed(rows)]

    async def dead_count(self, spec: str) -> int:
        return int(await self.client.xlen(self.keys.spec(spec).dead))

    async def requeue(self, spec: str, entry_ids: Sequence[str] | None = None) -> list[str]:
        """Move dead letters back to the task stream (all of them when ids is None).

        Returns the new task entry ids. A requeued task gets a fresh finding.
        """
        k = self.keys.spec(spec)
        if entry_ids is None:
            rows = await self.client.xrange(k.dead)
        else:
            rows = []
            for eid in entry_ids:
                rows += await self.client.xrange(k.dead, eid, eid)
        new_ids: list[str] = []
        for entry_id, fields in rows:
            letter = codec.decode_dead(spec, _s(entry_id), fields)
            if not letter.fields:
                continue
            done = k.done(letter.task_id) if letter.task_id else k.nil
            flat = [x for pair in letter.fields.items() for x in pair]
            new = await self.scripts.requeue(
                keys=[k.dead, k.tasks, done], args=[letter.entry_id, *flat]
            )
            if new:
                new_ids.append(_s(new))
        return new_ids

    async def purge_dead(self, spec: str) -> int:
        """Delete every dead letter of a spec; returns how many there were."""
        k = self.keys.spec(spec)
        n, _ = await self.link.transaction([("XLEN", k.dead), ("DEL", k.dead)], key=k.dead)
        return int(n)
