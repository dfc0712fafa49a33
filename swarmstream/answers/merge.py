"""Merging shard answers (map-reduce): group them by agreement, score the groups by
confidence and support, pick the best, and report the disagreements.

Agreement (``agreement(a, b)``; deterministic, and it says why), on the answers' words
after NFKC, case-folding and punctuation removal, and their key terms (words minus
stopwords, plurals folded):

1. the same words: agree;
2. both name numbers, and not the same numbers: disagree;
3. one is negated (no, not, never...) and the other is not: disagree;
4. the key terms of one are all among the other's: agree ("Paris" and "the capital
   is Paris");
5. at least ``JACCARD`` of their key terms shared: agree; else disagree.

Answers are taken strongest first, and each joins the first group whose first answer
it agrees with, or starts a group. A group scores the sum, over its shards, of
confidence x evidence: 1.0 for an answer with a verified citation, 0.5 for one with
none given or none checkable (its context version expired), 0.25 for one whose
checked citations are all wrong; flagged citations never count as support. Groups
rank by score, then verified citations, then shards. The result is ``agreed`` (one
group), ``resolved`` (the best group scores at least ``RESOLVE_RATIO`` times the
next), ``contested`` (otherwise: the answer is the best group's, and the
disagreement is the point), ``not found`` or ``no answer``.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swarmstream.answers.citations import CitationCheck
from swarmstream.answers.shard_answers import ShardAnswer

VERIFIED_WEIGHT = 1.0
UNCITED_WEIGHT = 0.5
WRONG_WEIGHT = 0.25
#: Share of key terms two answers need in common to agree (rule 5).
JACCARD = 0.6
#: How many times the next group's score the best needs to be "resolved".
RESOLVE_RATIO = 1.5

_WORD = re.compile(r"[^\W_]+")
_STOPWORD_TEXT = """a an the is are was were be been being of in on at to for from by with and
    or as it its this that these those there here which who whom what when where why how
    do does did has have had will would can could should may might shall i you he she we
    they them his her their our your my me us also just only so than then into about per
    via answer"""
_NEGATION_TEXT = "no not never none nobody nothing neither nor cannot"
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_NEGATIONS = frozenset(_NEGATION_TEXT.split())


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold().replace("n't", " not")
    return _WORD.findall(folded)


def _fold(word: str) -> str:
    if len(word) > 3 and not any(c.isdigit() for c in word):
        if word.endswith("ies"):
            return word[:-3] + "y"
        if word.endswith("s") and not word.endswith(("us", "ss")):
            return word[:-1]
    return word


def key_terms(text: str) -> frozenset[str]:
    """The words that carry an answer: stopwords and negations dropped, plurals folded."""
    return frozenset(_fold(w) for w in _words(text) if w not in _STOPWORDS | _NEGATIONS)


def agreement(a: str, b: str) -> tuple[bool, str]:
    """Whether two answers agree, and which rule decided (see the module docstring)."""
    wa, wb = _words(a), _words(b)
    if wa == wb:
        return True, "the same answer"
    na = {w for w in wa if any(c.isdigit() for c in w)}
    nb = {w for w in wb if any(c.isdigit() for c in w)}
    if na and nb and na != nb:
        return False, f"different numbers ({', '.join(sorted(na ^ nb))})"
    if bool(_NEGATIONS & set(wa)) != bool(_NEGATIONS & set(wb)):
        return False, "one answer negates"
    ka, kb = key_terms(a), key_terms(b)
    if ka and kb and (ka <= kb or kb <= ka):
        return True, "the key terms of one are all in the other"
    shared = len(ka & kb) / len(ka | kb) if ka | kb else 0.0
    if shared >= JACCARD:
        return True, f"{shared:.0%} of key terms shared"
    return False, "different key terms"


def evidence(answer: ShardAnswer) -> float:
    """The weight of an answer's citations (see the module docstring)."""
    if answer.verified:
        return VERIFIED_WEIGHT
    if any(c.wrong for c in answer.checks):
        return WRONG_WEIGHT
    return UNCITED_WEIGHT


def weight(answer: ShardAnswer) -> float:
    return answer.confidence * evidence(answer)


@dataclass(frozen=True, slots=True)
class AnswerGroup:
    """Shards that agree on one answer (the text of the strongest), and their score.
    ``why`` says, for each member after the first, which rule made it agree."""

    answer: str
    members: tuple[ShardAnswer, ...]
    score: float
    why: tuple[str, ...] = ()

    @property
    def shards(self) -> tuple[str, ...]:
        return tuple(m.shard for m in self.members)

    @property
    def support(self) -> int:
        """How many shards gave this answer."""
        return len(self.members)

    @property
    def confidence(self) -> float:
        return max((m.confidence for m in self.members), default=0.0)

    @property
    def verified(self) -> tuple[str, ...]:
        """Distinct citations of its members that checked out."""
        return tuple(dict.fromkeys(c.source for m in self.members for c in m.verified))

    @property
    def flagged(self) -> tuple[CitationCheck, ...]:
        return tuple(c for m in self.members for c in m.flagged)

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "score": round(self.score, 4),
            "support": self.support,
            "shards": list(self.shards),
            "verified": list(self.verified),
            "why": list(self.why),
            "members": [m.to_json() for m in self.members],
        }


@dataclass(frozen=True, slots=True)
class MergedAnswer:
    """The shards' answers merged: ``best`` and the ``disagreements`` (the other groups,
    best first), the shards that said ``not_found``, and those ``missing`` (no finding
    by the deadline, or failed; ``why_missing`` says which)."""

    question: str
    status: str
    reason: str
    best: AnswerGroup | None
    disagreements: tuple[AnswerGroup, ...]
    not_found: tuple[ShardAnswer, ...]
    answered: tuple[str, ...]
    missing: tuple[str, ...]
    why_missing: tuple[tuple[str, str], ...] = ()
    text: str = ""

    @property
    def found(self) -> bool:
        return self.best is not None

    @property
    def answer(self) -> str:
        return self.best.answer if self.best is not None else ""

    @property
    def answers(self) -> tuple[ShardAnswer, ...]:
        groups = ([self.best] if self.best else []) + list(self.disagreements)
        return tuple(m for g in groups for m in g.members) + self.not_found

    @property
    def flagged(self) -> tuple[CitationCheck, ...]:
        """Every citation that did not check out, in any shard's answer."""
        return tuple(c for a in self.answers for c in a.flagged)

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "found": self.found,
            "status": self.status,
            "reason": self.reason,
            "answer": self.answer,
            "best": self.best.to_json() if self.best else None,
            "disagreements": [g.to_json() for g in self.disagreements],
            "not_found": [a.to_json() for a in self.not_found],
            "answered": list(self.answered),
            "missing": [{"shard": s, "reason": r} for s, r in self.why_missing],
            "flagged": [c.to_json() for c in self.flagged],
        }


def group_answers(answers: Sequence[ShardAnswer]) -> list[AnswerGroup]:
    """Group found answers by agreement, ranked best first."""
    order = sorted((a for a in answers if a.found), key=lambda a: (-weight(a), a.shard))
    groups: list[tuple[list[ShardAnswer], list[str]]] = []
    for a in order:
        for members, why in groups:
            agree, rule = agreement(members[0].answer, a.answer)
            if agree:
                members.append(a)
                why.append(f"{a.shard}: {rule}")
                break
        else:
            groups.append(([a], []))
    built = [
        AnswerGroup(m[0].answer, tuple(m), sum(weight(x) for x in m), tuple(w)) for m, w in groups
    ]
    return sorted(built, key=lambda g: (-g.score, -len(g.verified), -g.support, g.shards))


def _label(g: AnswerGroup) -> str:
    return f"{g.answer!r} ({', '.join(g.shards)}; score {g.score:.2f})"


def _verdict(groups: Sequence[AnswerGroup], answered: Sequence[str]) -> tuple[str, str]:
    if not answered:
        return "no answer", "no shard answered"
    if not groups:
        return "not found", f"no shard found an answer ({len(answered)} answered)"
    best = groups[0]
    if len(groups) == 1:
        n = best.support
        return "agreed", f"{n} shard{'s' if n > 1 else ''} answered, none disagrees"
    second = groups[1]
    if best.score > 0 and best.score >= RESOLVE_RATIO * second.score:
        return "resolved", f"{_label(best)} outweighs {_label(second)}"
    return "contested", (
        f"{_label(best)} against {_label(second)}: not {RESOLVE_RATIO:g} times the score"
    )


def merge_answers(
    question: str,
    answers: Sequence[ShardAnswer],
    *,
    missing: Mapping[str, str] | None = None,
) -> MergedAnswer:
    """Merge verified shard answers; ``missing`` maps each shard with no usable finding
    to why (``"no answer within 30s"``, ``"failed: ..."``)."""
    why_missing = tuple((missing or {}).items())
    groups = group_answers(answers)
    status, reason = _verdict(groups, [a.shard for a in answers])
    merged = MergedAnswer(
        question=question,
        status=status,
        reason=reason,
        best=groups[0] if groups else None,
        disagreements=tuple(groups[1:]),
        not_found=tuple(a for a in answers if not a.found),
        answered=tuple(a.shard for a in answers),
        missing=tuple(s for s, _ in why_missing),
        why_missing=why_missing,
    )
    return dataclasses.replace(merged, text=render(merged))


def render_checks(checks: Sequence[CitationCheck], indent: str = "    ") -> list[str]:
    """One line per citation: ``[ok]`` or ``[FLAGGED <status>]``, the source, the
    quote, and the reason when flagged."""
    out = []
    for c in checks:
        quote = f' "{c.citation.quote}"' if c.citation.quote else ""
        if c.ok:
            out.append(f"{indent}[ok] {c.source}{quote}")
        else:
            out.append(f"{indent}[FLAGGED {c.status.value}] {c.source}{quote}: {c.reason}")
    return out


def _member(a: ShardAnswer) -> list[str]:
    lines = [f"  {a.shard} (confidence {a.confidence:.2f}): {a.rationale or '(no rationale)'}"]
    if a.checks:
        lines += render_checks(a.checks)
    elif a.citations:
        lines += [f"    [unchecked] {c.source}" for c in a.citations]
    else:
        lines.append("    (no citations)")
    lines += [f"    flag: {f}" for f in a.flags]
    return lines


def render(m: MergedAnswer) -> str:
    """The merged answer as text: the answer, who gave it and on what citations, every
    disagreement, the shards that found nothing, and the missing ones."""
    asked = len(m.answered) + len(m.missing)
    lines = [f"Question: {m.question}", f"Answered by {len(m.answered)} of {asked} shards."]
    if m.why_missing:
        lines.append("Missing: " + "; ".join(f"{s} ({r})" for s, r in m.why_missing) + ".")
    if m.best is None:
        lines.append(f"Not found: {m.reason}.")
    else:
        lines.append(f"Answer ({m.status}): {m.best.answer}")
        lines.append(f"  {m.reason}; verified citations: {len(m.best.verified)}")
        for a in m.best.members:
            lines += _member(a)
    if m.disagreements:
        lines.append(f"Disagreements ({len(m.disagreements)}):")
        for g in m.disagreements:
            lines.append(f"- {g.answer!r}: score {g.score:.2f}, {g.support} shard(s)")
            for a in g.members:
                lines += _member(a)
    if m.not_found:
        lines.append("Not found by: " + ", ".join(a.shard for a in m.not_found))
        for a in m.not_found:
            lines += _member(a)
    if m.flagged:
        lines.append(f"Flagged citations: {len(m.flagged)} (marked FLAGGED above).")
    return "\n".join(lines)
