"""Synthesis: turning a pass's findings into knowledge.

The default synthesizer is deterministic and needs no LLM: it merges findings,
removes duplicates, ranks what is supported most often, and keeps every citation.
Any handler (for example an LLM command) can synthesize instead.

Given a ``SourceChecker`` (``swarmstream.answers.CitationChecker``), a synthesizer
checks every cited source against the shard's context version (the one a finding
reports in ``data.context_version``, else the current one) and records those that do
not check out, with why, in ``Knowledge.unverified``; they stay cited, marked.
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
    #: ``(source, reason)`` of each cited source that did not check out against the
    #: shard's context (stored under ``unverified``; absent in older records)
    unverified: tuple[tuple[str, str], ...] = ()

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
                "unverified": [[src, why] for src, why in self.unverified],
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
            unverified=tuple((str(a), str(b)) for a, b in d.get("unverified") or ()),
        )


class Synthesizer(Protocol):
    """Turns the findings of one pass into knowledge."""

    async def __call__(
        self, shard: str, pass_no: int, findings: Sequence[Finding], missing: Sequence[str]
    ) -> Knowledge: ...


class SourceChecker(Protocol):
    """Checks cited sources against a shard's context version (None: the current one)."""

    async def flag_sources(
        self, shard: str, sources: Sequence[str], version: int | None = None
    ) -> list[tuple[str, str]]:
        """``(source, reason)`` for each source that does not check out."""
        ...


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _version(f: Finding) -> int | None:
    v = f.data.get("context_version") if isinstance(f.data, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


async def check_sources(
    checker: SourceChecker, shard: str, findings: Sequence[Finding]
) -> tuple[tuple[str, str], ...]:
    """``(source, reason)`` of the cited sources of ``ok`` findings that do not check
    out, each checked against the version its finding reports (else the current);
    sorted by source."""
    by_version: dict[int | None, list[str]] = {}
    for f in findings:
        if f.status is Status.OK:
            wanted = by_version.setdefault(_version(f), [])
            wanted += [s for s in f.sources if s not in wanted]
    flagged: dict[str, str] = {}
    for version, sources in by_version.items():
        for src, why in await checker.flag_sources(shard, sources, version):
            flagged.setdefault(src, why)
    return tuple(sorted(flagged.items()))


class MergeSynthesizer:
    """Deterministic merge: dedupe by normalized content, rank by support, keep citations
    (with a ``checker``, those that do not check out are marked and recorded)."""

    def __init__(self, top: int = 50, checker: SourceChecker | None = None) -> None:
        self.top = top
        self.checker = checker

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
        unverified = await check_sources(self.checker, shard, findings) if self.checker else ()
        bad = dict(unverified)
        lines = [
            f"- {i.content}"
            + (f" [{', '.join(_mark(s, bad) for s in i.sources)}]" if i.sources else "")
            + (f" (x{i.support})" if i.support > 1 else "")
            for i in items
        ]
        if missing:
            lines.append(f"(partial: {len(missing)} task(s) produced no finding)")
        if unverified:
            lines.append(f"Unverified citations ({len(unverified)}):")
            lines += [f"- {src}: {why}" for src, why in unverified]
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
            unverified=unverified,
        )


def _mark(source: str, bad: dict[str, str]) -> str:
    return f"{source} (unverified)" if source in bad else source


class HandlerSynthesizer:
    """Synthesis by any handler (an LLM command, a Python function): it receives the
    pass's findings as one task text and returns the synthesis as its content."""

    def __init__(
        self, handler: Handler, spec: str = "synthesis", checker: SourceChecker | None = None
    ) -> None:
        self.handler = handler
        self.spec = spec
        self.checker = checker

    async def __call__(
        self, shard: str, pass_no: int, findings: Sequence[Finding], missing: Sequence[str]
    ) -> Knowledge:
        base = await MergeSynthesizer(checker=self.checker)(shard, pass_no, findings, missing)
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
            unverified=base.unverified,
        )
