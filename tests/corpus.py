"""A deterministic synthetic corpus with planted facts, for retrieval tests.

``generate(seed, tokens)`` writes markdown-like files of varied filler text (a
common vocabulary, a vocabulary of its own per file, and distractor words that
also occur in the facts and questions), one file larger than the rest, and plants
one fact per project at a known ``path:line``. Questions are worded differently
from their facts. A million tokens take well under a second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from swarmstream.context import estimate_tokens

_PROJECTS = (
    "Heliotrope Marigold Tamarind Juniper Quillon Saffron Borealis Calliope Dunmore "
    "Everglade Fennimore Galloway Hyperion Isolde Jasperine Kestrel Lazuli Morrow "
    "Nightjar Oriel"
)
PROJECTS = _PROJECTS.split()

# (fact, question, answer): {p} is the project, {v} the answer.
TEMPLATES = (
    ("The vault code of project {p} is {v}.", "What is the vault code of project {p}?"),
    (
        "Project {p} will open its launch window on {v}.",
        "When does the launch window of project {p} open?",
    ),
    ("{v} serves as chief engineer on project {p}.", "Who is the chief engineer of project {p}?"),
    (
        "Project {p} was granted a budget of {v} million credits.",
        "How big is the budget of project {p}?",
    ),
    (
        "The backup server for project {p} sits in rack {v}.",
        "In which rack is the backup server of project {p}?",
    ),
    (
        "Project {p} keeps its archive password as {v}.",
        "What is the archive password of project {p}?",
    ),
    ("The mascot chosen by project {p} is a {v}.", "Which mascot did project {p} choose?"),
    ("Project {p} stores its telemetry in bucket {v}.", "Where does project {p} store telemetry?"),
    (
        "The emergency contact for project {p} is extension {v}.",
        "What is the emergency contact extension for project {p}?",
    ),
    (
        "Project {p} ships its first release from harbor {v}.",
        "From which harbor does project {p} ship its first release?",
    ),
)

# Lines that name a project without stating a fact about it ({x}, {y}: neutral words).
DISTRACTORS = (
    "The {p} team reviewed the {x} and the {y} this week.",
    "Project {p} moved its {x} review after the {y} meeting.",
    "Notes from {p}: the {x} is {y} again, see the {p} tracker.",
)

_COMMON = """
the a of and to in is for on with as by at from that this it be are was were will
team system report data network storage service review plan schedule update release
meeting budget design test build deploy monitor incident change request policy access
user customer partner vendor contract invoice ticket issue task sprint roadmap goal
metric latency throughput capacity cluster node region zone backup restore archive
server rack bucket vault code window launch engineer contact emergency harbor mascot
telemetry password project credit million quarter week month morning evening daily
weekly review approve reject escalate assign migrate rotate refresh verify audit
stable slow fast new old large small primary secondary internal external manual
automatic critical minor pending complete delayed early late north south east west
"""
COMMON = _COMMON.split()

_SYLLABLES = (
    "ba be bi bo bu da de di do du fa fe fi fo ga ge gi go ka ke ki ko la le li lo lu "
    "ma me mi mo mu na ne ni no nu pa pe pi po ra re ri ro ru sa se si so ta te ti to "
    "va ve vi vo za ze zo tri pla bro cle dra fen gor hal jun kel lom mir nor pell quin"
)
SYLLABLES = _SYLLABLES.split()

AREAS = ("ops", "design", "research", "finance", "legal", "support", "infra", "notes")


@dataclass(frozen=True, slots=True)
class Fact:
    """A planted fact: where it is, what it says, and the question that finds it."""

    path: str
    line: int
    text: str
    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class Corpus:
    docs: list[tuple[str, str]]
    facts: list[Fact]
    big_path: str

    @property
    def chars(self) -> int:
        return sum(len(t) for _, t in self.docs)

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.chars)


def _answers(rng: random.Random) -> list[str]:
    """One answer per template kind, distinct for every fact."""
    greek = ("ZETA", "KAPPA", "SIGMA", "OMEGA", "THETA", "DELTA", "LAMBDA")
    month = rng.choice(["March", "July", "October"])
    first, last = rng.choice(["Odile", "Ravi", "Ines"]), rng.choice(["Varga", "Okafor", "Lund"])
    return [
        f"{rng.randint(1000, 9999)}-{rng.choice(greek)}",
        f"{rng.randint(1, 28)} {month} {rng.randint(2030, 2039)}",
        f"{first} {last}",
        f"{rng.randint(2, 90)}.{rng.randint(1, 9)}",
        f"{rng.randint(10, 99)}{rng.choice('ABCDEF')}",
        rng.choice(["bluefinch", "copperleaf", "starmoss", "quietfern"]) + str(rng.randint(10, 99)),
        rng.choice(["pangolin", "narwhal", "axolotl", "capybara"]),
        f"s3-{rng.choice(['amber', 'cobalt', 'onyx'])}-{rng.randint(100, 999)}",
        str(rng.randint(2000, 7999)),
        rng.choice(["Port Aster", "Port Bellweather", "Port Corran", "Port Delphine"]),
    ]


def _words(rng: random.Random, n: int, exclude: set[str]) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if w not in exclude:
            out.add(w)
    return sorted(out)


def _lines(rng: random.Random, pool: list[str], count: int, title: str) -> list[str]:
    """``count`` lines of headings and paragraphs (3-6 lines, blank-line separated)."""
    words = iter(rng.choices(pool, k=count * 14))
    lines = [f"# {title}", ""]
    while len(lines) < count:
        if rng.random() < 0.12:
            lines += [f"## {next(words).capitalize()} {next(words)} {next(words)}", ""]
        for _ in range(rng.randint(3, 6)):
            n = rng.randint(8, 13)
            sentence = " ".join(next(words) for _ in range(n))
            lines.append(sentence[0].upper() + sentence[1:] + ".")
        lines.append("")
    return lines


def _plant(rng: random.Random, lines: list[str], lo: float, hi: float, fact: str) -> int:
    """Insert ``fact`` inside a paragraph between fractions lo..hi; its 1-based line."""
    while True:
        i = rng.randint(int(len(lines) * lo), int(len(lines) * hi) - 1)
        if lines[i] and not lines[i].startswith("#") and i > 0 and lines[i - 1]:
            lines.insert(i, fact)
            return i + 1


def generate(seed: int = 7, tokens: int = 1_000_000, big_share: float = 0.26) -> Corpus:
    """A corpus of about ``tokens`` tokens; ``big_share`` of it is one large file."""
    rng = random.Random(seed)
    names = {p.lower() for p in PROJECTS}
    asked = {w.lower().strip("?.{}") for t in TEMPLATES for s in t for w in s.split()}
    neutral = [w for w in COMMON[20:] if w not in asked]
    vocab = _words(rng, 3000, names | set(COMMON))
    answers = [_answers(rng) for _ in range(2)]
    chars_per_line = 61  # measured: words of ~6 chars, 8-13 a line, blank lines
    big_lines = int(tokens * 4 * big_share / chars_per_line)
    small_lines = 260
    n_small = max(20, int((tokens * 4 / chars_per_line - big_lines) / small_lines))
    big_at = n_small // 2
    files: list[tuple[str, list[str]]] = []
    for i in range(n_small + 1):
        topic = rng.sample(vocab, 60)
        pool = COMMON * 2 + topic * 3 + rng.sample(vocab, 200)
        if i == big_at:
            path, count = "ops/operations-journal.md", big_lines
        else:
            path, count = f"{AREAS[i % len(AREAS)]}/{topic[0]}-{i:03d}.md", small_lines
        lines = _lines(rng, pool, count, f"{topic[0].capitalize()} {topic[1]} {topic[2]}")
        for p in rng.sample(PROJECTS, 2):  # distractors: projects named without facts
            lines[rng.randint(3, len(lines) - 1)] = rng.choice(DISTRACTORS).format(
                p=p, x=rng.choice(neutral), y=rng.choice(neutral)
            )
        files.append((path, lines))
    # 17 facts in distinct small files, 3 in the big one (early, middle, late)
    small = [i for i in range(len(files)) if i != big_at]
    targets = [(i, 0.1, 0.9) for i in rng.sample(small, 17)]
    targets += [(big_at, 0.05, 0.2), (big_at, 0.5, 0.6), (big_at, 0.85, 0.95)]
    facts: list[Fact | None] = [None] * len(PROJECTS)
    # top-down within a file (ranges ascend), so a later insertion never shifts a fact
    for n in sorted(range(len(PROJECTS)), key=lambda n: targets[n][:2]):
        index, lo, hi = targets[n]
        path, lines = files[index]
        fact_t, question_t = TEMPLATES[n % len(TEMPLATES)]
        value = answers[n // len(TEMPLATES)][n % len(TEMPLATES)]
        fact = fact_t.format(p=PROJECTS[n], v=value)
        line = _plant(rng, lines, lo, hi, fact)
        facts[n] = Fact(path, line, fact, question_t.format(p=PROJECTS[n]), value)
    docs = [(path, "\n".join(lines) + "\n") for path, lines in files]
    return Corpus(docs, [f for f in facts if f is not None], "ops/operations-journal.md")
