"""Built-in ``retrieve``: keyword (BM25) retrieval over a shard's borrowed context.

Each document of the context is cut into small passages (a paragraph, at most
``window`` lines), so a hit is cited as ``path:a-b`` and the line that matches the
query best as ``path:line``. Words are lowercased, stopwords dropped, plurals
folded; a passage scores BM25 (k1 1.2, b 0.75) plus twice the BM25 of its best line.
The index of a context version is built once per handler (the worker resolves its
handler once) and cached by (shard, version, digest); building and scoring run in a
thread, never on the worker's event loop.

BM25 scores rank passages but are not comparable across shards (each has its own
term statistics) or questions (longer questions score higher), so every hit also
carries ``support``, a number from 0 to 1 (``support()``): the IDF-weighted share
of the question's terms held by the passage's best ``SUPPORT_LINES`` consecutive
lines, times the share of the question's names and numbers they hold; 0 when the
question has a term the shard never uses. Each hit lists those terms
(``matched``), and the finding's ``data.query`` gives each query term's document
frequency in this shard (``unknown``: the terms it lacks), so that ``ask`` computes
the same measure over the statistics of all the shards it asked.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import re
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swarmstream.context import Context
from swarmstream.errors import HandlerError
from swarmstream.handlers.base import ContextLike
from swarmstream.models import Result, Task

#: BM25 parameters: term-frequency saturation and length normalization.
K1 = 1.2
B = 0.75
#: Weight of a passage's best line in its score (proximity of the matched words).
LINE_WEIGHT = 2.0
#: Consecutive lines of a passage that ``support`` weighs together: the question's
#: terms must sit close to one another (about a sentence) to support an answer.
SUPPORT_LINES = 3
#: Passages returned when the task does not say (``task.data = {"k": 5}``).
DEFAULT_K = 5
MAX_K = 100

_STOPWORDS = """a about after all also am an and any are as at be been before being but by
    can could did do does for from had has have he her him his how i if in into is it its
    me my no not of on or our she should so than that the their them then there these
    they this those to too under up us was we were what when where which while who
    whom why will with would you your"""
STOPWORDS = frozenset(_STOPWORDS.split())
_WORD = re.compile(r"[^\W_]+")
#: What ends a sentence: the word after one of these (or the first word) may be
#: capitalized without being a name.
_SENTENCE_END = frozenset(".?!:;\n")
#: A word written as code: ``max_retries``, ``app.toml``, ``/etc/hosts``.
_CODE = re.compile(r"/?[^\W_]{2,}(?:[./][^\W_]{2,})+|[^\W_]+(?:_[^\W_]+)+")
_JOINED = re.compile(r"[^\W_]+(?:[-_./][^\W_]+)+")
_EDGES = "\"'`()[]{},;:?!.\u201c\u201d\u2018\u2019"

IndexKey = tuple[str, int, str]


def _stem(word: str) -> str:
    """A light plural stemmer (Harman's S-stemmer): ``opens`` and ``open`` match."""
    if len(word) > 3 and not word.isdigit():
        if word.endswith("ies") and not word.endswith(("aies", "eies")):
            return word[:-3] + "y"
        if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
            return word[:-1]
        if word.endswith("s") and not word.endswith(("us", "ss")):
            return word[:-1]
    return word


def terms(text: str, memo: dict[str, str] | None = None) -> list[str]:
    """Search terms of ``text``: lowercase words, stopwords dropped, plurals folded."""
    memo = {} if memo is None else memo
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        term = memo.get(word)
        if term is None:
            term = memo[word] = "" if word in STOPWORDS else _stem(word)
        if term:
            out.append(term)
    return out


@dataclass(frozen=True, slots=True)
class QueryTerm:
    """A search term of a question; ``name`` when it comes from a name, a number or
    code (a capitalized word inside a sentence, an acronym, a word with a digit, a
    word in backticks, joined by ``_ . /`` or by ``-`` to a number), which a passage
    must hold to support an answer."""

    term: str
    name: bool = False


def _is_code(chunk: str) -> bool:
    """True for a whitespace-delimited piece of a question written as code: in
    backticks, joined by ``_ . /``, or joined by ``-`` to a number (``db-east-07``)."""
    word = chunk.strip(_EDGES)
    if chunk.startswith("`") or _CODE.fullmatch(word):
        return True
    return bool(_JOINED.fullmatch(word)) and any(c.isdigit() for c in word)


def _name_like(text: str, start: int, word: str, code: bool) -> bool:
    if code or any(c.isdigit() for c in word) or any(c.isupper() for c in word[1:]):
        return True
    if not word[0].isupper():
        return False
    before = text[:start].rstrip(" \t\"'`([{\u201c\u2018")
    return bool(before) and before[-1] not in _SENTENCE_END


def query_terms(question: str) -> list[QueryTerm]:
    """The distinct search terms of ``question`` in order, each marked when it comes
    from a name, a number or code (``QueryTerm``). The first word of a sentence is a
    name only if it is an acronym, holds a digit or is code: its capital says nothing."""
    flags: dict[str, bool] = {}
    memo: dict[str, str] = {}
    for chunk in re.finditer(r"\S+", question):
        code = _is_code(chunk.group())
        for m in _WORD.finditer(chunk.group()):
            at = chunk.start() + m.start()
            for term in terms(m.group(), memo):
                flags[term] = flags.get(term, False) or _name_like(question, at, m.group(), code)
    return [QueryTerm(t, n) for t, n in flags.items()]


def idf(units: int, df: int) -> float:
    """BM25's inverse document frequency of a term found in ``df`` of ``units``."""
    return math.log(1.0 + (units - df + 0.5) / (df + 0.5))


def support(
    query: Sequence[QueryTerm], idfs: Mapping[str, float], matched: Collection[str]
) -> float:
    """How well a passage holding the terms ``matched`` supports an answer to a
    question of terms ``query``: from 0 to 1, comparable across shards and questions.

    ``idfs`` holds the IDF of each query term the corpus knows; a term it lacks
    (absent from ``idfs``) makes the support 0: no passage can state an answer in
    words the corpus never uses. Otherwise the measure is the IDF-weighted share of
    the query's terms the passage holds, times the share of the query's names and
    numbers it holds: a passage about another place than the one asked about
    supports nothing, however many other words it shares with the question."""
    if not query or any(q.term not in idfs for q in query):
        return 0.0
    total = sum(idfs[q.term] for q in query)
    if total <= 0.0:
        return 0.0
    covered = sum(idfs[q.term] for q in query if q.term in matched) / total
    names = [q.term for q in query if q.name]
    named = sum(1 for t in names if t in matched) / len(names) if names else 1.0
    return covered * named


def best_window(
    query: Sequence[QueryTerm], idfs: Mapping[str, float], passage: str
) -> tuple[float, set[str]]:
    """The ``support`` of the ``SUPPORT_LINES`` consecutive lines of ``passage`` that
    hold the most of the question (IDF-weighted), and the query terms they hold."""
    wanted = {q.term for q in query}
    lines = [wanted.intersection(terms(line)) for line in passage.split("\n")]
    held: set[str] = set()
    mass = -1.0
    for i in range(max(1, len(lines) - SUPPORT_LINES + 1)):
        window = set().union(*lines[i : i + SUPPORT_LINES])
        weight = sum(idfs.get(t, 0.0) for t in window)
        if weight > mass:
            held, mass = window, weight
    return support(query, idfs, held), held


def passages(text: str, start: int, end: int, window: int) -> list[tuple[int, int]]:
    """Character spans of the passages of ``text[start:end]``: runs of non-blank lines
    cut at blank lines and after ``window`` lines; each span ends with its last line."""
    spans: list[tuple[int, int]] = []
    first = -1
    last_end = count = 0
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl == -1 else nl
        if text[pos:line_end].strip():
            if first < 0:
                first, count = pos, 0
            last_end, count = line_end, count + 1
            if count >= window:
                spans.append((first, last_end))
                first = -1
        elif first >= 0:
            spans.append((first, last_end))
            first = -1
        pos = line_end + 1
    if first >= 0:
        spans.append((first, last_end))
    return spans


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved passage, and the citation of its best-matching line."""

    source: str
    line: str
    score: float
    text: str
    support: float = 0.0
    matched: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "score": self.score,
            "text": self.text,
            "support": self.support,
            "matched": list(self.matched),
        }


@dataclass(frozen=True, slots=True)
class Search:
    """The hits of a question, and the statistics of its terms in this index: the
    number of passages and each term's document frequency (0: unknown here)."""

    query: tuple[QueryTerm, ...]
    units: int
    df: dict[str, int]
    hits: list[Hit]

    def stats(self) -> dict[str, Any]:
        """The ``data.query`` of a finding: what ``ask`` needs to weigh terms over all
        the shards it asked."""
        return {
            "passages": self.units,
            "terms": [
                {
                    "term": q.term,
                    "name": q.name,
                    "df": self.df[q.term],
                    "idf": round(idf(self.units, self.df[q.term]), 4),
                }
                for q in self.query
            ],
            "unknown": [q.term for q in self.query if not self.df[q.term]],
        }


class _Postings:
    """BM25 statistics of one kind of unit (passages, or lines): postings as compact
    arrays, and each unit's length normalization."""

    def __init__(self) -> None:
        self.lists: dict[str, tuple[list[int], list[int]]] = {}
        self.lengths: list[int] = []
        self.arrays: dict[str, tuple[array[int], array[int]]] = {}
        self.norms: array[float] = array("d")

    def add(self, counts: Counter[str]) -> None:
        unit = len(self.lengths)
        self.lengths.append(sum(counts.values()))
        for term, tf in counts.items():
            ids, tfs = self.lists.setdefault(term, ([], []))
            ids.append(unit)
            tfs.append(tf)

    def freeze(self) -> None:
        self.arrays = {
            t: (array("I", ids), array("I", tfs)) for t, (ids, tfs) in self.lists.items()
        }
        self.lists = {}
        avg = (sum(self.lengths) / len(self.lengths)) if self.lengths else 1.0
        self.norms = array("d", (K1 * (1 - B + B * n / (avg or 1.0)) for n in self.lengths))
        self.lengths = []

    def scores(self, query: set[str]) -> dict[int, float]:
        """BM25 score of every unit holding a query term."""
        out: dict[int, float] = {}
        n_units, norms = len(self.norms), self.norms
        for term in query:
            ids, tfs = self.arrays.get(term, _EMPTY)
            if not ids:
                continue
            idf = math.log(1.0 + (n_units - len(ids) + 0.5) / (len(ids) + 0.5))
            for unit, tf in zip(ids, tfs, strict=True):
                out[unit] = out.get(unit, 0.0) + idf * tf * (K1 + 1) / (tf + norms[unit])
        return out


_EMPTY: tuple[array[int], array[int]] = (array("I"), array("I"))


class Index:
    """A BM25 index over the passages of one context version.

    A passage scores its own BM25 plus ``LINE_WEIGHT`` times the BM25 of its best
    line (lines scored as units of their own): a passage whose matches sit together
    in one line beats one whose matches are scattered, or a short passage that only
    repeats the rarest query word."""

    def __init__(self, context: Context, window: int = 6) -> None:
        text = context.text
        memo: dict[str, str] = {}
        self.spans: list[tuple[int, int]] = []
        self.line_spans: list[tuple[int, int]] = []
        self.line_passage = array("I")
        self.passages, self.lines = _Postings(), _Postings()
        for doc in context.documents:
            for span in passages(text, doc.start, doc.end, window):
                total: Counter[str] = Counter()
                for line in passages(text, span[0], span[1], 1):
                    counts = Counter(terms(text[line[0] : line[1]], memo))
                    total.update(counts)
                    self.lines.add(counts)
                    self.line_spans.append(line)
                    self.line_passage.append(len(self.spans))
                self.passages.add(total)
                self.spans.append(span)
        self.passages.freeze()
        self.lines.freeze()

    def __len__(self) -> int:
        return len(self.spans)

    def df(self, term: str) -> int:
        """In how many passages ``term`` occurs."""
        return len(self.passages.arrays.get(term, _EMPTY)[0])

    def search(self, query: str, k: int) -> list[tuple[int, int, float]]:
        """The ``k`` best passages as ``(passage, best line, score)``, best first."""
        wanted = set(terms(query))
        best_line: dict[int, tuple[float, int]] = {}
        for line, score in self.lines.scores(wanted).items():
            pid = self.line_passage[line]
            if score > best_line.get(pid, (-1.0, 0))[0]:
                best_line[pid] = (score, line)
        ranked = (
            (pid, best_line[pid][1], score + LINE_WEIGHT * best_line[pid][0])
            for pid, score in self.passages.scores(wanted).items()
        )
        return heapq.nlargest(k, ranked, key=lambda r: (r[2], -r[0]))

    def hits(self, context: Context, query: str, k: int) -> list[Hit]:
        """Search and render: citations of each passage and its best line, its text."""
        return self.answer(context, query, k).hits

    def answer(self, context: Context, question: str, k: int) -> Search:
        """Search, render each hit (citations of the passage and its best line, its
        text, the query terms it holds and its ``support``) and give the query's term
        statistics in this index."""
        text = context.text
        query = tuple(query_terms(question))
        df = {q.term: self.df(q.term) for q in query}
        units = len(self.spans)
        idfs = {t: idf(units, n) for t, n in df.items() if n}
        out: list[Hit] = []
        for pid, line, score in self.search(question, k):
            start, end = self.spans[pid]
            passage = text[start:end]
            value, held = best_window(query, idfs, passage)
            matched = tuple(q.term for q in query if q.term in held)
            cite, cite_line = context.cite(start, end), context.cite(*self.line_spans[line])
            out.append(Hit(cite, cite_line, score, passage, round(value, 4), matched))
        return Search(query, units, df, out)


def top_k(data: Any, default: int = DEFAULT_K) -> int:
    """``k`` from ``task.data`` (``{"k": 5}``), else the default."""
    k = data.get("k", default) if isinstance(data, dict) else default
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise HandlerError(f"'k' must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


class Retrieve:
    """BM25 retrieval over the borrowed context of the task's shard."""

    name = "retrieve"
    needs_context = True

    def __init__(self, window: int = 6, max_indexes: int = 8) -> None:
        if window < 1 or max_indexes < 1:
            raise ValueError("window and max_indexes must be at least 1")
        self.window = window
        self.max_indexes = max_indexes
        self.builds = 0
        self._indexes: OrderedDict[IndexKey, Index] = OrderedDict()
        self._building: dict[IndexKey, asyncio.Future[Index]] = {}

    async def __call__(self, task: Task, context: ContextLike | None) -> Result:
        if context is None:
            raise HandlerError(
                "retrieve needs a context: post the task through a memory shard "
                "(task.shard) whose context is loaded"
            )
        if not isinstance(context, Context):
            raise HandlerError(f"retrieve needs a shard Context, got {type(context).__name__}")
        k = top_k(task.data)
        index = await self.index(context)
        found = await asyncio.to_thread(index.answer, context, task.text, k)
        return Result(
            content="\n\n".join(f"[{h.source}] {h.text}" for h in found.hits),
            sources=tuple(h.source for h in found.hits),
            data={
                "hits": [h.to_json() for h in found.hits],
                "query": found.stats(),
                "context_version": context.version,
            },
        )

    async def index(self, context: Context) -> Index:
        """The index of this context version: cached, or built once in a thread while
        concurrent tasks on the same version wait for that one build."""
        key = (context.shard, context.version, context.manifest.sha256)
        hit = self._indexes.get(key)
        if hit is not None:
            self._indexes.move_to_end(key)
            return hit
        job = self._building.get(key)
        if job is None:
            job = asyncio.ensure_future(asyncio.to_thread(Index, context, self.window))
            self._building[key] = job
            self.builds += 1
            job.add_done_callback(self._built(key))
        # shield: a task that times out must not cancel the build others wait for
        return await asyncio.shield(job)

    def _built(self, key: IndexKey) -> Callable[[asyncio.Future[Index]], None]:
        def done(job: asyncio.Future[Index]) -> None:
            self._building.pop(key, None)
            if job.cancelled() or job.exception() is not None:
                return  # awaiting tasks see the error; the next task builds again
            self._indexes[key] = job.result()
            while len(self._indexes) > self.max_indexes:
                self._indexes.popitem(last=False)

        return done
