"""``swarmstream ask``: scatter a question over shards, gather cited passages."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from swarmstream.cli.base import globals_of
from swarmstream.client import Swarm
from swarmstream.errors import ConfigError
from swarmstream.keys import validate_name
from swarmstream.shard.scatter import Answer, ask


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
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Ask every shard a question; print the merged passages with path:line citations.

    Shards that miss the deadline are named in the answer. Workers with the
    `retrieve` handler answer, e.g.: swarmstream worker research --handler retrieve

    Example: swarmstream ask "Where do shipments stall?" --shards alpha,beta --deadline 20
    """
    settings = globals_of(ctx).settings()
    wanted = [s.strip() for item in shards or [] for s in item.split(",") if s.strip()]
    for s in wanted:
        validate_name("shard", s)

    async def main() -> Answer:
        async with Swarm(settings) as swarm:
            store = swarm.transport.shards
            ids = wanted or await store.shard_ids()
            if not ids:
                raise ConfigError("no shards: load one with 'swarmstream context load'")
            chosen = spec or (await store.meta(ids[0])).get("spec")
            if not chosen:
                raise ConfigError(f"shard {ids[0]!r} has no spec: give --spec")
            return await ask(swarm, question, ids, validate_name("spec", chosen), deadline, k)

    answer = asyncio.run(main())
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "question": answer.question,
                    "answered": list(answer.answered),
                    "missing": list(answer.missing),
                    "passages": [
                        {
                            "source": p.source,
                            "line": p.line,
                            "shard": p.shard,
                            "score": p.score,
                            "text": p.text,
                        }
                        for p in answer.passages
                    ],
                }
            )
        )
    else:
        typer.echo(answer.text)
    if not answer.answered:
        raise typer.Exit(1)
