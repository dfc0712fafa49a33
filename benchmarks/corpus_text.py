"""The filler of the generated evaluation corpus (``benchmarks/corpus_gen.py``): word
lists, and writers of documents of each kind (prose, source, man page, license, log,
table) as lists of lines.

Common English, software, operations and legal words, so that the filler reads like
documentation, source, man pages, licenses and logs, and a question asked in plain
words finds them in the corpus (as it would in any real million-token corpus).
Verbs are ``base:past`` where the past tense is not the base plus ``ed``.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from itertools import accumulate

NOUNS_TEXT = """
access account action address agent alarm alert algorithm allocation amount
analysis answer application approach archive area argument array assignment
attempt attribute audit author backend backup balance bandwidth batch behavior
benchmark block body boundary branch bridge browser buffer bug build bundle
button byte cache calendar call capacity card carrier case catalog category
certificate chain change channel chapter character charge check checksum child
chunk claim class clause client clock cluster code collection column command
comment commit company component compression condition configuration connection
consumer contact container content context contract control copy core cost
count counter country credit cursor customer cycle daemon damage dashboard data
database date day deadline decision default delay delivery demand dependency
deployment depot description design destination detail device dialog directory
disk display distribution dock document domain download draft driver duty
edition editor effect element email employee encoding engine engineer entry
environment error event example exception exchange execution exit expense
export extension factor failure feature feedback field file filter fire flag
fleet floor flow folder font form format frame function gate gateway goal grant
graph group guide handler hardware hash header heap height history holder host
hour identifier image import incident index input inspection instance interface
interval inventory invoice issue item job journal kernel key label language
latency layer layout lease ledger length level library license limit line link
list listener load location lock log loop machine mail manager manifest map
margin market member memory message method metric minute mode model module
month mount name network node note notice number object office offset operator
option order origin output owner package packet page pager parameter parser
partner party password patch path payload payment peer percent period
permission phone pipeline plan platform point policy pool port position
practice prefix price priority process product profile program progress
project property protocol provider proxy publisher purpose quarter query queue
quota rack range rate reader reason record region registry release remote
replica report repository request requirement resource response result retry
review revision right risk role room root route row rule runtime sample scale
schedule schema scope screen script search season second section sector
security segment selection sender sequence server service session setting
shard share shift shipment side signal signature site size slot snapshot
socket software source space speed stack staff stage standard state statement
station status step storage store stream string structure subject summary
supplier support switch symbol system table tag target task team template
tenant term test text thread threshold ticket time timeout timestamp title
token tool topic total trace track traffic transaction transfer tree trigger
type unit update upload usage user value variable vendor version view volume
warehouse warning week window worker workload year zone attribution copy
notice colophon footer dialog screen funding million contractor member
roadmap architecture pager dump journal backup snapshot request peak wildcard
intermediate renewal datacenter bucket crate pallet truck freight parcel
"""

VERBS_TEXT = """
accept access add adjust allocate allow append apply approve archive assign
attach audit authorize balance block build cache call cancel capture change
check choose:chose clean clear close collect commit compare compile compress
compute configure confirm connect contain copy count cover create decode
define delete deliver deploy describe detect disable dispatch display
distribute drop:dropped enable encode end ensure escalate evaluate exceed
execute exit expire export extend fail fetch fill filter find:found finish fix
flush follow format forward free generate get:got give:gave go:went grant
handle hash hold:held import include index inspect install keep:kept leave:left
limit list listen load lock log:logged manage map:mapped match measure meet:met
merge migrate monitor mount move need notify obtain open order own pack parse
pass patch pause perform permit pin:pinned place plan:planned poll present
prevent print process produce provide publish pull push queue read:read
receive record reduce refresh register reject release reload remove rename
renew repair replace reply report request require reserve reset:reset resolve
restart restore resume retain retry return review revoke rotate route run:ran
save scan:scanned schedule search select send:sent serve set:set ship:shipped
show sign skip:skipped sort split:split start stop:stopped store submit
support suspend switch sync take:took test throttle trace track transfer
trigger trim:trimmed truncate update upgrade upload use validate verify wait
warn watch work write:wrote hire publish collect present
"""

ADJECTIVES = """
active available average basic binary broken busy central clean cold common
complete compressed concurrent consistent critical current custom daily dark
dead default deprecated direct dirty disabled distinct dynamic early empty
encrypted entire exact existing expired external failed fast final first
fixed fragile free full global hazardous healthy heavy hidden high idle
immediate important inactive incoming initial inner internal invalid large
last late legacy light linear live local long low main major manual maximum
minimum minor missing mobile monthly native nested new next normal offline
old online open optional original other outgoing overdue partial pending
perishable permanent persistent plain primary private public quarterly quick
random raw ready recent refrigerated regional regular related remote
required reserved responsible rotated safe scheduled second secondary secure
separate serial shared short signed silent simple single slow small soft
special stable stale standard static strict strong temporary third total
trusted unique unknown unsigned upper urgent valid visible weekly whole wide
written bulk express oversized seasonal textile pharmacy furniture fourth
commercial wildcard
"""

ADVERBS = """
again almost already always automatically back carefully daily directly
early eventually first fully immediately later manually monthly never often
once only out quickly rarely regularly safely slowly sometimes soon still
together usually weekly yet per every peak last next
"""

PREPOSITIONS = """
across after against along around before behind below beside between beyond
during except inside near onto outside over past since through toward under
until upon via within without
"""

LEGAL_NOUNS = """
agreement attribution condition consent contributor copyright damages
derivative disclaimer distribution grant indemnity infringement jurisdiction
liability license licensee licensor limitation modification notice obligation
patent permission provision recipient redistribution remedy representation
restriction right royalty section software source subsection term termination
trademark warranty work
"""

PERSON_FIRST = """
Odile Ravi Ines Marta Jonas Priya Tomas Aiko Lena Kwame Sofia Emil Nadia Omar
Hanna Pedro Yara Felix Mira Arjun Clara Viktor Lucia Sami Nora Bruno Elif
Tariq Greta Hugo
"""

PERSON_LAST = """
Varga Okafor Lund Moreau Haddad Novak Sato Berg Costa Fischer Ivanova Mensah
Quist Romero Sandoval Tanaka Vogel Weiss Yilmaz Zeller Lindqvist Abara
Castell Dorsey Ekdahl
"""

WEEKDAYS_TEXT = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday"
MONTHS_TEXT = (
    "January February March April May June July August September October November December"
)

#: Words of the unanswerable questions: the generator checks none is in the corpus.
OUTSIDE_TEXT = """
drone rowing ferry sourdough glider violin orchestra puppy vaccine espresso
fertilizer tomato telescope astrophotography wingspan kayak marathon recipe
saxophone volcano penguin tundra harpsichord lighthouse bakery museum
"""

SYLLABLES_TEXT = """
ba be bi bo bu da de di do du fa fe fi fo ga ge gi go ka ke ki ko la le li lo
lu ma me mi mo mu na ne ni no nu pa pe pi po ra re ri ro ru sa se si so ta te
ti to va ve vi vo za ze zo tri pla bro cle dra fen gor hal jun kel lom mir nor
pell quin
"""

ONSETS_TEXT = "b br d dr f g gr h k kr l m n p r s st t th v w z sk"
VOWELS_TEXT = "a e i o u ae ei ou y"
NAME_CODAS = ("", "n", "r", "l", "s", "th", "nd", "rk", "lm", "x", "v", "st")


def _split(text: str) -> list[str]:
    return text.split()


NOUNS, ADJS, ADVS, PREPS = map(_split, (NOUNS_TEXT, ADJECTIVES, ADVERBS, PREPOSITIONS))
LEGAL = _split(LEGAL_NOUNS)
VERBS = [(*v.split(":"), "")[:2] for v in _split(VERBS_TEXT)]
WEEKDAYS, MONTHS = _split(WEEKDAYS_TEXT), _split(MONTHS_TEXT)
NAME_ONSETS, NAME_VOWELS = _split(ONSETS_TEXT), _split(VOWELS_TEXT)
OUTSIDE, SYLLABLES = _split(OUTSIDE_TEXT), _split(SYLLABLES_TEXT)
FIRST, LAST = _split(PERSON_FIRST), _split(PERSON_LAST)


def _third(verb: str) -> str:
    if verb.endswith(("s", "x", "z", "ch", "sh")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _past(verb: str, given: str) -> str:
    if given:
        return given
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    return verb + "d" if verb.endswith("e") else verb + "ed"


def plural(noun: str) -> str:
    return _third(noun)


def timestamp(rng: random.Random) -> str:
    return (
        f"2031-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
        f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
    )


def cap_name(rng: random.Random) -> str:
    n = rng.choice((2, 2, 3))
    parts = [
        rng.choice(NAME_ONSETS) + rng.choice(NAME_VOWELS) + rng.choice(NAME_CODAS) for _ in range(n)
    ]
    return "".join(parts).capitalize()


class Words:
    """Zipf-distributed words with a per-document topic."""

    def __init__(self, rng: random.Random, extra: list[str]) -> None:
        self.rng = rng
        self.extra = extra or ["other"]
        nouns = NOUNS[:]
        rng.shuffle(nouns)
        self.nouns, self.adjs, self.verbs = nouns, ADJS[:], VERBS[:]
        for pool in (self.adjs, self.verbs):
            rng.shuffle(pool)
        self.cum = {
            k: list(accumulate(1.0 / (i + 8) for i in range(len(p))))
            for k, p in (("n", self.nouns), ("a", self.adjs), ("v", self.verbs))
        }
        self.topic: list[str] = []

    def new_topic(self) -> None:
        self.topic = self.rng.sample(self.nouns, 25)

    def noun(self) -> str:
        if self.topic and self.rng.random() < 0.4:
            return self.rng.choice(self.topic)
        return self.rng.choices(self.nouns, cum_weights=self.cum["n"])[0]

    def adj(self) -> str:
        return self.rng.choices(self.adjs, cum_weights=self.cum["a"])[0]

    def verb(self, form: str) -> str:
        base, past = self.rng.choices(self.verbs, cum_weights=self.cum["v"])[0]
        return {"s": _third(base), "d": _past(base, past)}.get(form, base)

    def fill(self, template: str) -> str:
        """``template`` with each ``{slot}`` replaced by a word of its class."""
        rng = self.rng
        slots: dict[str, Callable[[], str]] = {
            "N": self.noun,
            "Ns": lambda: plural(self.noun()),
            "A": self.adj,
            "R": lambda: rng.choice(ADVS),
            "P": lambda: rng.choice(PREPS),
            "L": lambda: rng.choice(LEGAL),
            "V": lambda: self.verb("s"),
            "Vb": lambda: self.verb(""),
            "Vd": lambda: self.verb("d"),
            "n": lambda: str(rng.randint(2, 500)),
            "X": lambda: rng.choice(self.extra),
        }
        text = _SLOT.sub(lambda m: slots[m.group(1)](), template)
        return text[0].upper() + text[1:]


_SLOT = re.compile(r"\{(\w+)\}")


PROSE = (
    "the {A} {N} {V} the {N} {P} the {N}.",
    "each {N} {V} a {A} {N} when the {N} is {A}.",
    "{Ns} {Vb} {R} {P} {A} {Ns}.",
    "if the {N} {V} {P} a {N}, the {N} {V} {R}.",
    "a {N} that {V} {Ns} must {Vb} the {A} {N} first.",
    "the {N} was {Vd} {P} the {N} after the {A} {N}.",
    "our {Ns} {Vb} {Ns} {P} the {N} and the {N}.",
    "{Ns} are {Vd} {R} by the {A} {N}.",
    "do not {Vb} the {N} before the {N} {V}.",
    "this {N} {V} how {Ns} {Vb} {P} {A} {Ns}, and why.",
    "see the {N} {N} for the {A} {Ns} of each {N}.",
    "the {N} keeps {n} {Ns} {P} the {A} {N}.",
    "notes on {X} {N} and {X} {Ns} follow the {A} {N}.",
    "the {A} {N} covers {X}, {X} and {X} {Ns}.",
)
LEGAL_TEXT = (
    "subject to the terms of this {L}, the {L} may {Vb} the {N} {P} the {N}.",
    "any {L} {Vd} under this {L} shall be {A} and {A}.",
    "the {L} shall not {Vb} any {L} without the prior written {L} of the {L}.",
    "in no event shall the {L} be liable for any {A} {L} arising from the {N}.",
    "except as {Vd} in section {n}, no {L} is granted by this {L}.",
    "the {L} {V} a {A} {L} to {Vb} and {Vb} the {N}.",
)
LOG_TEXT = (
    "{Vd} {n} {Ns} to {N} {N}-{n} in {n} ms",
    "{N} {N} is {A}, retrying in {n} s",
    "request {n} {Vd} by {N} after {n} ms",
    "{A} {N} on {N}-{n}: {n} {Ns} pending",
    "{X} {N} {X}: {n} {Ns} {Vd}",
)


class Writer:
    """Documents of each kind, as lists of lines."""

    def __init__(self, rng: random.Random, words: Words) -> None:
        self.rng, self.w = rng, words

    def sentence(self, pool: tuple[str, ...] = PROSE) -> str:
        return self.w.fill(self.rng.choice(pool))

    def paragraph(self, pool: tuple[str, ...] = PROSE, indent: str = "") -> list[str]:
        text = " ".join(self.sentence(pool) for _ in range(self.rng.randint(3, 8)))
        lines, line = [], ""
        for word in text.split():
            if len(line) + len(word) > 76:
                lines.append(indent + line)
                line = ""
            line = f"{line} {word}" if line else word
        return [*lines, indent + line]

    def prose(self, size: int) -> list[str]:
        out = [f"# {self.w.fill('{A} {N} {N}')}", ""]
        while sum(map(len, out)) < size:
            if self.rng.random() < 0.15:
                out += [f"## {self.w.fill('{N} {Ns}')}", ""]
            if self.rng.random() < 0.1:
                out += [f"- {self.sentence()}" for _ in range(self.rng.randint(2, 5))] + [""]
            out += [*self.paragraph(), ""]
        return out

    def license(self, size: int) -> list[str]:
        out = [f"{self.w.fill('{A} {L} {L}').upper()}", ""]
        section = 0
        while sum(map(len, out)) < size:
            section += 1
            out += [f"{section}. {self.w.fill('{L}')}.", ""]
            out += [*self.paragraph(LEGAL_TEXT), ""]
        return out

    def man(self, size: int, cmd: str) -> list[str]:
        head = f"{cmd.upper()}(1)"
        out = [f"{head:<30}User Commands{head:>30}", "", "NAME", f"       {cmd} - "]
        out[-1] += self.w.fill("{Vb} {A} {Ns}").lower()
        out += ["", "SYNOPSIS", f"       {cmd} [OPTION]... [FILE]...", "", "DESCRIPTION"]
        while sum(map(len, out)) < size * 0.6:
            out += [*self.paragraph(indent="       "), ""]
        out.append("OPTIONS")
        while sum(map(len, out)) < size:
            flag = f"{self.w.noun()}-{self.w.noun()}"
            out += [f"       -{self.rng.choice(string.ascii_letters)}, --{flag}=N"]
            out += [*self.paragraph(indent="              "), ""]
        return out

    def source(self, size: int, owner: str) -> list[str]:
        rng, n = self.rng, self.w.noun
        out = [f"# Copyright (c) {rng.randint(2001, 2031)} The {owner} Authors.", ""]
        out += [f'"""{self.sentence()}"""', "", f"import {n()}", f"from {n()} import {n()}_{n()}"]
        out += ["", f"{n().upper()}_{n().upper()} = {rng.randint(1, 999)}", ""]
        while sum(map(len, out)) < size:
            out += ["", f"class {n().capitalize()}{n().capitalize()}:"]
            out += [f'    """{self.sentence()}"""', ""]
            for _ in range(rng.randint(2, 5)):
                a, b = n(), n()
                out += [f"    def {self.w.verb('')}_{a}(self, {a}, {b}={rng.randint(0, 99)}):"]
                out += [f'        """{self.sentence()}"""', f"        # {self.sentence()}"]
                out += [f"        {b} = self.{a}_{b}({a}, {rng.randint(1, 64)})"]
                out += [f"        if {b} > {rng.randint(1, 9)}:", f"            return {b}"]
                out += [f"        for {a} in {plural(b)}:", f"            {a}.{n()}({b})"]
                out += ["        return None", ""]
        return out

    def log(self, size: int, service: str) -> list[str]:
        out: list[str] = []
        total = 0
        while total < size:
            level = self.rng.choice(("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"))
            msg = self.w.fill(self.rng.choice(LOG_TEXT)).lower()
            line = f"{timestamp(self.rng)} {level} {service}[{self.rng.randint(100, 9999)}]: {msg}"
            out.append(line)
            total += len(line) + 1
        return out

    def table(self, size: int, names: list[str]) -> list[str]:
        out = [f"name,{self.w.noun()},{self.w.noun()},count,day"]
        while sum(map(len, out)) < size:
            row = [self.rng.choice(names), self.w.noun(), self.w.adj()]
            out.append(",".join([*row, str(self.rng.randint(0, 9999)), self.rng.choice(WEEKDAYS)]))
        return out
