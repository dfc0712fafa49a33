"""Borrowing a parent shard's context by reference, cached by version."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from swarmstream.context import Context, Manifest
from swarmstream.errors import SwarmstreamError
from swarmstream.transport.shards import ShardStore


class ContextCache:
    """Lends contexts to a worker's tasks. One small round trip per borrow checks the
    current version; a version already held is never fetched again. Versions are
    kept least-recently-used first within ``max_versions`` and ``max_bytes``."""

    def __init__(
        self, store: ShardStore, max_versions: int = 64, max_bytes: int = 512 << 20
    ) -> None:
        self.store = store
        self.max_versions = max_versions
        self.max_bytes = max_bytes
        self._cache: OrderedDict[tuple[str, int], Context] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Future[Context | None]] = {}
        self.fetches = 0

    def _evict(self) -> None:
        """Drop least recently used versions beyond the count or byte budget."""
        size = sum(len(c.blob) for c in self._cache.values())
        while len(self._cache) > 1 and (
            len(self._cache) > self.max_versions or size > self.max_bytes
        ):
            _, old = self._cache.popitem(last=False)
            size -= len(old.blob)

    async def borrow(self, shard: str) -> Context | None:
        """The shard's current context, or None if it has none."""
        for _ in range(5):
            version = await self.store.context_version(shard)
            if version is None:
                return None
            ctx = await self.get(shard, version)
            if ctx is not None:
                return ctx
        raise SwarmstreamError(f"context of shard {shard!r} keeps changing; try again")

    async def get(self, shard: str, version: int) -> Context | None:
        """One exact version (None if it expired); concurrent callers share one fetch."""
        key = (shard, version)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Context | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            got = await self.store.fetch_context(shard, version)
            self.fetches += 1
            ctx = (
                None
                if got is None
                else Context(shard, version, got[0], Manifest.from_bytes(got[1]))
            )
            if ctx is not None:
                self._cache[key] = ctx
                self._evict()
            future.set_result(ctx)
            return ctx
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._loading[key]
