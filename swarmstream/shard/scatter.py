"""Scatter-gather across memory shards.

A corpus too large for one context is split over several shards by a token budget
(``split_corpus``, ``load_shards``). A question is then posted once per shard; the
workers of the spec (for example the built-in ``retrieve`` handler) answer from
their shard's context, and ``ask`` merges whatever arrived before the deadline into
one ranked answer that names the shards that answered and those that did not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from swarmstream.client import Swarm
from swarmstream.context import CHARS_PER_TOKEN, DocumentPart
from swarmstream.keys import validate_name
from swarmstream.models import Finding, Task
from swarmstream.shard.shard import MemoryShard

#: Extra seconds ``ask`` allows Redis replies in flight at the deadline to land.
GRACE = 0.5
#: Most passages one answer can hold (and one shard is asked for).
MAX_K = 100


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


@dataclass(frozen=True, slots=True)
class Passage:
    """One passage of an answer: its citation, the shard that found it, its score, and
    the citation of its best-matching line (when the handler gave one)."""

    source: str
    shard: str
    score: float
    text: str
    line: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """The merged answer of the shards asked: ``passages`` best first; ``missing`` are
    the shards that missed the deadline or failed."""

    question: str
    passages: tuple[Passage, ...]
    answered: tuple[str, ...]
    missing: tuple[str, ...]
    text: str

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(p.source for p in self.passages)

    @property
    def complete(self) -> bool:
        return not self.missing


async def ask(
    swarm: Swarm,
    question: str,
    shards: Sequence[str],
    spec: str,
    deadline: float,
    k: int = 5,
) -> Answer:
    """Ask every shard ``question`` and merge the answers that arrive in time.

    One task per shard is posted to ``spec`` (it borrows that shard's context);
    ``deadline`` is the number of seconds to wait for their findings. Returns within
    ``deadline`` plus a fraction of a second whatever happens; a shard with no
    finding by then, or a failed one, is listed in ``missing``. The ``k`` best
    passages over all shards are kept (each shard is asked for its ``k`` best).
    """
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be from 1 to {MAX_K}")
    if not shards:
        raise ValueError("ask needs at least one shard")
    end = time.monotonic() + max(0.0, deadline)
    ids = list(dict.fromkeys(shards))
    # the tasks MemoryShard.post would make, posted for all shards in one round trip
    tasks = [Task(spec, question, data={"k": k}, shard=validate_name("shard", s)) for s in ids]
    found: dict[str, Finding] = {}
    try:
        async with asyncio.timeout(_left(end) + GRACE):
            await swarm.submit_many(tasks)
            found = await swarm.wait_many(tasks, timeout=_left(end))
    except TimeoutError:
        pass  # Redis too slow: whatever did not arrive in time is missing
    return _answer(question, ids, tasks, found, deadline, k)


def _left(end: float) -> float:
    return max(0.0, end - time.monotonic())


def _answer(
    question: str,
    ids: Sequence[str],
    tasks: Sequence[Task],
    found: dict[str, Finding],
    deadline: float,
    k: int,
) -> Answer:
    by_shard = {t.shard: found.get(t.id) for t in tasks}
    answered: list[str] = []
    missing: list[str] = []
    why: dict[str, str] = {}
    best: dict[str, Passage] = {}
    for shard in ids:
        f = by_shard.get(shard)
        if f is None or not f.ok:
            missing.append(shard)
            late = f"no answer within {deadline:g}s"
            why[shard] = late if f is None else f"failed: {f.error or f.status.value}"
            continue
        answered.append(shard)
        for p in _passages(shard, f):
            if p.source not in best or p.score > best[p.source].score:
                best[p.source] = p
    ranked = sorted(best.values(), key=lambda p: (-p.score, p.shard, p.source))[:k]
    text = _render(question, ids, answered, why, ranked)
    return Answer(question, tuple(ranked), tuple(answered), tuple(missing), text)


def _passages(shard: str, f: Finding) -> list[Passage]:
    """Passages of a finding: its ``data.hits`` (as ``retrieve`` returns them), else
    its content as one passage with its sources."""
    data: Any = f.data
    hits = data.get("hits") if isinstance(data, dict) else None
    if isinstance(hits, list):
        return [
            Passage(
                source=str(h.get("source", "")),
                shard=shard,
                score=float(h.get("score", 0.0)),
                text=str(h.get("text", "")),
                line=str(h.get("line", "")),
            )
            for h in hits
            if isinstance(h, dict)
        ]
    if not f.content.strip():
        return []
    return [Passage(", ".join(f.sources) or shard, shard, 0.0, f.content.strip())]


def _render(
    question: str,
    ids: Sequence[str],
    answered: Sequence[str],
    why: dict[str, str],
    passages: Sequence[Passage],
) -> str:
    lines = [f"Question: {question}"]
    if answered:
        lines.append(f"Answered by {len(answered)} of {len(ids)} shards: {', '.join(answered)}.")
    else:
        lines.append(f"No shard answered (asked {len(ids)}).")
    if why:
        lines.append("Missing: " + "; ".join(f"{s} ({r})" for s, r in why.items()) + ".")
        lines.append("The answer is partial: it covers only the shards that answered.")
    if not passages:
        lines.append("No passage matched." if answered else "")
        return "\n".join(x for x in lines if x)
    lines.append("Passages:")
    for i, p in enumerate(passages, start=1):
        lines.append(f"{i}. [{p.source}] ({p.shard}, score {p.score:.2f})")
        lines += [f"   {row}" for row in p.text.splitlines()]
    return "\n".join(lines)
