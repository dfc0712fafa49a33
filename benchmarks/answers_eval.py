"""Does ``ask`` answer what the corpus says, with its exact ``path:line``, and say "not
found" for what it does not? An evaluation with the built-in ``retrieve`` handler
and no LLM.

A generated corpus (``benchmarks/corpus_gen.py``: handbooks, source, man pages,
licenses, logs and tables; 1M tokens, 96 planted facts) is loaded over 5 shards with
``load_shards``; one worker process runs ``swarmstream worker <spec> --handler
retrieve``; every question goes through ``ask`` one after the other (the first one,
which builds the shards' indexes, is not counted). Measured:

* recall: the planted ``path:line`` is among the lines an answer cites, and the
  answer is ``found``; for the answerable questions (two paraphrases per fact);
* abstention: the share answered "not found", for unanswerable questions (about
  things nowhere in the corpus) and near misses (a fact's question about a name the
  corpus lacks); also, reported without a goal, for near misses about a name the
  corpus has in other sentences, and for questions about an attribute of a known
  entity that the corpus does not state;
* false abstention (answerable questions answered "not found"), latency per
  question, and every figure again for thresholds from 0 to 1.

    python benchmarks/answers_eval.py                 # 1M tokens, 576 questions, ~3 min
    python benchmarks/answers_eval.py --quick         # CI smoke: 200K tokens, 144 questions
    python benchmarks/answers_eval.py --json out.json --threshold 0.6 --seed 7
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Server, describe, drive, machine_info, summarize
from benchmarks.corpus_gen import Corpus, Question, check, generate
from benchmarks.throughput import stop_process
from swarmstream.bench.raw import drop_namespace
from swarmstream.client import Swarm
from swarmstream.context import estimate_tokens
from swarmstream.settings import Settings
from swarmstream.shard.gather import DEFAULT_THRESHOLD, Answer, Passage, ask
from swarmstream.shard.scatter import load_shards
from swarmstream.worker.process import spawn_worker

console = Console() if sys.stdout.isatty() else Console(width=150)
SPEC = "answers-eval"
#: the issue's goals
GOAL_RECALL = 0.95
GOAL_ABSTAIN = 0.9
KINDS = ("answerable", "near_miss", "unanswerable", "near_miss_known", "unstated")
LABELS = {
    "answerable": "answerable (paraphrased)",
    "near_miss": "near miss: a name the corpus lacks",
    "unanswerable": "unanswerable: things nowhere in the corpus",
    "near_miss_known": "near miss: a name the corpus has elsewhere",
    "unstated": "unstated attribute of a known entity",
}
SWEEP = [round(x * 0.05, 2) for x in range(21)]


def _rank(p: Passage) -> tuple[float, float]:
    return (-(p.support or 0.0), -p.score)


def score(q: Question, a: Answer, threshold: float, k: int) -> dict[str, bool]:
    """The verdict on one answer at ``threshold``: found, and for an answerable
    question whether the planted line is cited exactly (or inside a cited passage).
    Other thresholds than the one asked with are replayed from the answer's passages
    and nearest ones (each shard's ``k`` best), as ``merge`` would rank them."""
    pool = sorted((*a.passages, *a.nearest), key=_rank)
    cited = [p for p in pool if p.support is None or p.support >= threshold][:k]
    found = bool(cited)
    want = f"{q.path}:{q.line}"
    exact = found and any(p.line == want for p in cited)
    inside = found and any(_covers(p.source, q.path, q.line) for p in cited)
    return {"found": found, "exact": exact, "inside": inside}


def _covers(source: str, path: str | None, line: int | None) -> bool:
    where, _, span = source.rpartition(":")
    if where != path or line is None:
        return False
    a, _, b = span.partition("-")
    return a.isdigit() and int(a) <= line <= int(b or a)


def rates(rows: list[tuple[Question, Answer]], threshold: float, k: int) -> dict[str, Any]:
    """Per kind of question: how many, found, and for answerable ones the recall."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        mine = [score(q, a, threshold, k) for q, a in rows if q.kind == kind]
        if not mine:
            continue
        n = len(mine)
        found = sum(v["found"] for v in mine)
        entry: dict[str, Any] = {"n": n, "found": found / n, "abstained": 1 - found / n}
        if kind == "answerable":
            entry["recall_exact_line"] = sum(v["exact"] for v in mine) / n
            entry["recall_in_passage"] = sum(v["inside"] for v in mine) / n
        out[kind] = entry
    return out


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        ("recall of the exact path:line", r["answerable"]["recall_exact_line"], GOAL_RECALL),
        ("'not found' on unanswerable questions", r["unanswerable"]["abstained"], GOAL_ABSTAIN),
        ("'not found' on near misses (absent name)", r["near_miss"]["abstained"], GOAL_ABSTAIN),
    ]
    return [{"what": w, "value": v, "goal": g, "met": v >= g} for w, v, g in rows]


async def measure(args: argparse.Namespace, srv: Server) -> dict[str, Any]:
    began = time.perf_counter()
    corpus = generate(args.seed, args.tokens, args.facts)
    premises = check(corpus)
    generated = time.perf_counter() - began
    ns = f"answers-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_flat({"url": srv.url, "namespace": ns})
    client = Redis.from_url(srv.url)
    log = Path(tempfile.mkdtemp(prefix="swarmstream-answers-")) / "worker.log"
    proc = None
    try:
        async with Swarm(settings) as swarm:
            began = time.perf_counter()
            # a document that does not fit starts the next shard: leave room for one
            small = max(estimate_tokens(len(t)) for p, t in corpus.docs if p != corpus.big_path)
            budget = math.ceil(corpus.tokens / args.shards) + small
            shards = await load_shards(swarm, corpus.docs, budget, SPEC, prefix="eval")
            ids = [s.id for s in shards]
            loaded = time.perf_counter() - began
            with log.open("wb") as out:
                proc = spawn_worker([SPEC], "retrieve", settings, stdout=out, stderr=out)
            began = time.perf_counter()
            first = await ask(swarm, "warm up the indexes", ids, SPEC, deadline=600)
            if first.missing:
                raise RuntimeError(f"shards did not answer: {first.text}\n{log.read_text()}")
            warm = time.perf_counter() - began
            rows, latency = await _ask_all(swarm, corpus, ids, args)
        sizes = [estimate_tokens(len(t)) for _, t in corpus.docs]
    finally:
        if proc is not None:
            stop_process(proc)
        await drop_namespace(client, ns)
        await client.aclose()
    return _report(args, srv, corpus, rows, latency, ids, premises, sizes) | {
        "timings_s": {"generate": generated, "load": loaded, "first_question": warm}
    }


async def _ask_all(
    swarm: Swarm, corpus: Corpus, ids: list[str], args: argparse.Namespace
) -> tuple[list[tuple[Question, Answer]], list[float]]:
    order = corpus.questions[:]
    random.Random(args.seed).shuffle(order)
    rows: list[tuple[Question, Answer]] = []
    latency: list[float] = []
    for i, q in enumerate(order, start=1):
        began = time.perf_counter()
        answer = await ask(swarm, q.text, ids, SPEC, args.deadline, args.k, args.threshold)
        latency.append((time.perf_counter() - began) * 1000)
        if answer.missing:
            raise RuntimeError(f"a shard missed the deadline: {answer.text}")
        rows.append((q, answer))
        if i % 100 == 0:
            console.print(f"  {i}/{len(order)} questions")
    return rows, latency


def _report(
    args: argparse.Namespace,
    srv: Server,
    corpus: Corpus,
    rows: list[tuple[Question, Answer]],
    latency: list[float],
    ids: list[str],
    premises: dict[str, int],
    sizes: list[int],
) -> dict[str, Any]:
    results = rates(rows, args.threshold, args.k)
    families = sorted({q.family for q, _ in rows})
    return {
        "benchmark": "answers",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "server": describe(srv),
        "machine": machine_info(srv.version),
        "config": {
            "seed": args.seed,
            "threshold": args.threshold,
            "k": args.k,
            "quick": args.quick,
            "tokens": corpus.tokens,
            "documents": len(corpus.docs),
            "largest_document_tokens": max(sizes),
            "shards": len(ids),
            "facts": args.facts * 8,
            "questions": len(rows),
            "vocabulary": premises["vocabulary"],
            "handler": "retrieve (1 worker process)",
        },
        "results": results,
        "goals": goals(results),
        "latency_ms": summarize(latency),
        "by_family": {
            f: rates([(q, a) for q, a in rows if q.family == f], args.threshold, args.k)
            for f in families
        },
        "sweep": {str(t): rates(rows, t, args.k) for t in SWEEP},
        "misses": _misses(rows, args.threshold, args.k),
    }


def _misses(rows: list[tuple[Question, Answer]], threshold: float, k: int) -> list[dict[str, Any]]:
    """Every wrong verdict, with what the answer said (for reading, not for scoring)."""
    out = []
    for q, a in rows:
        v = score(q, a, threshold, k)
        wrong = not v["exact"] if q.kind == "answerable" else v["found"]
        if wrong:
            top = (a.passages or a.nearest or (None,))[0]
            out.append(
                {
                    "kind": q.kind,
                    "family": q.family,
                    "question": q.text,
                    "want": f"{q.path}:{q.line}" if q.path else None,
                    "found": a.found,
                    "support": a.support,
                    "reason": a.reason,
                    "top": None if top is None else f"{top.line or top.source} ({top.support})",
                }
            )
    return out


def show(report: dict[str, Any]) -> None:
    cfg, res = report["config"], report["results"]
    console.print(
        f"corpus {cfg['tokens']:,} tokens, {cfg['documents']} documents over {cfg['shards']} "
        f"shards; {cfg['facts']} facts, {cfg['questions']} questions; threshold "
        f"{cfg['threshold']:.2f}, k {cfg['k']}"
    )
    table = Table(title="ask: answers and abstentions (built-in retrieve, no LLM)")
    for col in ("questions", "n", "found", "'not found'", "recall path:line", "in passage"):
        table.add_column(col, justify="left" if col == "questions" else "right")
    for kind, r in res.items():
        recall = r.get("recall_exact_line")
        inside = r.get("recall_in_passage")
        table.add_row(
            LABELS[kind],
            str(r["n"]),
            f"{r['found']:.1%}",
            f"{r['abstained']:.1%}",
            "" if recall is None else f"{recall:.1%}",
            "" if inside is None else f"{inside:.1%}",
        )
    console.print(table)
    lat = report["latency_ms"]
    console.print(
        f"latency per question: p50 {lat['median']:.0f} ms, p90 {lat['p90']:.0f} ms, max "
        f"{lat['max']:.0f} ms; first question (builds the indexes) "
        f"{report['timings_s']['first_question']:.1f} s"
    )
    sweep = Table(title="the same at other thresholds")
    for col in ("threshold", "recall", "false 'not found'", "unanswerable", "near miss",
                "near miss (known name)", "unstated"):  # fmt: skip
        sweep.add_column(col, justify="right")
    for t, r in report["sweep"].items():
        sweep.add_row(
            t,
            f"{r['answerable']['recall_exact_line']:.1%}",
            f"{r['answerable']['abstained']:.1%}",
            *(f"{r[k]['abstained']:.1%}" for k in KINDS[1:]),
        )
    console.print(sweep)
    for g in report["goals"]:
        state = "met" if g["met"] else "NOT met"
        console.print(f"goal: {g['what']}: {g['value']:.1%} (>= {g['goal']:.0%}): {state}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tokens", type=int, default=1_000_000, help="corpus size (chars / 4)")
    p.add_argument("--facts", type=int, default=12, help="facts per family (8 families)")
    p.add_argument("--shards", type=int, default=5, help="shards to split the corpus over")
    p.add_argument("--seed", type=int, default=2026, help="corpus and question order")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="ask --threshold")
    p.add_argument("--k", type=int, default=5, help="passages per answer")
    p.add_argument("--deadline", type=float, default=60.0, help="seconds per question")
    p.add_argument("--redis-url", help="use this server instead of starting one")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="small sizes for a CI smoke run")
    p.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = p.parse_args(argv)
    if args.quick:
        args.tokens = min(args.tokens, 200_000)
        args.facts = min(args.facts, 3)
    if not 0.0 <= args.threshold <= 1.0:
        p.error("--threshold must be from 0 to 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    async def run(srv: Server) -> dict[str, Any]:
        return await measure(args, srv)

    report = drive(args, run, show, console)
    return 1 if args.check and not all(g["met"] for g in report["goals"]) else 0


if __name__ == "__main__":
    sys.exit(main())
