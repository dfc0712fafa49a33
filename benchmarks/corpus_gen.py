"""A deterministic corpus for the answers evaluation (``benchmarks/answers_eval.py``).

``generate(seed, tokens, facts_per_family)`` writes documents of several kinds, like
a real mixed corpus: Markdown handbooks, Python source with comments, man pages,
licenses, service logs (one of them larger than a shard) and CSV tables, about
``tokens`` tokens in all (four characters a token). Eight families of facts are
planted at known ``path:line`` (a warehouse's carrier, a cluster's on-call engineer,
a command's default, an uploader's retry limit, a license's attribution rule, a
certificate renewal error, a project's budget, a team's review meeting), and each
fact gets:

* paraphrased questions (other words, other order; the fact's names kept);
* a near miss: one of those questions about a name the corpus lacks;
* a near miss about a name the corpus has, in other sentences only;
* a question about the same entity that the corpus does not answer.

Distractors make the planted lines far from the only ones with their words: the
same sentence shape about other entities (siblings), other sentences about the
same entity, and filler drawn from a vocabulary that includes every word the
questions use. Unanswerable questions ask about things nowhere in the corpus.
``check`` verifies the premises on the text itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks import corpus_text as t
from swarmstream.context import estimate_tokens
from swarmstream.handlers.retrieve import STOPWORDS, terms


@dataclass(frozen=True, slots=True)
class Family:
    """A kind of fact: its sentence, paraphrased questions, and distractors.

    Slots: ``{e}`` the entity asked about, ``{a}`` the attribute the question keeps,
    other ``{...}`` are values (``values``)."""

    key: str
    kind: str
    entity: str
    attrs: tuple[str, ...]
    fact: str
    questions: tuple[str, ...]
    siblings: tuple[str, ...]
    others: tuple[str, ...]
    unstated: tuple[str, ...]
    values: Callable[[random.Random], dict[str, str]]


def _vals(rng: random.Random) -> dict[str, str]:
    return {
        "day": rng.choice(t.WEEKDAYS),
        "month": rng.choice(t.MONTHS),
        "person": f"{rng.choice(t.FIRST)} {rng.choice(t.LAST)}",
        "n": str(rng.randint(2, 60)),
        "hour": str(rng.randint(7, 18)),
        "room": f"{rng.choice('ABCDEFG')}{rng.randint(100, 499)}",
        "code": f"E{rng.randint(1000, 9999)}",
        "year": str(rng.randint(1998, 2031)),
        "dir": f"/var/lib/{rng.choice(t.NOUNS)}",
        "conf": f"/etc/{rng.choice(t.NOUNS)}.conf",
        "ver": f"{rng.randint(1, 9)}.{rng.randint(0, 20)}",
    }


FAMILIES = (
    Family(
        "warehouse", "prose", "city",
        ("cold-chain", "bulk", "fragile", "hazardous", "oversized", "perishable",
         "pharmacy", "express", "refrigerated", "furniture", "textile", "seasonal"),
        "The warehouse in {e} ships {a} orders on {day}s via carrier {carrier}.",
        ("Which carrier does the {e} warehouse use for {a} orders?",
         "On what day of the week are {a} orders shipped from the warehouse in {e}?",
         "How and when does the {e} warehouse send out its {a} orders?"),
        ("The warehouse in {e} ships {a} orders on {day}s via carrier {carrier}.",
         "Carrier {carrier} collects {a} orders from the {e} warehouse every {day}."),
        ("The {e} warehouse passed its fire inspection in {month}.",
         "Staff at the {e} warehouse logged {n} overtime hours last week.",
         "The loading dock of the {e} warehouse closes at {hour}:00."),
        ("What is the phone number of the {e} warehouse?",
         "How many employees work at the warehouse in {e}?"),
        _vals,
    ),
    Family(
        "oncall", "prose", "system", tuple(t.MONTHS[6:]),
        "{person} is the on-call engineer for the {e} cluster during {a}.",
        ("Who is on call for the {e} cluster in {a}?",
         "Which engineer covers on-call duty for {e} during {a}?",
         "In {a}, who handles pages for the {e} cluster?"),
        ("{person} is the on-call engineer for the {e} cluster during {a}.",),
        ("The {e} cluster was upgraded to version {ver} in {month}.",
         "The {e} cluster serves {n} thousand requests per second at peak.",
         "{person} is the on-call engineer for the {e} cluster during {othermonth}."),
        ("How many nodes does the {e} cluster run?",
         "Which region hosts the {e} cluster?"),
        lambda r: _vals(r) | {"othermonth": r.choice(t.MONTHS[:6])},
    ),
    Family(
        "command", "man", "cmd",
        ("archives", "snapshots", "journals", "backups", "dumps", "manifests"),
        "By default {e} keeps {n} rotated {a} under {dir}.",
        ("How many rotated {a} does {e} keep by default?",
         "Where does `{e}` store its rotated {a}?",
         "What is the default number of {a} that {e} keeps?"),
        ("By default {e} keeps {n} rotated {a} under {dir}.",),
        ("{e} reads its configuration from {conf} unless --config is given.",
         "{e} exits with status {n} when another process holds the lock file."),
        ("Which port does {e} listen on?", "Which signal makes {e} reload its settings?"),
        _vals,
    ),
    Family(
        "uploader", "source", "component",
        ("image", "video", "document", "backup", "invoice", "manifest", "report", "archive"),
        "The {e} uploader retries a failed {a} upload {n} times, then gives up.",
        ("How many times does the {e} uploader retry a failed {a} upload?",
         "After how many failed attempts does the {e} uploader give up on a {a} upload?",
         "What is the retry limit of the {e} uploader for {a} uploads?"),
        ("The {e} uploader retries a failed {a} upload {n} times, then gives up.",),
        ("The {e} uploader compresses every chunk with level {n} before sending it.",
         "The {e} uploader logs its progress every {n} seconds."),
        ("Which storage bucket does the {e} uploader write to?",
         "Which proxy does the {e} uploader connect through?"),
        _vals,
    ),
    Family(
        "license", "license", "license",
        ("header", "footer", "about dialog", "colophon", "notice file", "title page",
         "credits screen", "release notes"),
        "Under the {e} License, attribution must appear in the {a} of every copy.",
        ("Where must attribution appear under the {e} License?",
         "In which part of a copy does the {e} License require the attribution?",
         "Where does the {e} License say the attribution goes?"),
        ("Under the {e} License, attribution must appear in the {a} of every copy.",),
        ("The {e} License was first published in {year}.",
         "The {e} License is compatible with version {ver} of the public terms."),
        ("Does the {e} License allow commercial use?", "Who wrote the {e} License?"),
        _vals,
    ),
    Family(
        "certificate", "log", "host",
        ("wildcard", "client", "server", "intermediate", "signing"),
        "{ts} ERROR certd[{pid}]: renewal of the {a} certificate for {e} failed with code {code}",
        ("Which error code did the {a} certificate renewal for {e} fail with?",
         "Why did the renewal of the {a} certificate of {e} fail?",
         "What code was returned when the {a} certificate renewal for host {e} failed?"),
        ("{ts} ERROR certd[{pid}]: renewal of the {a} certificate for {e} failed with code "
         "{code}",),
        ("{ts} INFO certd[{pid}]: {e} presented a valid {a} certificate, {n} days left",
         "{ts} WARN certd[{pid}]: {e} answered slowly during the {a} certificate check"),
        ("How much memory does {e} have?", "Which datacenter hosts {e}?"),
        lambda r: _vals(r) | {"ts": t.timestamp(r), "pid": str(r.randint(100, 9999))},
    ),
    Family(
        "budget", "prose", "project", ("first", "second", "third", "fourth"),
        "Project {e} was granted {n} million credits for the {a} quarter.",
        ("How much funding did project {e} receive for the {a} quarter?",
         "What budget was granted to {e} in the {a} quarter?",
         "How many credits does project {e} have for its {a} quarter?"),
        ("Project {e} was granted {n} million credits for the {a} quarter.",),
        ("Project {e} hired {n} contractors in {month}.",
         "Project {e} moved its review meeting to {day}s."),
        ("Who leads project {e}?", "When did project {e} start?"),
        _vals,
    ),
    Family(
        "meeting", "prose", "team",
        ("release", "security", "design", "incident", "budget", "architecture"),
        "The {e} team holds its {a} review every {day} at {hour}:00 in room {room}.",
        ("When does the {e} team hold its {a} review?",
         "Where does the {e} team meet for the {a} review?",
         "At what time is the {a} review of the {e} team?"),
        ("The {e} team holds its {a} review every {day} at {hour}:00 in room {room}.",),
        ("The {e} team has {n} members across three offices.",
         "The {e} team publishes its roadmap in {month}."),
        ("Who is the manager of the {e} team?", "How large is the budget of the {e} team?"),
        _vals,
    ),
)  # fmt: skip

#: Questions about things nowhere in the corpus (``{r}``: a name it lacks).
UNANSWERABLE = (
    "What is the maximum payload of the {r} drone?",
    "Who founded the {r} rowing club?",
    "Which ferry leaves {r} on Sunday mornings?",
    "How long does the {r} bakery proof its sourdough?",
    "What is the wingspan of the {r} glider?",
    "Which violin concerto did the {r} orchestra play last season?",
    "When does the {r} museum open its lighthouse exhibit?",
    "Which vaccine does the {r} clinic give to puppies?",
    "How do I descale an espresso machine?",
    "What fertilizer suits tomato seedlings?",
    "Which telescope mount is best for astrophotography?",
    "How long is the kayak marathon route?",
)


@dataclass(frozen=True, slots=True)
class Question:
    """A question and what a right answer is: ``path:line`` of the planted fact, or
    None when the corpus does not answer it (``kind`` says why)."""

    text: str
    kind: str  # answerable, near_miss, near_miss_known, unstated, unanswerable
    family: str
    path: str | None = None
    line: int | None = None


@dataclass
class Corpus:
    docs: list[tuple[str, str]]
    questions: list[Question]
    big_path: str
    absent: set[str] = field(default_factory=set)  # names the corpus must not hold

    @property
    def chars(self) -> int:
        return sum(len(t) for _, t in self.docs)

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.chars)

    def text_of(self, path: str) -> str:
        return dict(self.docs)[path]


#: share of the corpus (after the big log) per kind of document; sizes in characters
KINDS = {
    "prose": (0.40, 6_000, 30_000),
    "source": (0.20, 5_000, 25_000),
    "man": (0.12, 4_000, 12_000),
    "license": (0.10, 8_000, 25_000),
    "log": (0.12, 10_000, 40_000),
    "table": (0.06, 3_000, 10_000),
}
BIG_SHARE = 0.26
BIG_PATH = "logs/gateway/2031-03.log"
AREAS = ("ops", "logistics", "finance", "teams", "platform", "support", "research", "notes")
ROLES = ("db", "web", "cache", "mq", "api", "edge")


class _Names:
    """Fresh names: each differs from every word of the corpus and every other name."""

    def __init__(self, rng: random.Random, taken: set[str]) -> None:
        self.rng, self.taken = rng, taken

    def _fresh(self, make: Callable[[], str], key: Callable[[str], str]) -> str:
        while True:
            name = make()
            k = key(name)
            if len(k) > 3 and k not in self.taken and terms(k) == [k]:
                self.taken.add(k)
                return name

    def of(self, kind: str) -> str:
        rng = self.rng
        if kind == "cmd":
            suffix = ("ctl", "d", "sync", "tool", "")
            return self._fresh(
                lambda: "".join(rng.sample(t.SYLLABLES, 2)) + rng.choice(suffix), str
            )
        if kind == "host":
            return self._fresh(
                lambda: (
                    f"{rng.choice(ROLES)}-{''.join(rng.sample(t.SYLLABLES, 2))}-"
                    f"{rng.randint(1, 40):02d}"
                ),
                lambda h: h.split("-")[1],
            )
        return self._fresh(lambda: t.cap_name(rng), str.lower)


@dataclass
class _Doc:
    path: str
    kind: str
    lines: list[str]


def _entities(names: _Names, fam: Family, per: int) -> dict[str, list[str]]:
    return {
        role: [names.of(fam.entity) for _ in range(n)]
        for role, n in (("fact", per), ("sibling", 3 * per), ("mention", per), ("reserve", per))
    }


def _insert(doc: _Doc, text: str, rng: random.Random, frac: float | None = None) -> str:
    """Insert ``text`` inside a paragraph (or block) of ``doc``; returns the line as
    written (indented like the document)."""
    lines = doc.lines
    for _ in range(200):
        i = rng.randint(2, len(lines) - 1) if frac is None else int(len(lines) * frac)
        if doc.kind == "log" or (lines[i - 1].rstrip().endswith((".", ":")) and lines[i].strip()):
            break
        frac = None
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    if doc.kind == "source":
        text = f"{indent or '    '}# {text}"
    elif doc.kind == "man":
        text = f"{indent or '       '}{text}"
    lines.insert(i, text)
    return text


def _documents(rng: random.Random, writer: t.Writer, names: _Names, tokens: int,
               commands: list[str], listed: list[str]) -> list[_Doc]:  # fmt: skip
    chars = tokens * 4
    docs = [_Doc(BIG_PATH, "log", writer.log(int(chars * BIG_SHARE), "gateway"))]
    rest = chars * (1 - BIG_SHARE)
    for kind, (share, lo, hi) in KINDS.items():
        budget, i = rest * share, 0
        while budget > 0:
            size, i = rng.randint(lo, hi), i + 1
            writer.w.new_topic()
            topic = writer.w.noun()
            if kind == "man":
                cmd = commands[i - 1] if i <= len(commands) else names.of("cmd")
                doc = _Doc(f"man/man1/{cmd}.1", kind, writer.man(size, cmd))
            elif kind == "prose":
                area = AREAS[i % len(AREAS)]
                doc = _Doc(f"docs/{area}/{topic}-{i:03d}.md", kind, writer.prose(size))
            elif kind == "source":
                path = f"src/{writer.w.noun()}/{topic}_{i:03d}.py"
                doc = _Doc(path, kind, writer.source(size, names.of("owner")))
            elif kind == "license":
                path = f"licenses/{topic.upper()}-{i:02d}.txt"
                doc = _Doc(path, kind, writer.license(size))
            elif kind == "log":
                path = f"logs/{topic}/2031-{rng.randint(1, 12):02d}-{i:02d}.log"
                doc = _Doc(path, kind, writer.log(size, topic))
            else:
                doc = _Doc(f"data/{topic}-{i:02d}.csv", kind, writer.table(size, listed))
            docs.append(doc)
            budget -= sum(len(x) + 1 for x in doc.lines)
    return docs


def _extra_words() -> list[str]:
    """Every word the family questions use: the filler uses them too."""
    text = " ".join(q for f in FAMILIES for q in (*f.questions, *f.unstated, *f.others))
    words = {x.lower().strip("?,.`") for x in text.split() if "{" not in x}
    known = {*t.NOUNS, *t.ADJS, *t.ADVS, *t.PREPS, *(v for v, _ in t.VERBS)}
    return sorted(x for x in words if x.isalpha() and x not in known | STOPWORDS)


def generate(seed: int = 2026, tokens: int = 1_000_000, facts_per_family: int = 12) -> Corpus:
    """A corpus of about ``tokens`` tokens with ``facts_per_family`` facts of each of
    the eight families, and its questions (``Question``)."""
    rng = random.Random(seed)
    words = t.Words(rng, _extra_words())
    vocab = words.nouns + t.ADJS + t.ADVS + t.PREPS + t.LEGAL + t.FIRST + t.LAST
    taken = {x.lower() for x in vocab + t.WEEKDAYS + t.MONTHS + [v for p in t.VERBS for v in p]}
    names = _Names(rng, taken | {x.lower() for x in t.OUTSIDE})
    writer = t.Writer(rng, words)
    ents = {f.key: _entities(names, f, facts_per_family) for f in FAMILIES}
    carriers = [names.of("carrier") for _ in range(20)]
    cmds = [c for role in ("fact", "sibling", "mention") for c in ents["command"][role]]
    listed = [x for f in ("warehouse", "meeting") for r in ("sibling", "mention")
              for x in ents[f][r]]  # fmt: skip
    docs = _documents(rng, writer, names, tokens, cmds, listed)
    by_kind: dict[str, list[_Doc]] = {}
    for d in docs:
        by_kind.setdefault(d.kind, []).append(d)
    man_of = {d.path.split("/")[-1][:-2]: d for d in by_kind["man"]}

    def where(fam: Family, entity: str) -> _Doc:
        if fam.kind == "man" and entity in man_of:
            return man_of[entity]
        return rng.choice(by_kind[fam.kind])

    def line(template: str, fam: Family, e: str, a: str) -> str:
        values = fam.values(rng) | {"carrier": rng.choice(carriers)}
        return template.format(e=e, a=a, **values)

    planted: list[tuple[Family, int, str, str, _Doc, str]] = []
    for fam in FAMILIES:
        attrs = list(fam.attrs)
        rng.shuffle(attrs)
        e = ents[fam.key]
        for i, entity in enumerate(e["fact"]):
            a = attrs[i % len(attrs)]
            doc = where(fam, entity)
            big = fam.kind == "log" and i < 3
            doc = docs[0] if big else doc
            text = _insert(
                doc, line(fam.fact, fam, entity, a), rng, (0.1, 0.5, 0.9)[i] if big else None
            )
            planted.append((fam, i, entity, a, doc, text))
        for entity in e["sibling"]:
            template = rng.choice(fam.siblings)
            _insert(where(fam, entity), line(template, fam, entity, rng.choice(attrs)), rng)
        for entity in e["fact"] + e["mention"] * 2:
            template = rng.choice(fam.others)
            _insert(where(fam, entity), line(template, fam, entity, rng.choice(attrs)), rng)
    questions = _questions(planted, ents, names)
    out = [(d.path, "\n".join(d.lines) + "\n") for d in docs]
    return Corpus(out, questions, BIG_PATH)


def _questions(planted: list[tuple[Family, int, str, str, _Doc, str]],
               ents: dict[str, dict[str, list[str]]], names: _Names) -> list[Question]:  # fmt: skip
    out: list[Question] = []
    for fam, i, entity, a, doc, text in planted:
        line = doc.lines.index(text) + 1
        qs = fam.questions
        for j in (i, i + 1):
            out.append(
                Question(qs[j % 3].format(e=entity, a=a), "answerable", fam.key, doc.path, line)
            )
        reserve, mention = ents[fam.key]["reserve"][i], ents[fam.key]["mention"][i]
        out.append(Question(qs[(i + 2) % 3].format(e=reserve, a=a), "near_miss", fam.key))
        out.append(Question(qs[i % 3].format(e=mention, a=a), "near_miss_known", fam.key))
        out.append(Question(fam.unstated[i % 2].format(e=entity), "unstated", fam.key))
    for n in range(len(planted)):
        template = UNANSWERABLE[n % len(UNANSWERABLE)]
        out.append(Question(template.format(r=names.of("outside")), "unanswerable", "none"))
    return out


def check(corpus: Corpus) -> dict[str, int]:
    """Verify the premises on the text: every term of an answerable question, a near
    miss about a known name, or an unstated attribute is in the corpus; every near miss
    about an absent name and every unanswerable question has a term the corpus lacks;
    each fact is at its line. Returns the vocabulary size; raises ValueError."""
    vocab: set[str] = set()
    for _, text in corpus.docs:
        vocab.update(terms(text))
    problems = []
    for q in corpus.questions:
        lacking = set(terms(q.text)) - vocab
        if q.kind in ("answerable", "near_miss_known", "unstated") and lacking:
            problems.append(f"{q.kind} {q.text!r}: the corpus lacks {sorted(lacking)}")
        if q.kind in ("near_miss", "unanswerable") and not lacking:
            problems.append(f"{q.kind} {q.text!r}: the corpus has all its terms")
    if problems:
        raise ValueError("corpus premises broken:\n" + "\n".join(problems[:20]))
    return {"vocabulary": len(vocab)}
