"""``swarmstream dead list|requeue|purge``: a spec's dead letters."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from swarmstream import codec
from swarmstream.cli.base import globals_of, guarded
from swarmstream.cli.common import connected, emit_json, quiet_pipe, run
from swarmstream.cli.render import console, dead_table
from swarmstream.client import Swarm
from swarmstream.errors import ConfigError, TaskNotFound
from swarmstream.keys import validate_name
from swarmstream.models import DeadLetter, Finding

SHOWN = 100

dead_app = typer.Typer(
    help="Dead letters: tasks that failed max_attempts times or could not be decoded.",
    no_args_is_help=True,
)

Spec = Annotated[str, typer.Argument(help="Specialization whose dead letters to manage.")]


def dead_list(
    ctx: typer.Context,
    spec: Spec,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List SPEC's newest dead letters (up to 100), oldest first.

    With --json, each has its task's "history" when the task id is known: every
    attempt, with its worker, start, end, error and usage.

    Example: swarmstream dead list research --json | jq -r .entry_id
    """
    validate_name("spec", spec)
    settings = globals_of(ctx).settings()

    async def main() -> tuple[list[DeadLetter], int, dict[str, Finding]]:
        async with connected(settings) as swarm:
            letters = await swarm.dead(spec, SHOWN)
            findings: dict[str, Finding] = {}
            if as_json:
                for task_id in {x.task_id for x in letters if x.task_id}:
                    if (found := await swarm.finding(spec, task_id)) is not None:
                        findings[task_id] = found
            return letters, await swarm.results.dead_count(spec), findings

    letters, total, findings = run(main())
    with quiet_pipe():
        if as_json:
            for letter in letters:
                final = findings.get(letter.task_id or "")
                history = codec.attempt_history(final) if final else None
                emit_json({**codec.dead_to_json(letter), "history": history})
        elif letters:
            texts = [t.text if (t := codec.dead_task(x)) else None for x in letters]
            caption = f"{len(letters)} of {total} dead letters of {spec}"
            console().print(dead_table(letters, texts, caption))
        else:
            typer.echo(f"no dead letters in {spec}", err=True)


async def _resolve(swarm: Swarm, spec: str, ids: Sequence[str]) -> list[str]:
    """Entry ids for IDs given as dead-letter entry ids or as task ids."""
    letters = await swarm.dead(spec, max(1, await swarm.results.dead_count(spec)))
    by_entry = {x.entry_id for x in letters}
    out: list[str] = []
    missing: list[str] = []
    for given in ids:
        if given in by_entry:
            out.append(given)
            continue
        matches = [x.entry_id for x in letters if x.task_id == given]
        if matches:
            out.extend(matches)
        else:
            missing.append(given)
    if missing:
        raise TaskNotFound(f"no dead letter of {spec} has the id {', '.join(missing)}")
    return list(dict.fromkeys(out))


def dead_requeue(
    ctx: typer.Context,
    spec: Spec,
    ids: Annotated[
        list[str] | None,
        typer.Argument(help="Dead-letter entry ids (from 'dead list') or task ids.", metavar="ID"),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Requeue every dead letter.")] = False,
) -> None:
    """Move dead letters back to SPEC's task stream; each task gets a fresh finding.

    Example: swarmstream dead requeue research 1712345678901-0   (or: --all)
    """
    validate_name("spec", spec)
    if bool(ids) == every:
        raise ConfigError(
            "give dead-letter ids or --all, not both"
            if every
            else f"give dead-letter ids or --all (see 'swarmstream dead list {spec}')"
        )
    settings = globals_of(ctx).settings()

    async def main() -> tuple[int, list[str]]:
        async with connected(settings) as swarm:
            wanted = None if every else await _resolve(swarm, spec, ids or [])
            new = await swarm.requeue(spec, wanted)
            return (len(new) if wanted is None else len(wanted)), new

    asked, new = run(main())
    gone = f" ({asked - len(new)} were gone meanwhile)" if len(new) < asked else ""
    typer.echo(f"requeued {len(new)} dead letter(s) of {spec}{gone}")


def dead_purge(
    ctx: typer.Context,
    spec: Spec,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every dead letter of SPEC for good. On a terminal it asks first
    (skip with --yes); in scripts (no terminal) it just does it.

    Example: swarmstream dead purge research
    """
    validate_name("spec", spec)
    if (
        not yes
        and sys.stdin.isatty()
        and not typer.confirm(f"Delete every dead letter of {spec} for good?")
    ):
        raise typer.Exit(1)
    settings = globals_of(ctx).settings()

    async def main() -> int:
        async with connected(settings) as swarm:
            return await swarm.purge_dead(spec)

    typer.echo(f"purged {run(main())} dead letter(s) of {spec}")


# the dead group's commands; swarmstream.cli.app adds the group
dead_app.command("list")(guarded(dead_list))
dead_app.command("requeue")(guarded(dead_requeue))
dead_app.command("purge")(guarded(dead_purge))
