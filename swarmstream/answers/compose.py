"""Composing an answer from gathered passages (``ask --answer-spec SPEC``).

One task goes to ``SPEC`` (any handler: ``--exec "claude -p"``, a Python function):
its text holds the question, the numbered passages with their citations and the
answer-object instructions; its data holds the same passages structured
(``{"question", "format", "passages": [{"n", "source", "line", "shard",
"context_version", "score", "text"}]}``). The worker prints the answer object
(``swarmstream.answers.shard_answers``), citing a passage's source, lines inside one
(``path:line``), or a passage by number (``[2]``).

Each citation must lie inside a passage (the same path, lines within its range) and
is then checked against that passage's shard context version (lines exist, quote
there); anything else is flagged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from swarmstream.answers.citations import (
    Checked,
    Citation,
    CitationCheck,
    CitationChecker,
    CitationStatus,
    parse_citation,
    split_sources,
)
from swarmstream.answers.merge import render_checks
from swarmstream.answers.shard_answers import parse_answer
from swarmstream.answers.tasks import ANSWER_FORMAT, answer_instructions
from swarmstream.client import Swarm
from swarmstream.keys import validate_name
from swarmstream.models import DEFAULT_MAX_ATTEMPTS, Finding, Task

#: Extra seconds allowed for Redis replies in flight at the deadline.
GRACE = 0.5
_NUMBERED = re.compile(r"\[?\s*(?:passage\s*)?#?(\d+)\s*\]?", re.I)


class PassageLike(Protocol):
    """What composing needs of a passage (``swarmstream.shard.Passage``)."""

    @property
    def source(self) -> str: ...
    @property
    def shard(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def text(self) -> str: ...
    @property
    def line(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ComposedAnswer(Checked):
    """The answer a worker of ``spec`` composed from the passages, its citations
    checked. ``status``: ``answered``, ``not found`` (the worker said so), ``no answer``
    (none by the deadline), ``failed``, or ``no passages`` (nothing was posted)."""

    question: str
    spec: str
    status: str
    reason: str
    task_id: str | None = None
    answer: str = ""
    rationale: str = ""
    confidence: float = 0.0
    checks: tuple[CitationCheck, ...] = ()
    flags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # the passages' sources, numbered from 1
    text: str = ""

    @property
    def found(self) -> bool:
        return self.status == "answered"

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "spec": self.spec,
            "status": self.status,
            "found": self.found,
            "reason": self.reason,
            "task_id": self.task_id,
            "answer": self.answer,
            "rationale": self.rationale,
            "confidence": self.confidence,
            "citations": [c.to_json() for c in self.checks],
            "flagged": [c.to_json() for c in self.flagged],
            "flags": list(self.flags),
            "passages": list(self.sources),
        }


def compose_prompt(
    question: str, passages: Sequence[PassageLike], versions: Mapping[str, int | None]
) -> str:
    """The composing task's text: the question, the numbered passages, the format."""
    lines = [
        "Answer the question using only the numbered passages below: each is the cited",
        "lines of a document of a shard's context.",
        "",
        f"Question: {question}",
        "",
        "Passages:",
    ]
    for n, p in enumerate(passages, start=1):
        version = versions.get(p.shard)
        where = f"shard {p.shard}" + (f", context version {version}" if version else "")
        lines.append(f"[{n}] {p.source} ({where})")
        lines += [f"    {row}" for row in p.text.splitlines()]
    lines += [
        "",
        answer_instructions(),
        "A citation is a passage's source, lines inside one (path:line), or a passage's "
        "number, [n].",
    ]
    return "\n".join(lines) + "\n"


def compose_task(
    question: str,
    passages: Sequence[PassageLike],
    spec: str,
    versions: Mapping[str, int | None],
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timeout: float | None = None,
) -> Task:
    """The one task ``compose_answer`` posts (see the module docstring)."""
    data = {
        "question": question,
        "format": ANSWER_FORMAT,
        "passages": [
            {
                "n": n,
                "source": p.source,
                "line": p.line,
                "shard": p.shard,
                "context_version": versions.get(p.shard),
                "score": p.score,
                "text": p.text,
            }
            for n, p in enumerate(passages, start=1)
        ],
    }
    return Task(
        validate_name("spec", spec),
        compose_prompt(question, passages, versions),
        data=data,
        max_attempts=max_attempts,
        timeout=timeout,
    )


def _inside(c: Citation, source: str) -> bool:
    """True when ``c`` cites ``source`` or lines inside it."""
    for part in split_sources(source):
        s = parse_citation(part)
        if s.path is None or s.path != c.path:
            continue
        if s.start is None:
            return True
        if c.start is not None and s.start <= c.start and (c.end or c.start) <= (s.end or s.start):
            return True
    return False


def _numbered(c: Citation, count: int) -> int | None:
    for text in (c.given, c.path or ""):
        m = _NUMBERED.fullmatch(text.strip())
        if m and 1 <= int(m.group(1)) <= count:
            return int(m.group(1))
    return None


async def check_against_passages(
    citations: Sequence[Citation],
    passages: Sequence[PassageLike],
    checker: CitationChecker,
    versions: Mapping[str, int | None],
) -> list[CitationCheck]:
    """Check each citation: inside a passage, then against that passage's shard
    context version (``versions``; a shard not in it: its current version)."""
    out: list[CitationCheck] = []
    for c in citations:
        number = _numbered(c, len(passages))
        if number is not None:
            candidates = [
                (number, dataclasses.replace(parse_citation(s), given=c.given, quote=c.quote))
                for s in split_sources(passages[number - 1].source)
            ]
        else:
            candidates = [(n, c) for n, p in enumerate(passages, start=1) if _inside(c, p.source)]
        if c.path is None and not candidates:
            reason = "not a citation: expected a passage's source, path:line or [n]"
            out.append(CitationCheck(c, CitationStatus.MALFORMED, reason))
            continue
        if not candidates:
            out.append(
                CitationCheck(
                    c,
                    CitationStatus.NOT_IN_PASSAGES,
                    "not one of the passages' sources, nor lines inside one",
                )
            )
            continue
        tried: list[CitationCheck] = []
        for n, cited in candidates:
            shard = passages[n - 1].shard
            (check,) = await checker.check([cited], shard, versions.get(shard))
            tried.append(dataclasses.replace(check, reason=f"passage [{n}]: {check.reason}"))
            if check.ok:
                break
        out.append(tried[-1] if tried[-1].ok else tried[0])
    return out


async def compose_answer(
    swarm: Swarm,
    question: str,
    passages: Sequence[PassageLike],
    spec: str,
    deadline: float,
    *,
    versions: Mapping[str, int | None] | None = None,
    checker: CitationChecker | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timeout: float | None = None,
) -> ComposedAnswer:
    """Hand the passages to a worker of ``spec`` and return its answer, citations
    checked (see the module docstring). ``versions``: each shard's context version
    the passages came from (as the ask tasks recorded it); shards missing from it are
    read as their current version, in one round trip. Waits ``deadline`` seconds."""
    sources = tuple(p.source for p in passages)
    if not passages:
        return _done(ComposedAnswer(question, spec, "no passages", "no passage to compose from"))
    checker = checker or CitationChecker.of(swarm)
    known = dict(versions or {})
    unknown = [p.shard for p in passages if p.shard not in known]
    if unknown:
        known.update(await checker.current_versions(unknown))
    task = compose_task(question, passages, spec, known, max_attempts=max_attempts, timeout=timeout)
    finding: Finding | None = None
    try:
        async with asyncio.timeout(max(0.0, deadline) + GRACE):
            await swarm.submit_many([task])
            finding = (await swarm.wait_many([task], timeout=max(0.0, deadline))).get(task.id)
    except TimeoutError:
        pass
    base = ComposedAnswer(question, spec, "no answer", "", task.id, sources=sources)
    if finding is None:
        return _done(dataclasses.replace(base, reason=f"no answer within {deadline:g}s"))
    if not finding.ok:
        why = f"failed: {finding.error or finding.status.value}"
        return _done(dataclasses.replace(base, status="failed", reason=why))
    parsed = parse_answer(finding, shard="")
    checks = await check_against_passages(parsed.citations, passages, checker, known)
    ok = sum(c.ok for c in checks)
    status = "answered" if parsed.found else "not found"
    reason = (
        f"{ok} of {len(checks)} citation(s) verified" if parsed.found else "the worker found none"
    )
    return _done(
        dataclasses.replace(
            base,
            status=status,
            reason=reason,
            answer=parsed.answer,
            rationale=parsed.rationale,
            confidence=parsed.confidence,
            checks=tuple(checks),
            flags=parsed.flags,
        )
    )


def _done(a: ComposedAnswer) -> ComposedAnswer:
    return dataclasses.replace(a, text=render_composed(a))


def render_composed(a: ComposedAnswer) -> str:
    """The composed answer as text, each citation marked ``[ok]`` or ``[FLAGGED]``."""
    lines = [f"Question: {a.question}"]
    if a.status == "answered":
        lines.append(f"Answer (composed by {a.spec}): {a.answer}")
        lines.append(f"  confidence {a.confidence:.2f}; {a.reason}")
    else:
        lines.append(f"No composed answer ({a.status}): {a.reason}")
    if a.rationale:
        lines.append(f"  rationale: {a.rationale}")
    lines += render_checks(a.checks)
    lines += [f"  flag: {f}" for f in a.flags]
    if a.flagged:
        lines.append(f"Flagged citations: {len(a.flagged)} (marked FLAGGED above).")
    if a.sources:
        lines.append(
            "From passages: " + "; ".join(f"[{n}] {s}" for n, s in enumerate(a.sources, 1))
        )
    return "\n".join(lines)
