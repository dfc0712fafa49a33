"""The gather half of scatter-gather: ask every shard a question, merge what arrives
before the deadline, and decide whether it supports an answer.

Each shard's finding (the built-in ``retrieve`` handler's, for example) holds its
best passages with a raw score, and the terms of the question each passage holds.
Raw scores rank passages but are not comparable across shards or questions, so the
merge weighs every passage again on one scale: its ``support``
(``swarmstream.handlers.retrieve.support``), computed from the term statistics of
all the shards that answered. A passage with support at or above the threshold
supports an answer; when none does, the answer is "not found", with the shards that
were searched and the reason (for example a name in the question that no shard's
text contains).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swarmstream.answers import finding_version, versioned_tasks
from swarmstream.client import Swarm
from swarmstream.handlers.retrieve import QueryTerm, idf, support
from swarmstream.keys import validate_name
from swarmstream.models import Finding, Task

#: Extra seconds ``ask`` allows Redis replies in flight at the deadline to land.
GRACE = 0.5
#: Most passages one answer can hold (and one shard is asked for).
MAX_K = 100
#: Least support a passage needs to count as an answer (see ``ask``). Chosen with
#: ``benchmarks/answers_eval.py`` on two development seeds (1M tokens, 5 shards):
#: the highest threshold at which no answerable question was answered "not found";
#: at 0.6 some paraphrases were, at 0.65 one in 15.
DEFAULT_THRESHOLD = 0.55
#: Passages "not found" lists in its text as the nearest ones (all are in the JSON).
NEAREST_SHOWN = 3


@dataclass(frozen=True, slots=True)
class Passage:
    """One passage of an answer: its citation, the shard that found it, its raw
    score, the citation of its best-matching line (when the handler gave one), its
    ``support`` from 0 to 1 (None: the handler gave nothing to weigh it by) and the
    question's terms it holds."""

    source: str
    shard: str
    score: float
    text: str
    line: str = ""
    support: float | None = None
    matched: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "shard": self.shard,
            "score": self.score,
            "support": self.support,
            "matched": None if self.matched is None else list(self.matched),
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """The merged answer of the shards asked.

    ``found`` says whether any passage supports an answer (``support`` at least
    ``threshold``, or a handler that gives no support measure); ``passages`` are
    those, best first, and ``reason`` says why, either way. ``nearest`` are the best
    passages below the threshold. ``answered`` (also ``searched``) are the shards
    that answered in time; ``missing`` those that missed the deadline or failed;
    ``unknown`` the question's terms that no shard that answered knows."""

    question: str
    passages: tuple[Passage, ...]
    answered: tuple[str, ...]
    missing: tuple[str, ...]
    text: str
    found: bool = False
    reason: str = ""
    support: float | None = None
    threshold: float = DEFAULT_THRESHOLD
    nearest: tuple[Passage, ...] = ()
    unknown: tuple[str, ...] = ()
    #: per shard, the context version its worker answered from (citations are
    #: checked against it: swarmstream.answers)
    versions: tuple[tuple[str, int | None], ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(p.source for p in self.passages)

    @property
    def searched(self) -> tuple[str, ...]:
        """The shards whose answer the merge weighed (those that answered)."""
        return self.answered

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_json(self) -> dict[str, Any]:
        """The ``swarmstream ask --json`` shape."""
        return {
            "question": self.question,
            "found": self.found,
            "reason": self.reason,
            "support": self.support,
            "threshold": self.threshold,
            "searched": list(self.searched),
            "answered": list(self.answered),
            "missing": list(self.missing),
            "unknown": list(self.unknown),
            "passages": [p.to_json() for p in self.passages],
            "nearest": [p.to_json() for p in self.nearest],
            "versions": dict(self.versions),
        }


async def ask(
    swarm: Swarm,
    question: str,
    shards: Sequence[str],
    spec: str,
    deadline: float,
    k: int = 5,
    threshold: float = DEFAULT_THRESHOLD,
) -> Answer:
    """Ask every shard ``question`` and merge the answers that arrive in time.

    One task per shard is posted to ``spec`` (it borrows that shard's context);
    ``deadline`` is the number of seconds to wait for their findings. Returns within
    ``deadline`` plus a fraction of a second whatever happens; a shard with no
    finding by then, or a failed one, is listed in ``missing``. Each shard is asked
    for its ``k`` best passages; the answer keeps the ``k`` best that reach
    ``threshold`` (support from 0 to 1), and is "not found" when none does.
    """
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be from 1 to {MAX_K}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError("threshold must be from 0 to 1")
    if not shards:
        raise ValueError("ask needs at least one shard")
    end = time.monotonic() + max(0.0, deadline)
    ids = [validate_name("shard", s) for s in dict.fromkeys(shards)]
    # the tasks MemoryShard.post would make (each with its shard's context version),
    # posted for all shards in one round trip
    tasks: list[Task] = []
    found: dict[str, Finding] = {}
    try:
        async with asyncio.timeout(_left(end) + GRACE):
            tasks = await versioned_tasks(swarm, question, ids, spec, data={"k": k})
            await swarm.submit_many(tasks)
            found = await swarm.wait_many(tasks, timeout=_left(end))
    except TimeoutError:
        pass  # Redis too slow: whatever did not arrive in time is missing
    by_shard: dict[str, Finding | None] = dict.fromkeys(ids)
    by_shard |= {str(t.shard): found.get(t.id) for t in tasks}
    answer = merge(question, by_shard, deadline=deadline, k=k, threshold=threshold)
    versions = tuple((str(t.shard), finding_version(found.get(t.id), t)) for t in tasks)
    return dataclasses.replace(answer, versions=versions)


def _left(end: float) -> float:
    return max(0.0, end - time.monotonic())


@dataclass(frozen=True, slots=True)
class _Terms:
    """The question's terms weighed over every shard that reported statistics."""

    query: tuple[QueryTerm, ...]
    idfs: dict[str, float]
    unknown: tuple[str, ...]


def merge(
    question: str,
    findings: Mapping[str, Finding | None],
    *,
    deadline: float,
    k: int = 5,
    threshold: float = DEFAULT_THRESHOLD,
) -> Answer:
    """Merge the finding of each shard asked (None: none arrived) into an Answer.

    Every passage is weighed on one scale: ``support`` over the term statistics of
    all the shards that answered (their ``data.query``), so scores from different
    shards compare. A passage from a handler that reports no terms cannot be weighed
    and counts as supporting (the merge of older findings is unchanged)."""
    answered: list[str] = []
    why: dict[str, str] = {}
    best: dict[str, Passage] = {}
    reports: list[Mapping[str, Any]] = []
    for shard, f in findings.items():
        if f is None or not f.ok:
            late = f"no answer within {deadline:g}s"
            why[shard] = late if f is None else f"failed: {f.error or f.status.value}"
            continue
        answered.append(shard)
        if isinstance(f.data, dict) and isinstance(f.data.get("query"), dict):
            reports.append(f.data["query"])
        for p in _passages(shard, f):
            if p.source not in best or p.score > best[p.source].score:
                best[p.source] = p
    weighed = _weigh(reports)
    ranked = sorted((_reweigh(p, weighed) for p in best.values()), key=_rank)
    backed = [p for p in ranked if p.support is None or p.support >= threshold]
    nearest = tuple(p for p in ranked if p.support is not None and p.support < threshold)[:k]
    passages = tuple(backed[:k])
    supports = [p.support for p in ranked if p.support is not None]
    top = max(supports) if supports else None
    missing = tuple(s for s in findings if s not in answered)
    reason = _reason(answered, weighed, passages, nearest, top, threshold)
    answer = Answer(
        question=question,
        passages=passages,
        answered=tuple(answered),
        missing=missing,
        text="",
        found=bool(passages),
        reason=reason,
        support=top,
        threshold=threshold,
        nearest=nearest,
        unknown=weighed.unknown if weighed else (),
    )
    return dataclasses.replace(answer, text=_render(answer, list(findings), why))


def _rank(p: Passage) -> tuple[float, float, str, str]:
    return (-(p.support or 0.0), -p.score, p.shard, p.source)


def _weigh(reports: Sequence[Mapping[str, Any]]) -> _Terms | None:
    """The question's terms and their IDF over all the shards' passages, from each
    finding's ``data.query`` (None when no shard reported one)."""
    units = 0
    df: dict[str, int] = {}
    names: dict[str, bool] = {}
    for report in reports:
        terms = report.get("terms")
        if not isinstance(terms, list):
            continue
        units += _count(report.get("passages"))
        for t in terms:
            if isinstance(t, dict) and isinstance(t.get("term"), str):
                term = t["term"]
                df[term] = df.get(term, 0) + _count(t.get("df"))
                names[term] = names.get(term, False) or bool(t.get("name"))
    if not names and not reports:
        return None
    query = tuple(QueryTerm(t, n) for t, n in names.items())
    idfs = {t: idf(units, n) for t, n in df.items() if n}
    return _Terms(query, idfs, tuple(t for t in names if not df.get(t)))


def _count(value: Any) -> int:
    """A count from a finding's JSON (0 when it is not one: findings may come from any
    agent)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _reweigh(p: Passage, weighed: _Terms | None) -> Passage:
    """``p`` with its support over all shards' statistics (when it can be weighed)."""
    if weighed is None or p.matched is None:
        return p
    value = round(support(weighed.query, weighed.idfs, set(p.matched)), 4)
    return Passage(p.source, p.shard, p.score, p.text, p.line, value, p.matched)


def _passages(shard: str, f: Finding) -> list[Passage]:
    """Passages of a finding: its ``data.hits`` (as ``retrieve`` returns them), else
    its content as one passage with its sources."""
    data: Any = f.data
    hits = data.get("hits") if isinstance(data, dict) else None
    if isinstance(hits, list):
        return [_passage(shard, h) for h in hits if isinstance(h, dict)]
    if not f.content.strip():
        return []
    return [Passage(", ".join(f.sources) or shard, shard, 0.0, f.content.strip())]


def _passage(shard: str, h: Mapping[str, Any]) -> Passage:
    matched, given, score = h.get("matched"), h.get("support"), h.get("score")
    return Passage(
        source=str(h.get("source", "")),
        shard=shard,
        score=float(score) if isinstance(score, int | float) else 0.0,
        text=str(h.get("text", "")),
        line=str(h.get("line", "")),
        support=float(given) if isinstance(given, int | float) else None,
        matched=tuple(str(t) for t in matched) if isinstance(matched, list) else None,
    )


def _quoted(terms: Sequence[str]) -> str:
    return ", ".join(f"'{t}'" for t in terms)


def _reason(
    answered: Sequence[str],
    weighed: _Terms | None,
    passages: Sequence[Passage],
    nearest: Sequence[Passage],
    top: float | None,
    threshold: float,
) -> str:
    if not answered:
        return "no shard answered"
    if passages:
        n = len(passages)
        if passages[0].support is None:
            return f"{n} passage(s); the handler gave no support measure to check them by"
        return f"{n} passage(s) with support >= {threshold:.2f} (best {passages[0].support:.2f})"
    query = weighed.query if weighed is not None else ()
    unknown = weighed.unknown if weighed is not None else ()
    if weighed is not None and not query:
        return "the question has no search terms"
    if unknown:
        return f"no searched shard's text contains {_quoted(unknown)}"
    if not nearest or top is None:
        return "no passage holds a term of the question"
    return f"best support {top:.2f} ({nearest[0].source}) is below the threshold {threshold:.2f}"


def _render(answer: Answer, ids: Sequence[str], why: Mapping[str, str]) -> str:
    answered = answer.answered
    lines = [f"Question: {answer.question}"]
    if answered:
        lines.append(f"Answered by {len(answered)} of {len(ids)} shards: {', '.join(answered)}.")
    else:
        lines.append(f"No shard answered (asked {len(ids)}).")
    if why:
        lines.append("Missing: " + "; ".join(f"{s} ({r})" for s, r in why.items()) + ".")
        lines.append("The answer is partial: it covers only the shards that answered.")
    if not answered:
        return "\n".join(lines)
    if not answer.found:
        lines.append(f"Not found in shards {', '.join(answered)}: {answer.reason}.")
        near = [p for p in answer.nearest[:NEAREST_SHOWN] if p.support]
        if near:
            lines.append(f"Nearest passages (support below {answer.threshold:.2f}, not an answer):")
            lines += [f"{i}. {_head(p)}" for i, p in enumerate(near, start=1)]
        return "\n".join(lines)
    where = ", ".join(dict.fromkeys(p.shard for p in answer.passages))
    lines.append(f"Found in {where}: {answer.reason}.")
    lines.append("Passages:")
    for i, p in enumerate(answer.passages, start=1):
        lines.append(f"{i}. {_head(p)}")
        lines += [f"   {row}" for row in p.text.splitlines()]
    return "\n".join(lines)


def _head(p: Passage) -> str:
    best = f" best line {p.line}" if p.line and p.line != p.source else ""
    return f"[{p.source}]{best} ({_measures(p)})"


def _measures(p: Passage) -> str:
    support = "" if p.support is None else f"support {p.support:.2f}, "
    return f"{p.shard}, {support}score {p.score:.2f}"
