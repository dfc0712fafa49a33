"""``swarmstream worker``: run an ephemeral worker on one or more specs."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from swarmstream.errors import ConfigError
from swarmstream.handlers import Handler, resolve
from swarmstream.handlers.exec import ExecHandler
from swarmstream.keys import validate_name
from swarmstream.worker.process import serve, tune_gc
from swarmstream.worker.worker import EphemeralWorker


def worker(
    ctx: typer.Context,
    specs: Annotated[list[str], typer.Argument(help="Specializations to consume.")],
    handler: Annotated[
        str | None,
        typer.Option(
            "--handler",
            help="Built-in (echo, sleep) or module:function (default: echo).",
            show_default=False,
        ),
    ] = None,
    exec_command: Annotated[
        str | None,
        typer.Option(
            "--exec",
            metavar="COMMAND",
            help="Run this external command per task instead of --handler: the task's text "
            "on stdin, stdout is the finding (or a JSON object with content, sources, usage). "
            "Split like a shell line, never run by a shell.",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Tasks at once.")] = 8,
    once: Annotated[bool, typer.Option("--once", help="Run one task, then exit.")] = False,
    max_tasks: Annotated[
        int | None, typer.Option("--max-tasks", help="Exit after this many tasks.")
    ] = None,
    idle_exit: Annotated[
        float | None, typer.Option("--idle-exit", help="Exit after this many idle seconds.")
    ] = None,
    claim_idle: Annotated[
        float | None,
        typer.Option("--claim-idle", help="Seconds before a dead worker's task is reclaimed."),
    ] = None,
    grace: Annotated[
        float | None, typer.Option("--grace", help="Seconds to finish tasks on SIGTERM.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Default handler timeout in seconds.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Consumer name.")] = None,
) -> None:
    """Claim tasks from SPEC streams and run a handler on each; report findings.

    Example: swarmstream worker research --handler echo --concurrency 4 --idle-exit 30

    Any command as a worker (task text on stdin, stdout is the finding):

    swarmstream worker research --exec "claude -p" --concurrency 4 --timeout 600
    """
    from swarmstream.cli.app import globals_of

    if handler is not None and exec_command is not None:
        raise ConfigError("--handler and --exec are mutually exclusive: give one of them")
    for spec in specs:
        validate_name("spec", spec)
    settings = globals_of(ctx).settings(
        concurrency=concurrency,
        once=once or None,
        max_tasks=max_tasks,
        idle_exit=idle_exit,
        claim_idle=claim_idle,
        grace=grace,
        default_timeout=timeout,
    )
    chosen: Handler = (
        ExecHandler.from_command(exec_command)
        if exec_command is not None
        else resolve(handler or "echo")
    )
    w = EphemeralWorker(specs, chosen, settings, name=name)
    tune_gc()
    summary = asyncio.run(serve(w))
    typer.echo(
        f"worker {summary.name}: {summary.done} done, {summary.failed} failed, "
        f"{summary.dead} dead, {summary.retried} retried, {summary.reclaimed} reclaimed",
        err=True,
    )


def register(app: typer.Typer) -> None:
    from swarmstream.cli.app import guarded

    app.command("worker")(guarded(worker))
