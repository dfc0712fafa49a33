"""Scatter-gather across memory shards: the scatter half.

A corpus too large for one context is split over several shards by a token budget
(``split_corpus``, ``load_shards``). A question is then posted once per shard; the
workers of the spec (for example the built-in ``retrieve`` handler) answer from
their shard's context, and ``ask`` (``swarmstream.shard.gather``, re-exported here)
merges whatever arrived before the deadline into one answer that names the shards
that answered and those that did not, and says "not found" when no passage
supports an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

from swarmstream.client import Swarm
from swarmstream.context import CHARS_PER_TOKEN, DocumentPart
from swarmstream.shard.gather import (
    DEFAULT_THRESHOLD,
    GRACE,
    MAX_K,
    Answer,
    Passage,
    ask,
    merge,
)
from swarmstream.shard.shard import MemoryShard

__all__ = [
    "DEFAULT_THRESHOLD",
    "GRACE",
    "MAX_K",
    "Answer",
    "Passage",
    "ask",
    "load_shards",
    "merge",
    "split_corpus",
]


def _stored(text: str) -> int:
    """Characters ``text`` takes in a context blob (``build`` ends it with a newline)."""
    return len(text) + (1 if text and not text.endswith("\n") else 0)


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their ``\\n``, split exactly as citations count them."""
    pos = 0
    while pos < len(text):
        nl = text.find("\n", pos)
        end = len(text) if nl == -1 else nl + 1
        yield text[pos:end]
        pos = end


class _Packer:
    """Fills shards one after the other, up to ``cap`` characters each."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.shards: list[list[tuple[str, str]]] = []
        self.current: list[tuple[str, str]] = []
        self.used = 0

    @property
    def room(self) -> int:
        return self.cap - self.used

    def add(self, doc: tuple[str, str], size: int) -> None:
        self.current.append(doc)
        self.used += size

    def next_shard(self) -> None:
        if self.current:
            self.shards.append(self.current)
        self.current, self.used = [], 0

    def pack_large(self, path: str, text: str) -> None:
        """Cut a document larger than a shard at line boundaries: the first part fills
        the current shard, the next ones whole shards. Each part keeps its first line
        number; a single line longer than a shard is cut inside (its pieces share it)."""
        buf: list[str] = []
        size = first = 0
        for line_no, line in enumerate(_lines(text), start=1):
            need = _stored(line)
            if size + need > self.room:
                if buf:
                    self.add(DocumentPart(path, "".join(buf), first), size)
                    buf, size = [], 0
                self.next_shard()
                while need > self.room:
                    piece = line[: self.room - 1]  # build() appends the newline
                    self.add(DocumentPart(path, piece, line_no), len(piece) + 1)
                    self.next_shard()
                    line = line[len(piece) :]
                    need = _stored(line)
            if not buf:
                first = line_no
            buf.append(line)
            size += need
        if buf:
            self.add(DocumentPart(path, "".join(buf), first), size)


def split_corpus(docs: Sequence[tuple[str, str]], token_budget: int) -> list[list[tuple[str, str]]]:
    """Split ``(path, text)`` documents over shards of at most ``token_budget`` tokens
    (``estimate_tokens``: four characters a token), keeping their order.

    A document that does not fit in the current shard starts the next one; a document
    larger than the budget is cut at line boundaries into ``DocumentPart``s that keep
    the path and the line numbers of the file, so citations stay true.
    """
    if token_budget < 1:
        raise ValueError("token_budget must be at least 1")
    packer = _Packer(token_budget * CHARS_PER_TOKEN)
    for path, text in docs:
        size = _stored(text)
        if size > packer.cap:
            packer.pack_large(path, text)
            continue
        if size > packer.room:
            packer.next_shard()
        packer.add((path, text), size)
    packer.next_shard()
    return packer.shards


async def load_shards(
    swarm: Swarm,
    docs: Sequence[tuple[str, str]],
    token_budget: int,
    spec: str,
    prefix: str = "shard",
) -> list[MemoryShard]:
    """Split ``docs`` by ``token_budget`` and load each part as the context of shard
    ``{prefix}-1`` .. ``{prefix}-N`` (shards whose tasks go to ``spec``)."""
    parts = split_corpus(docs, token_budget)
    shards = [MemoryShard(swarm, f"{prefix}-{i}", spec) for i in range(1, len(parts) + 1)]
    await asyncio.gather(*(s.load_documents(p) for s, p in zip(shards, parts, strict=True)))
    return shards
