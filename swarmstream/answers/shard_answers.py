"""Shard-level answers: the answer object an agent prints, parsed and verified.

The answer object (``swarmstream.answer/1``) is what a worker prints on stdout for a
shard-answer task (``swarmstream.answers.tasks.answer_tasks``)::

    {"answer": "4417-ZETA",
     "rationale": "the vault section names the code",
     "confidence": 0.9,
     "found": true,
     "citations": ["vault.md:12", {"source": "vault.md:12-14", "quote": "code 4417-ZETA"}],
     "context_version": 3}

Only ``answer`` is needed; ``found`` defaults to whether ``answer`` is non-empty,
``confidence`` to 0.5 (flagged). The list may be named ``sources`` when the object
reaches swarmstream whole (a Python handler's string, or ``claude -p --output-format
json``, whose ``result`` is the text), but the ``--exec`` handler reads a printed
object with a top-level ``sources`` key as its own structured finding (``content``,
``sources``, ``data``) and drops the other keys: hence ``citations``. That structured
form works too: ``{"content": answer, "sources": [...], "data": {rationale,
confidence, found, citations}}``.

Parsing never fails: output that is not the object (plain text, broken JSON) becomes
an answer with confidence 0.1 and a flag saying so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swarmstream.answers.citations import (
    Checked,
    Citation,
    CitationCheck,
    CitationChecker,
    parse_citations,
)
from swarmstream.answers.tasks import finding_version
from swarmstream.models import Finding, Task

#: Confidence of output that is not the answer object.
MALFORMED_CONFIDENCE = 0.1
#: Confidence assumed when the object gives none.
DEFAULT_CONFIDENCE = 0.5
#: Most characters of non-JSON output kept as the answer.
MAX_RAW_ANSWER = 1000
_KEYS = frozenset({"answer", "rationale", "confidence", "found", "citations"})
_FENCE = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.S)


@dataclass(frozen=True, slots=True)
class ShardAnswer(Checked):
    """One shard's answer: the parsed object, its citations and, once verified, what
    checking them against the shard's context version found.

    ``flags`` say what was wrong with the output itself; ``version`` is the context
    version its citations are checked against (None: the current one)."""

    shard: str
    task_id: str
    answer: str
    rationale: str = ""
    confidence: float = DEFAULT_CONFIDENCE
    found: bool = True
    citations: tuple[Citation, ...] = ()
    version: int | None = None
    flags: tuple[str, ...] = ()
    checks: tuple[CitationCheck, ...] = ()
    #: the output was not a usable answer object (read as plain text, or empty)
    malformed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "task_id": self.task_id,
            "answer": self.answer,
            "rationale": self.rationale,
            "confidence": self.confidence,
            "found": self.found,
            "malformed": self.malformed,
            "version": self.version,
            "flags": list(self.flags),
            "citations": (
                [c.to_json() for c in self.checks]
                if self.checks
                else [c.to_json() for c in self.citations]
            ),
        }


def _object(text: str) -> dict[str, Any] | None:
    """The JSON object in ``text``: all of it, a fenced block, or from its first ``{``
    to its last ``}``."""
    stripped = text.strip()
    candidates = [stripped]
    fenced = _FENCE.search(stripped)
    if fenced:
        candidates.append(fenced.group(1))
    first, last = stripped.find("{"), stripped.rfind("}")
    if 0 <= first < last:
        candidates.append(stripped[first : last + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _confidence(value: Any, flags: list[str]) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip().rstrip("%")) / (100 if "%" in value else 1)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        flags.append(f"no valid confidence given ({DEFAULT_CONFIDENCE} assumed)")
        return DEFAULT_CONFIDENCE
    if 1 < value <= 100:
        flags.append(f"confidence {value:g} read as a percentage")
        value = value / 100
    if not 0 <= value <= 1:
        flags.append(f"confidence {value:g} clamped to 0..1")
    return min(1.0, max(0.0, float(value)))


def _version(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _from_object(
    obj: Mapping[str, Any], extra: Sequence[str], shard: str, task_id: str, version: int | None
) -> ShardAnswer:
    flags: list[str] = []
    raw = obj.get("answer")
    answer = "" if raw is None else raw.strip() if isinstance(raw, str) else json.dumps(raw)
    rationale = obj.get("rationale")
    found = obj.get("found")
    if not isinstance(found, bool):
        if found is not None:
            flags.append(f"'found' is not true or false: {found!r}")
        found = bool(answer)
    if found and not answer:
        flags.append("found without an answer")
        found = False
    reported = _version(obj.get("context_version"))
    given = [*parse_citations(obj.get("citations")), *parse_citations(obj.get("sources"))]
    given += [c for c in parse_citations(list(extra)) if c.given not in {g.given for g in given}]
    return ShardAnswer(
        shard=shard,
        task_id=task_id,
        answer=answer,
        rationale=rationale.strip() if isinstance(rationale, str) else "",
        confidence=_confidence(obj.get("confidence"), flags),
        found=found,
        citations=tuple(dict.fromkeys(given)),
        version=version if reported is None else reported,
        flags=tuple(flags),
    )


def parse_answer(
    finding: Finding, *, shard: str | None = None, task: Task | None = None
) -> ShardAnswer:
    """The answer object in an ``ok`` finding, whichever way it arrived (see the module
    docstring); anything else becomes a flagged low-confidence answer. The version
    to check against: the object's ``context_version``, else the finding's or the
    task's (``finding_version``)."""
    name = shard or finding.shard or ""
    version = finding_version(finding, task)
    data = finding.data
    if isinstance(data, Mapping) and _KEYS & data.keys():
        obj = dict(data)
        obj.setdefault("answer", finding.content)
        return _from_object(obj, finding.sources, name, finding.task_id, version)
    obj_or_none = _object(finding.content) if finding.content.strip() else None
    if obj_or_none is not None and _KEYS & obj_or_none.keys():
        return _from_object(obj_or_none, finding.sources, name, finding.task_id, version)
    if not finding.content.strip():
        why = "empty output"
        if finding.sources:
            why += (
                " with sources: the printed object had a top-level 'sources' key, which "
                "the exec handler reads as its own format; name the list 'citations'"
            )
        return ShardAnswer(
            name,
            finding.task_id,
            "",
            confidence=MALFORMED_CONFIDENCE,
            found=False,
            citations=parse_citations(list(finding.sources)),
            version=version,
            flags=(why,),
            malformed=True,
        )
    text = finding.content.strip()
    what = "a JSON object without the answer keys" if obj_or_none is not None else "not JSON"
    return ShardAnswer(
        name,
        finding.task_id,
        text[:MAX_RAW_ANSWER] + ("..." if len(text) > MAX_RAW_ANSWER else ""),
        confidence=MALFORMED_CONFIDENCE,
        found=True,
        citations=parse_citations(list(finding.sources)),
        version=version,
        flags=(f"output is {what}, not the answer object: read as plain text",),
        malformed=True,
    )


async def verify(answer: ShardAnswer, checker: CitationChecker) -> ShardAnswer:
    """``answer`` with its citations checked against its shard's context version."""
    if not answer.citations:
        return answer
    checks = await checker.check(answer.citations, answer.shard, answer.version)
    return dataclasses.replace(answer, checks=tuple(checks))


async def verify_answers(
    answers: Sequence[ShardAnswer], checker: CitationChecker
) -> list[ShardAnswer]:
    """Every answer verified (concurrently; each context version is read once)."""
    return list(await asyncio.gather(*(verify(a, checker) for a in answers)))
