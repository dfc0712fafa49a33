"""A claimed task's shard context as an agent reads it: the text itself when small,
else a file written once per context version into a private temporary folder
(removed when the session ends)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from typing import Any

from swarmstream.context import Context
from swarmstream.shard.borrow import ContextCache
from swarmstream.transport.shards import ShardStore

#: contexts up to this many bytes are returned inline; larger ones as a file path
INLINE_BYTES = 64 * 1024
#: documents listed by path in a context's description
LISTED_DOCUMENTS = 200


class ContextDesk:
    """Borrows shard contexts (cached by version) and hands them to the agent."""

    def __init__(self, store: ShardStore, inline_bytes: int = INLINE_BYTES) -> None:
        self.cache = ContextCache(store)
        self.inline_bytes = inline_bytes
        self._dir: str | None = None

    async def describe(self, shard: str) -> dict[str, Any] | None:
        """The shard's current context: version, size, documents, and either
        ``text`` or ``file``; None if the shard has no context."""
        ctx = await self.cache.borrow(shard)
        if ctx is None:
            return None
        paths = [d.path for d in ctx.documents]
        out: dict[str, Any] = {
            "shard": shard,
            "version": ctx.version,
            "bytes": len(ctx.blob),
            "tokens": ctx.tokens,
            "documents": paths[:LISTED_DOCUMENTS],
        }
        if len(paths) > LISTED_DOCUMENTS:
            out["documents_not_listed"] = len(paths) - LISTED_DOCUMENTS
        if len(ctx.blob) <= self.inline_bytes:
            out["text"] = ctx.text
        else:
            out["file"] = await asyncio.to_thread(self._file, ctx)
            out["note"] = (
                f"the context is over {self.inline_bytes // 1024} KiB: read it from 'file' "
                "(UTF-8; documents are concatenated in the order listed)"
            )
        return out

    def _file(self, ctx: Context) -> str:
        """The file holding this context version, written once (atomically)."""
        if self._dir is None or not os.path.isdir(self._dir):
            self._dir = tempfile.mkdtemp(prefix="swarmstream-mcp-")  # mode 0700
        path = os.path.join(self._dir, f"{ctx.shard}-v{ctx.version}.txt")
        if not os.path.exists(path):
            fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(ctx.blob)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return path

    def close(self) -> None:
        """Remove the context files."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
