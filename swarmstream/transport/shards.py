"""Shard state in Redis: versioned contexts, registration, collection, knowledge,
workflow progress. Every multi-key step touches one shard's hash slot."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from swarmstream.codec import text as _s
from swarmstream.keys import Keys
from swarmstream.transport.connection import stream_entries
from swarmstream.transport.link import Link

#: Seconds an old context version stays readable after a reload.
OLD_VERSION_GRACE = 600
#: Findings a shard keeps in its collection (MAXLEN ~); knowledge keeps the rest.
COLLECTED_MAXLEN = 100_000


class ShardStore:
    """Redis operations for memory shards of one namespace."""

    def __init__(self, link: Link, keys: Keys) -> None:
        self.link = link
        self.client: Any = link.client  # replies are bytes; converted here
        self.keys = keys

    # -- registration ------------------------------------------------------

    async def register(self, shard: str, fields: Mapping[str, str | int | float]) -> None:
        """Create or update a shard's meta hash and its heartbeat in the registry."""
        k = self.keys.shard(shard)
        now = time.time()
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(k.meta, mapping={**fields, "id": shard, "heartbeat": f"{now:.3f}"})
            pipe.zadd(self.keys.shards, {shard: now})
            await pipe.execute()

    async def meta(self, shard: str) -> dict[str, str]:
        raw = await self.client.hgetall(self.keys.shard(shard).meta)
        return {_s(a): _s(b) for a, b in raw.items()}

    async def shard_ids(self) -> list[str]:
        return [_s(x) for x in await self.client.zrange(self.keys.shards, 0, -1)]

    # -- context -----------------------------------------------------------

    async def store_context(
        self, shard: str, blob: bytes, manifest: bytes, info: Mapping[str, str | int]
    ) -> int:
        """Write a new immutable context version and switch to it atomically.

        The previous version stays readable for OLD_VERSION_GRACE seconds, so a
        reader that fetched the old version number still gets a whole version.
        """
        k = self.keys.shard(shard)
        version = int(await self.client.hincrby(k.meta, "next_version", 1))
        old = await self.client.hget(k.meta, "version")
        flat = [x for pair in {**info, "version": version}.items() for x in pair]
        commands: list[tuple[Any, ...]] = [
            ("SET", k.context(version), blob),
            ("SET", k.manifest(version), manifest),
            ("HSET", k.meta, *flat),
        ]
        if old is not None and int(old) != version:
            commands.append(("EXPIRE", k.context(int(old)), OLD_VERSION_GRACE))
            commands.append(("EXPIRE", k.manifest(int(old)), OLD_VERSION_GRACE))
        await self.link.transaction(commands, key=k.meta)
        return version

    async def context_version(self, shard: str) -> int | None:
        raw = await self.client.hget(self.keys.shard(shard).meta, "version")
        return int(raw) if raw is not None else None

    async def context_versions(self, shards: Sequence[str]) -> dict[str, int | None]:
        """The current context version of each shard (None: it has none), read in one
        round trip (one pipeline per slot group, concurrently, on a cluster)."""
        commands = [
            (self.keys.shard(s).meta, ("HGET", self.keys.shard(s).meta, "version")) for s in shards
        ]
        replies = await self.link.batch(commands)
        out: dict[str, int | None] = {}
        for shard, reply in zip(shards, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            out[shard] = int(reply) if reply is not None else None
        return out

    async def fetch_context(self, shard: str, version: int) -> tuple[bytes, bytes] | None:
        """The blob and manifest of one version, read together (MULTI), or None."""
        k = self.keys.shard(shard)
        blob, manifest = await self.link.transaction(
            [("GET", k.context(version)), ("GET", k.manifest(version))], key=k.meta
        )
        if blob is None or manifest is None:
            return None
        return blob, manifest

    # -- collection --------------------------------------------------------

    async def collect_cursor(self, shard: str, spec: str) -> str:
        raw = await self.client.hget(self.keys.shard(shard).meta, f"cursor:{spec}")
        return _s(raw) if raw is not None else "0-0"

    async def read_findings(
        self, spec: str, cursor: str, count: int, block_ms: int | None
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        """Raw finding entries of a spec after ``cursor`` (XREAD)."""
        args: list[Any] = ["XREAD", "COUNT", count]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", self.keys.spec(spec).findings, cursor]
        reply = await self.link.call(*args, key=self.keys.spec(spec).findings, block_ms=block_ms)
        return [(entry_id, fields) for _, entry_id, fields in stream_entries(reply)]

    async def append_collected(
        self, shard: str, spec: str, cursor: str, entries: list[dict[bytes, bytes]]
    ) -> None:
        """Append findings to the shard's collection and advance its cursor, atomically."""
        k = self.keys.shard(shard)
        commands: list[tuple[Any, ...]] = [
            ("XADD", k.collected, "MAXLEN", "~", COLLECTED_MAXLEN, "*", *_flat(fields))
            for fields in entries
        ]
        commands.append(("HSET", k.meta, f"cursor:{spec}", cursor))
        commands.append(("HINCRBY", k.meta, "collected", len(entries)))
        await self.link.transaction(commands, key=k.meta)

    async def collected(
        self, shard: str, after: str | None = None
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        """The shard's collected findings, all or only those after entry id ``after``."""
        start = "-" if after is None else f"({after}"
        rows = await self.client.xrange(self.keys.shard(shard).collected, min=start)
        return [(_s(i), f) for i, f in rows]

    async def collected_mark(self, shard: str) -> str:
        """The id of the newest collected finding ('0-0' if none): read before posting
        a pass, it bounds what that pass's synthesis reads."""
        rows = await self.client.xrevrange(self.keys.shard(shard).collected, count=1)
        return _s(rows[0][0]) if rows else "0-0"

    # -- knowledge and workflow state ---------------------------------------

    async def put_knowledge(self, shard: str, pass_no: int, body: bytes) -> None:
        k = self.keys.shard(shard)
        await self.link.transaction(
            [
                ("HSET", k.knowledge, str(pass_no), body),
                ("HSET", k.meta, "knowledge_pass", pass_no),
            ],
            key=k.meta,
        )

    async def knowledge(self, shard: str) -> dict[int, bytes]:
        raw = await self.client.hgetall(self.keys.shard(shard).knowledge)
        return {int(a): b for a, b in raw.items()}

    async def workflow_state(self, shard: str) -> dict[str, str]:
        raw = await self.client.hgetall(self.keys.shard(shard).workflow)
        return {_s(a): _s(b) for a, b in raw.items()}

    async def set_workflow_state(self, shard: str, fields: Mapping[str, str | int]) -> None:
        k = self.keys.shard(shard)
        commands: list[tuple[Any, ...]] = [("HSET", k.workflow, *_flat(fields))]
        for name in ("pass", "progress"):
            if name in fields:
                commands.append(("HSET", k.meta, name, fields[name]))
        await self.link.transaction(commands, key=k.meta)


def _flat(fields: Mapping[Any, Any]) -> list[Any]:
    return [x for pair in fields.items() for x in pair]
