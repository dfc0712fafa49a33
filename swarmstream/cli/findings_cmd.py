"""``swarmstream findings``: list stored findings, or follow new ones as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from swarmstream.cli.base import globals_of
from swarmstream.cli.common import connected, emit_json, quiet_pipe, run
from swarmstream.codec import finding_to_json
from swarmstream.errors import ConfigError, SwarmstreamError, TaskNotFound
from swarmstream.keys import validate_name
from swarmstream.models import Finding
from swarmstream.settings import Settings


def findings(
    ctx: typer.Context,
    spec: Annotated[
        str | None,
        typer.Argument(help="Only this spec. \\[default: every spec]", show_default=False),
    ] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", metavar="ID", help="Only this shard.")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", metavar="ID", help="Only this task.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream new findings until Ctrl-C.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            metavar="N",
            help="Show the newest N; 0 shows all. When findings are left out, stderr "
            "says so (also with --json).",
        ),
    ] = 100,
) -> None:
    """List findings, oldest first, or stream new ones with --follow.

    Each finding carries its usage (model, tokens, cost) and, with --json, its
    "history": every attempt (worker, start, end, error, usage), so a task that
    succeeded after retries or died says why. --task ID prints that history.

    Example: swarmstream findings research --task ID --json | jq .history
    """
    if spec is not None:
        validate_name("spec", spec)
    if shard is not None:
        validate_name("shard", shard)
    if limit < 0:
        raise ConfigError(f"--limit must be 0 (all) or more, got {limit}")
    settings = globals_of(ctx).settings()
    with quiet_pipe():
        if follow:
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how --follow ends
                run(_follow(settings, spec, shard, task, as_json))
            return
        found = run(_stored(settings, spec, shard, task, limit + 1 if limit else 0))
        cut = bool(limit) and len(found) > limit
        if cut:
            found = found[-limit:]
        more = f"the newest {limit}; --limit 0 shows all" if cut else None
        if as_json:
            for f in found:
                emit_json(finding_to_json(f))
            if more:
                typer.echo(f"showing {more}", err=True)
        elif found:
            from swarmstream.cli.render import console, finding_table, history_table

            out = console()
            out.print(finding_table(found, out.width, caption=more))
            if task is not None:
                out.print(history_table(found[0]))
        else:
            typer.echo("no findings", err=True)


async def _stored(
    settings: Settings, spec: str | None, shard: str | None, task: str | None, limit: int
) -> list[Finding]:
    async with connected(settings) as swarm:
        found = await swarm.findings(spec, shard=shard, task_id=task, count=limit or None)
    if task is not None and shard is not None and found[0].shard != shard:
        raise TaskNotFound(f"task {task} has a finding, but not in shard {shard}")
    return found


async def _follow(
    settings: Settings, spec: str | None, shard: str | None, task: str | None, as_json: bool
) -> None:
    """Print new findings until SIGINT (Ctrl-C) or SIGTERM, which end it with exit 0."""
    from rich.console import Console

    from swarmstream.cli.render import finding_line

    me = asyncio.current_task()
    assert me is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, me.cancel)
    console = Console(highlight=False)
    try:
        async with connected(settings) as swarm:
            cursors = await swarm.cursors([spec] if spec else None)
            if not cursors:
                ns = settings.redis.namespace
                raise SwarmstreamError(
                    f"namespace {ns!r} has no specs yet: name one, as in "
                    "'swarmstream findings SPEC --follow'"
                )
            typer.echo(f"following findings of {', '.join(cursors)} (Ctrl-C to stop)", err=True)
            async for f in swarm.follow(since=cursors):
                if (shard is None or f.shard == shard) and (task is None or f.task_id == task):
                    if as_json:
                        emit_json(finding_to_json(f))
                    else:
                        console.print(finding_line(f))
    except asyncio.CancelledError:
        return
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
