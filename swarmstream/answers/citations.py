"""Citations, parsed and checked against the context version they came from.

A citation names lines of a document of a shard's context, by the file's own line
numbers (a document that is a later part of a split file starts past line 1):

- ``path:12`` or ``path:12-18`` (also ``path#L12-L18``, ``path, lines 12-18``), as
  swarmstream writes them (``Context.cite``, the ``retrieve`` handler);
- with a quote: ``path:12-18 "quoted text"``, or the object
  ``{"source": "path:12-18", "quote": "quoted text"}`` (``path`` with ``line`` or
  ``start``/``end`` instead of ``source`` works too);
- ``path`` alone cites the whole document.

A check says one of ``CitationStatus``: ``ok``, the path is unknown, the lines are out
of range, the quote is not in the cited lines, the citation does not parse, or it
cannot be verified (its context version expired, or the shard has no context).
Quotes are compared after normalization (Unicode NFKC, straight quotes and dashes,
whitespace runs as one space, case-folded), so a quote that spans lines matches.
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from swarmstream.context import Context

if TYPE_CHECKING:
    from swarmstream.client import Swarm
    from swarmstream.shard.borrow import ContextCache
    from swarmstream.transport.shards import ShardStore

_QUOTED = re.compile(r'^(?P<ref>.+?)\s+["\u201c\u201e](?P<quote>.*)["\u201d]\s*$', re.S)
_LINES = re.compile(r"^(?P<path>.+?)(?::L?|#L)(?P<a>\d+)(?:\s*[-\u2013\u2014]\s*L?(?P<b>\d+))?$")
_WORDY = re.compile(
    r"^(?P<path>.+?)\s*(?:,|\()\s*lines?\s+(?P<a>\d+)"
    r"(?:\s*(?:-|\u2013|\u2014|to)\s*(?P<b>\d+))?\s*\)?$",
    re.I,
)
_TRANSLATE = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2026": "...",
    }
)
#: Line ranges a reason lists before it says "and N more".
_RANGES_SHOWN = 3
#: Lines around a citation searched for a quote that is not in the cited lines.
HINT_WINDOW = 1000
#: Longest citation (as given, quote included) that is parsed.
MAX_CITATION = 4000


@dataclass(frozen=True, slots=True)
class Citation:
    """One citation as an agent gave it, parsed: ``path`` is None when it does not
    parse; ``start``/``end`` are None when it cites a whole document."""

    given: str
    path: str | None
    start: int | None = None
    end: int | None = None
    quote: str | None = None

    @property
    def source(self) -> str:
        """The canonical ``path:a`` or ``path:a-b`` (what was given, if unparsed)."""
        if self.path is None:
            return self.given
        if self.start is None:
            return self.path
        end = self.start if self.end is None else self.end
        return (
            f"{self.path}:{self.start}" if end == self.start else f"{self.path}:{self.start}-{end}"
        )

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "quote": self.quote}


class CitationStatus(enum.StrEnum):
    """The outcome of checking one citation."""

    OK = "ok"
    MALFORMED = "malformed"  # not path:line, path:a-b or an object with a source
    UNKNOWN_PATH = "unknown path"  # no such document in the context version
    OUT_OF_RANGE = "lines out of range"  # the document has no such lines
    QUOTE_NOT_FOUND = "quote not found"  # the cited lines do not hold the quote
    NOT_IN_PASSAGES = "not in passages"  # (composed answers) cites no gathered passage
    EXPIRED = "unverifiable: expired"  # its context version is gone (600 s after reload)
    NO_CONTEXT = "unverifiable: no context"  # the shard has no such context (version)


#: Statuses that say the citation could not be checked, rather than that it is wrong.
UNVERIFIABLE = frozenset({CitationStatus.EXPIRED, CitationStatus.NO_CONTEXT})


@dataclass(frozen=True, slots=True)
class CitationCheck:
    """A citation and what checking it against one context version found."""

    citation: Citation
    status: CitationStatus
    reason: str
    shard: str | None = None
    version: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is CitationStatus.OK

    @property
    def unverifiable(self) -> bool:
        """True when it could not be checked (not when it was checked and is wrong)."""
        return self.status in UNVERIFIABLE

    @property
    def wrong(self) -> bool:
        """True when it was checked and does not hold."""
        return not self.ok and not self.unverifiable

    @property
    def source(self) -> str:
        return self.citation.source

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "quote": self.citation.quote,
            "status": self.status.value,
            "ok": self.ok,
            "reason": self.reason,
            "shard": self.shard,
            "version": self.version,
        }


class Checked:
    """Mixin of an answer that holds the checks of its citations (``checks``)."""

    __slots__ = ()
    checks: tuple[CitationCheck, ...]

    @property
    def verified(self) -> tuple[CitationCheck, ...]:
        """The citations that checked out."""
        return tuple(c for c in self.checks if c.ok)

    @property
    def flagged(self) -> tuple[CitationCheck, ...]:
        """The citations that did not (wrong, or unverifiable)."""
        return tuple(c for c in self.checks if not c.ok)


def _given(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _ref(text: str, quote: str | None, given: str) -> Citation:
    """Parse ``path:a-b`` (and the other spellings) into a Citation."""
    ref = text.strip().strip("`").strip()
    if ref.startswith("[") and ref.endswith("]"):
        ref = ref[1:-1].strip()
    if not ref:
        return Citation(given, None, quote=quote)
    m = _LINES.match(ref) or _WORDY.match(ref)
    if m is None:
        if any(c.isspace() for c in ref) or "\n" in ref:
            return Citation(given, None, quote=quote)
        return Citation(given, _clean_path(ref), quote=quote)
    a = int(m.group("a"))
    b = int(m.group("b")) if m.group("b") else a
    return Citation(given, _clean_path(m.group("path")), a, b, quote)


def _clean_path(path: str) -> str:
    path = path.strip().strip("`").strip()
    return path[2:] if path.startswith("./") else path


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _from_object(value: dict[Any, Any], given: str) -> Citation:
    quote = value.get("quote", value.get("text"))
    quote = quote if isinstance(quote, str) and quote.strip() else None
    for name in ("source", "citation", "ref"):
        if isinstance(value.get(name), str):
            return _ref(value[name], quote, given)
    path = value.get("path", value.get("file"))
    if not isinstance(path, str) or not path.strip():
        return Citation(given, None, quote=quote)
    lines = value.get("lines")
    if isinstance(lines, str):
        return _ref(f"{path}:{lines.strip()}", quote, given)
    if isinstance(lines, list) and lines:
        a, b = _int(lines[0]), _int(lines[-1])
    else:
        a = _int(value.get("line", value.get("start", value.get("start_line"))))
        b = _int(value.get("end", value.get("end_line")))
    if a is None:
        return Citation(given, _clean_path(path), quote=quote)
    return Citation(given, _clean_path(path), a, a if b is None else b, quote)


def parse_citation(value: object) -> Citation:
    """Parse one citation: a string (``path:12``, ``path:12-18``, ``path:12 "quote"``)
    or an object (``{"source": ..., "quote": ...}``). Never raises: what does not
    parse comes back with ``path`` None (and is reported ``malformed``)."""
    given = _given(value)
    if len(given) > MAX_CITATION:
        return Citation(given[:MAX_CITATION] + "...", None)
    if isinstance(value, dict):
        return _from_object(value, given)
    if not isinstance(value, str):
        return Citation(given, None)
    m = _QUOTED.match(value.strip())
    if m is not None:
        return _ref(m.group("ref"), m.group("quote") or None, given)
    return _ref(value, None, given)


def parse_citations(values: object) -> tuple[Citation, ...]:
    """Parse a list of citations (a single string or object counts as a list of one)."""
    if values is None:
        return ()
    items: Iterable[object] = values if isinstance(values, list | tuple) else [values]
    return tuple(parse_citation(v) for v in items)


def split_sources(source: str) -> list[str]:
    """A passage's source, which may join several citations with ``", "`` (a finding's
    sources), as single citations."""
    parts = [p.strip() for p in source.split(", ")]
    if len(parts) > 1 and all(_LINES.match(p) for p in parts):
        return parts
    return [source]


def normalize_quote(text: str) -> str:
    """Text as quotes are compared: NFKC, straight quotes and dashes, one space for any
    whitespace run, case-folded; ellipses and quote marks around it dropped."""
    out = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    out = " ".join(out.split()).casefold()
    return out.strip(" .\"'")


def _ranges(spans: Sequence[tuple[int, int]]) -> str:
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in spans[:_RANGES_SHOWN]]
    more = len(spans) - _RANGES_SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


class ContextView:
    """Line-level access to one context version by path and file line number."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.paths: dict[str, list[int]] = {}
        for i, doc in enumerate(context.documents):
            self.paths.setdefault(doc.path, []).append(i)
        self._starts: dict[int, list[int]] = {}

    @property
    def label(self) -> str:
        return f"shard {self.context.shard}'s context version {self.context.version}"

    def _line_starts(self, index: int) -> list[int]:
        starts = self._starts.get(index)
        if starts is None:
            doc = self.context.documents[index]
            text = self.context.text
            starts = [doc.start] if doc.end > doc.start else []
            i = text.find("\n", doc.start, doc.end)
            while i != -1 and i + 1 < doc.end:
                starts.append(i + 1)
                i = text.find("\n", i + 1, doc.end)
            self._starts[index] = starts
        return starts

    def line_count(self, index: int) -> int:
        """How many lines document ``index`` holds."""
        return len(self._line_starts(index))

    def spans(self, path: str) -> list[tuple[int, int]]:
        """The file line ranges of ``path``'s documents in this version."""
        out = []
        for i in self.paths.get(path, []):
            n = self.line_count(i)
            first = self.context.documents[i].first_line
            if n:
                out.append((first, first + n - 1))
        return sorted(out)

    def line(self, path: str, number: int) -> str | None:
        """The text of line ``number`` of ``path`` (None when this version lacks it)."""
        for i in self.paths.get(path, []):
            doc = self.context.documents[i]
            starts = self._line_starts(i)
            j = number - doc.first_line
            if 0 <= j < len(starts):
                end = starts[j + 1] if j + 1 < len(starts) else doc.end
                return self.context.text[starts[j] : end]
        return None

    def lines(
        self, path: str, lo: int | None = None, hi: int | None = None
    ) -> Iterable[tuple[int, str]]:
        """The lines of ``path`` present in this version (those from ``lo`` to ``hi``,
        when given), with their numbers."""
        for first, last in self.spans(path):
            start = first if lo is None else max(lo, first)
            stop = last if hi is None else min(hi, last)
            for n in range(start, stop + 1):
                yield n, self.line(path, n) or ""

    def suggest(self, path: str) -> str | None:
        """The one path with the same file name, if there is exactly one."""
        name = path.rsplit("/", 1)[-1]
        same = [p for p in self.paths if p.rsplit("/", 1)[-1] == name]
        return same[0] if len(same) == 1 else None


def check_citation(citation: Citation, view: ContextView) -> CitationCheck:
    """Check one citation against one context version (no Redis involved)."""
    ctx = view.context

    def result(status: CitationStatus, reason: str) -> CitationCheck:
        return CitationCheck(citation, status, reason, ctx.shard, ctx.version)

    path = citation.path
    if path is None:
        return result(
            CitationStatus.MALFORMED,
            'not a citation: expected path:line, path:first-last or {"source": ..., "quote": ...}',
        )
    if path not in view.paths:
        hint = view.suggest(path)
        more = f" (did you mean {hint}?)" if hint else ""
        return result(CitationStatus.UNKNOWN_PATH, f"no document {path} in {view.label}{more}")
    spans = view.spans(path)
    if citation.start is None:
        if citation.quote is None:
            return result(CitationStatus.OK, "the document exists (no lines cited)")
        return _check_quote(citation, view, [t for _, t in view.lines(path)], result, "document")
    a, b = citation.start, citation.end if citation.end is not None else citation.start
    if a > b:
        return result(CitationStatus.MALFORMED, f"first line {a} is after last line {b}")
    have = _ranges(spans) if spans else "no lines"
    texts: list[str] = []
    for n in range(a, b + 1):
        line = view.line(path, n)
        if line is None:
            return result(
                CitationStatus.OUT_OF_RANGE,
                f"{path} has lines {have} in {view.label}; line {n} is not among them",
            )
        texts.append(line)
    if citation.quote is None:
        return result(CitationStatus.OK, "the lines exist")
    return _check_quote(citation, view, texts, result, "cited lines")


def _check_quote(
    citation: Citation,
    view: ContextView,
    texts: list[str],
    result: Callable[[CitationStatus, str], CitationCheck],
    what: str,
) -> CitationCheck:
    quote = normalize_quote(citation.quote or "")
    if not quote or quote in normalize_quote("".join(texts)):
        return result(
            CitationStatus.OK, f"the {what} hold{'s' if what == 'document' else ''} the quote"
        )
    where = ""
    if citation.path is not None:  # a hint: the line near the cited ones that holds it
        near = citation.start or 1
        window = view.lines(citation.path, near - HINT_WINDOW, near + HINT_WINDOW)
        for n, line in window:
            if quote in normalize_quote(line):
                where = f"; it is at {citation.path}:{n}"
                break
    return result(CitationStatus.QUOTE_NOT_FOUND, f"the quote is not in {citation.source}{where}")


class CitationChecker:
    """Checks citations against shard context versions read from Redis.

    Contexts are borrowed through a ``ContextCache`` (a version is fetched once: versions
    are immutable); a version that is gone is remembered, and reported as expired when
    it is older than the shard's current one, else as not existing."""

    def __init__(
        self, store: ShardStore, cache: ContextCache | None = None, max_views: int = 16
    ) -> None:
        if cache is None:  # imported here: swarmstream.shard imports this package
            from swarmstream.shard.borrow import ContextCache

            cache = ContextCache(store)
        self.store = store
        self.cache = cache
        self.max_views = max_views
        self._views: OrderedDict[tuple[str, int], ContextView] = OrderedDict()
        self._gone: dict[tuple[str, int], tuple[CitationStatus, str]] = {}

    @classmethod
    def of(cls, swarm: Swarm) -> CitationChecker:
        """A checker reading through ``swarm``'s transport."""
        return cls(swarm.transport.shards)

    async def current_versions(self, shards: Sequence[str]) -> dict[str, int | None]:
        """The current context version of each shard, in one round trip."""
        return await self.store.context_versions(list(dict.fromkeys(shards)))

    async def context(self, shard: str, version: int) -> Context | None:
        """One context version (None when it is gone)."""
        return await self.cache.get(shard, version)

    async def view(
        self, shard: str, version: int | None
    ) -> ContextView | tuple[CitationStatus, str]:
        """The view of a version (default: the current one), or why there is none."""
        if version is None:
            version = (await self.store.context_versions([shard]))[shard]
            if version is None:
                return CitationStatus.NO_CONTEXT, f"unverifiable: shard {shard} has no context"
        key = (shard, version)
        hit = self._views.get(key)
        if hit is not None:
            self._views.move_to_end(key)
            return hit
        if key in self._gone:
            return self._gone[key]
        ctx = await self.cache.get(shard, version)
        if ctx is None:
            current = (await self.store.context_versions([shard]))[shard]
            if current is not None and version < current:
                why = (
                    CitationStatus.EXPIRED,
                    f"unverifiable: context version {version} of shard {shard} expired "
                    f"(current is {current})",
                )
            else:
                why = (
                    CitationStatus.NO_CONTEXT,
                    f"unverifiable: shard {shard} has no context version {version}",
                )
            self._gone[key] = why
            return why
        view = self._views[key] = ContextView(ctx)
        while len(self._views) > self.max_views:
            self._views.popitem(last=False)
        return view

    async def check(
        self, citations: Iterable[object], shard: str, version: int | None = None
    ) -> list[CitationCheck]:
        """Check citations (strings, objects or ``Citation``s) against ``shard``'s
        context ``version`` (default: the current one)."""
        parsed = [c if isinstance(c, Citation) else parse_citation(c) for c in citations]
        if not parsed:
            return []
        view = await self.view(shard, version)
        if isinstance(view, ContextView):
            return [check_citation(c, view) for c in parsed]
        status, reason = view
        return [CitationCheck(c, status, reason, shard, version) for c in parsed]

    async def flag_sources(
        self, shard: str, sources: Sequence[str], version: int | None = None
    ) -> list[tuple[str, str]]:
        """``(source, reason)`` for each source that does not check out: what a pass
        synthesis records as unverified (``swarmstream.shard.synthesis.SourceChecker``)."""
        checks = await self.check(sources, shard, version)
        return [(src, c.reason) for src, c in zip(sources, checks, strict=True) if not c.ok]
