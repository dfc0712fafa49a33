"""``swarmstream submit``: post one task, optionally wait for its finding."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from swarmstream.cli.base import fail, globals_of
from swarmstream.cli.common import connected, emit_json, parse_json, positive, read_text, run
from swarmstream.cli.render import finding_detail
from swarmstream.codec import finding_to_json
from swarmstream.errors import ConfigError, WaitTimeout
from swarmstream.keys import validate_name
from swarmstream.models import DEFAULT_MAX_ATTEMPTS, Finding, Task

#: Exit codes of ``submit --wait``: ok, failed/dead, no finding in time.
EXIT_OK, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2


def submit(
    ctx: typer.Context,
    spec: Annotated[str, typer.Argument(help="Specialization whose workers run the task.")],
    text: Annotated[str, typer.Argument(help="The task's instruction; '-' reads it from stdin.")],
    shard: Annotated[
        str | None, typer.Option("--shard", metavar="ID", help="Shard the task belongs to.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", metavar="JSON", help="Structured payload for the handler."),
    ] = None,
    max_attempts: Annotated[
        int,
        typer.Option("--max-attempts", metavar="N", help="Deliveries before dead-lettering."),
    ] = DEFAULT_MAX_ATTEMPTS,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="SECONDS", help="Handler time limit per attempt."),
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            help="Wait this long for the finding and print it instead of the task id. "
            "Exit 0 if ok, 1 if the task failed or was dead-lettered, 2 if none came in time.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Post a task to SPEC's stream and print its id (with --wait: its finding).

    Example: swarmstream submit research "where do shipments stall?" --wait 120 --json
    """
    validate_name("spec", spec)
    if shard is not None:
        validate_name("shard", shard)
    payload = parse_json(data, "--data") if data is not None else None
    if not 1 <= max_attempts <= 1000:
        raise ConfigError(f"--max-attempts must be between 1 and 1000, got {max_attempts}")
    positive(timeout, "--timeout")
    if wait is not None and not 0 <= wait < float("inf"):
        raise ConfigError(f"--wait must be zero or more seconds, got {wait:g}")
    settings = globals_of(ctx).settings()
    body = read_text(text)

    async def main() -> tuple[Task, Finding | None]:
        async with connected(settings) as swarm:
            task = await swarm.submit(
                spec, body, data=payload, shard=shard, max_attempts=max_attempts, timeout=timeout
            )
            if wait is None:
                return task, None
            try:
                return task, await swarm.wait(task, timeout=wait)
            except WaitTimeout:
                return task, None

    task, finding = run(main())
    if wait is None:
        if as_json:
            emit_json({"task_id": task.id, "spec": spec, "shard": shard})
        else:
            typer.echo(task.id)
        return
    if finding is None:
        fail(
            f"no finding for task {task.id} within {wait:g}s; it stays queued "
            f"(later: swarmstream findings {spec} --task {task.id})",
            EXIT_TIMEOUT,
        )
    if as_json:
        emit_json(finding_to_json(finding))
    else:
        Console(highlight=False).print(finding_detail(finding))
    raise typer.Exit(EXIT_OK if finding.ok else EXIT_FAILED)
