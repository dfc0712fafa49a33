"""``swarmstream ask``: scatter a question over shards, gather cited passages, or
"not found" when none supports an answer."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from swarmstream.answers import ComposedAnswer, MergedAnswer, ask_shards, compose_answer
from swarmstream.cli.base import globals_of
from swarmstream.client import Swarm
from swarmstream.errors import ConfigError
from swarmstream.keys import validate_name
from swarmstream.shard.gather import DEFAULT_THRESHOLD, Answer, ask


def ask_command(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question.")],
    shards: Annotated[
        list[str] | None,
        typer.Option(
            "--shards", help="Shard ids (repeatable or comma-separated) \\[default: all]."
        ),
    ] = None,
    spec: Annotated[
        str | None,
        typer.Option("--spec", help="Spec whose workers answer \\[default: the shards' spec]."),
    ] = None,
    deadline: Annotated[float, typer.Option("--deadline", help="Seconds to wait.")] = 30.0,
    k: Annotated[int, typer.Option("--k", help="Passages in the answer.", min=1, max=50)] = 5,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            help=(
                "Least support (0-1) a passage needs to count as an answer: the "
                "IDF-weighted share of the question's terms it holds within 3 lines "
                "(IDF over all shards asked); every name or number of the question "
                "must be there, and a word no shard uses means 'not found'. Higher: "
                "fewer wrong answers, more missed ones (the default comes from "
                "benchmarks/answers_eval.py)."
            ),
            min=0.0,
            max=1.0,
        ),
    ] = DEFAULT_THRESHOLD,
    answer_spec: Annotated[
        str | None,
        typer.Option(
            "--answer-spec",
            metavar="SPEC",
            help="Hand the passages found to a worker of SPEC (any handler, e.g. "
            '--exec "claude -p"), which writes the answer; its citations are checked '
            "against the shards' contexts and the unverifiable ones flagged.",
        ),
    ] = None,
    shard_answers: Annotated[
        bool,
        typer.Option(
            "--shard-answers",
            help="Each shard's worker answers from its own context (an --exec agent "
            "reading SWARMSTREAM_CONTEXT_FILE, printing answer, rationale, confidence, "
            "citations: README, Answers); the answers are verified and merged by "
            "agreement, confidence and support, and disagreements reported.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Ask every shard a question; print the passages that support an answer, with
    path:line citations, or 'Not found in shards ...' and why.

    Shards that miss the deadline are named in the answer. Workers with the
    `retrieve` handler answer, e.g.: swarmstream worker research --handler retrieve.
    With --json: found (true/false), reason, support (the best passage's), searched
    (the shards that answered), missing, passages and nearest (below the threshold);
    with --answer-spec also "composed" (the answer, its citations and which were
    flagged); with --shard-answers the merged answer, its disagreements and flags.

    Example: swarmstream ask "Where do shipments stall?" --shards alpha,beta --deadline 20
    """
    settings = globals_of(ctx).settings()
    wanted = [s.strip() for item in shards or [] for s in item.split(",") if s.strip()]
    for s in wanted:
        validate_name("shard", s)
    composer = validate_name("spec", answer_spec) if answer_spec else None
    if composer and shard_answers:
        raise ConfigError("--answer-spec and --shard-answers are two ways to answer: pick one")

    async def main() -> tuple[Answer | MergedAnswer, ComposedAnswer | None]:
        async with Swarm(settings) as swarm:
            store = swarm.transport.shards
            ids = wanted or await store.shard_ids()
            if not ids:
                raise ConfigError("no shards: load one with 'swarmstream context load'")
            chosen = spec or (await store.meta(ids[0])).get("spec")
            if not chosen:
                raise ConfigError(f"shard {ids[0]!r} has no spec: give --spec")
            chosen = validate_name("spec", chosen)
            if shard_answers:
                return await ask_shards(swarm, question, ids, chosen, deadline), None
            answer = await ask(swarm, question, ids, chosen, deadline, k, threshold=threshold)
            if composer is None or not answer.found:
                return answer, None
            versions = dict(answer.versions)
            composed = await compose_answer(
                swarm, question, answer.passages, composer, deadline, versions=versions
            )
            return answer, composed

    answer, composed = asyncio.run(main())
    if as_json:
        out = answer.to_json()
        if composed is not None:
            out["composed"] = composed.to_json()
        typer.echo(json.dumps(out))
    else:
        typer.echo(answer.text + (f"\n\n{composed.text}" if composed is not None else ""))
    if not answer.answered or (composed is not None and composed.status in ("failed", "no answer")):
        raise typer.Exit(1)
