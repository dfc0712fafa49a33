"""Synthesis: turning a pass's findings into knowledge.

The default synthesizer is deterministic and needs no LLM: it merges findings,
removes duplicates, ranks what is supported most often, and keeps every citation.
Any handler (for example an LLM command) can synthesize instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from swarmstream.codec import pack, unpack
from swarmstream.handlers.base import Handler
from swarmstream.models import Finding, Status, Task


@dataclass(frozen=True, slots=True)
class KnowledgeItem:
    """One merged statement with the citations of every finding that supported it."""

    content: str
    sources: tuple[str, ...]
    support: int


@dataclass(frozen=True, slots=True)
class Knowledge:
    """The synthesis of one pass of one shard."""

    shard: str
    pass_no: int
    summary: str
    items: tuple[KnowledgeItem, ...] = ()
    sources: tuple[str, ...] = ()
    findings: int = 0
    missing: tuple[str, ...] = ()
    created: float = field(default_factory=time.time)

    @property
    def partial(self) -> bool:
        """True when some expected tasks produced no usable finding."""
        return bool(self.missing)

    def to_bytes(self) -> bytes:
        return pack(
            {
                "shard": self.shard,
                "pass": self.pass_no,
                "summary": self.summary,
                "items": [[i.content, list(i.sources), i.support] for i in self.items],
                "sources": list(self.sources),
                "findings": self.findings,
                "missing": list(self.missing),
                "created": self.created,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Knowledge:
        d: dict[str, Any] = unpack(raw)
        return cls(
            shard=d["shard"],
            pass_no=int(d["pass"]),
            summary=d["summary"],
            items=tuple(KnowledgeItem(c, tuple(s), int(n)) for c, s, n in d["items"]),
            sources=tuple(d["sources"]),
            findings=int(d["findings"]),
            missing=tuple(d["missing"]),
            created=float(d["created"]),
        )


class Synthesizer(Protocol):
    """Turns the findings of one pass into knowledge."""

    async def __call__(
        self, shard: str, pass_no: int, findings: Sequence[Finding], missing: Sequence[str]
    ) -> Knowledge: ...


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


class MergeSynthesizer:
    """Deterministic merge: dedupe by normalized content, rank by support, keep citations."""

    def __init__(self, top: int = 50) -> None:
        self.top = top

    async def __call__(
        self, shard: str, pass_no: int, findings: Sequence[Finding], missing: Sequence[str]
    ) -> Knowledge:
        merged: dict[str, tuple[str, list[str], int, int]] = {}
        for order, f in enumerate(sorted(findings, key=lambda f: (f.finished, f.task_id))):
            if f.status is not Status.OK or not f.content.strip():
                continue
            key = _norm(f.content)
            content, sources, support, first = merged.get(key, (f.content.strip(), [], 0, order))
            sources += [s for s in f.sources if s not in sources]
            merged[key] = (content, sources, support + 1, first)
        ranked = sorted(merged.values(), key=lambda v: (-v[2], -len(v[1]), v[3]))
        items = tuple(KnowledgeItem(c, tuple(s), n) for c, s, n, _ in ranked[: self.top])
        lines = [
            f"- {i.content}"
            + (f" [{', '.join(i.sources)}]" if i.sources else "")
            + (f" (x{i.support})" if i.support > 1 else "")
            for i in items
        ]
        if missing:
            lines.append(f"(partial: {len(missing)} task(s) produced no finding)")
        all_sources: list[str] = []
        for i in items:
            all_sources += [s for s in i.sources if s not in all_sources]
        return Knowledge(
            shard=shard,
            pass_no=pass_no,
            summary="\n".join(lines),
            items=items,
            sources=tuple(all_sources),
            findings=len(findings),
            missing=tuple(missing),
        )


class HandlerSynthesizer:
    """Synthesis by any handler (an LLM command, a Python function): it receives the
    pass's findings as one task text and returns the synthesis as its content."""

    def __init__(self, handler: Handler, spec: str = "synthesis") -> None:
        self.handler = handler
        self.spec = spec

    async def __call__(
        self, shard: str, pass_no: int, findings: Sequence[Finding], missing: Sequence[str]
    ) -> Knowledge:
        base = await MergeSynthesizer()(shard, pass_no, findings, missing)
        prompt = (
            f"Synthesize the findings of pass {pass_no} of shard {shard} into knowledge. "
            "Keep the citations in brackets.\n\n" + base.summary
        )
        task = Task(
            spec=self.spec,
            text=prompt,
            shard=shard,
            pass_no=pass_no,
            data={"findings": len(findings), "missing": list(missing)},
        )
        result = await self.handler(task, None)
        sources = result.sources or base.sources
        return Knowledge(
            shard=shard,
            pass_no=pass_no,
            summary=result.content,
            items=base.items,
            sources=tuple(sources),
            findings=len(findings),
            missing=tuple(missing),
        )
