"""``swarmstream bridge jsonl PATH``: connect the seed's JSON-lines bus to the swarm.

A thin command over ``JsonlBridge``; ``bridge`` is a group, so that other bus
formats can sit next to ``jsonl``.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from swarmstream.bridge.bridge import BridgeOptions, BridgeSummary, JsonlBridge
from swarmstream.cli.base import globals_of, guarded, print_settings
from swarmstream.cli.common import ConnectWait

bridge_app = typer.Typer(
    help="Connect a bus your agents already use to the swarm, both ways.",
    no_args_is_help=True,
)


async def _serve(bridge: JsonlBridge) -> BridgeSummary:
    """Run a bridge until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, bridge.stop)
    try:
        return await bridge.run()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def jsonl(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The bus file (created when needed).")],
    spec: Annotated[
        str | None,
        typer.Option(
            "--spec",
            help="Spec of every query line's task. \\[default: the spec its 'to' names]",
            show_default=False,
        ),
    ] = None,
    serve: Annotated[
        list[str] | None,
        typer.Option(
            "--serve",
            metavar="SPEC",
            help="Also claim this spec's tasks, write them as query lines (with an 'id'), "
            "and turn the response lines naming that id in 're' into findings. Repeatable.",
        ),
    ] = None,
    forward: Annotated[
        bool | None,
        typer.Option(
            "--forward/--no-forward",
            help="Turn query lines into tasks. \\[default: on, unless --serve is given "
            "without --spec]",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Bridge name: its Redis keys and consumer name. \\[default: jsonl-<digest "
            "of the file's real path>]",
            show_default=False,
        ),
    ] = None,
    sender: Annotated[
        str, typer.Option("--as", metavar="NAME", help="'from' of the query lines it writes.")
    ] = "swarmstream",
    poll: Annotated[
        float, typer.Option("--poll", metavar="SECONDS", help="How often to look at the file.")
    ] = 0.01,
    inotify: Annotated[
        bool,
        typer.Option(
            "--inotify/--no-inotify",
            help="Also look at once when inotify reports a change in the file's folder "
            "(Linux); --poll stays the fallback.",
        ),
    ] = True,
    from_end: Annotated[
        bool,
        typer.Option("--from-end", help="On a first start, skip the lines already there."),
    ] = False,
    max_line: Annotated[
        int,
        typer.Option("--max-line", metavar="BYTES", help="Longer lines are reported, skipped."),
    ] = 1 << 20,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            help="With --serve: query lines awaiting an answer at once. \\[default: 8]",
            show_default=False,
        ),
    ] = None,
    claim_idle: Annotated[
        float | None,
        typer.Option(
            "--claim-idle",
            metavar="SECONDS",
            help="With --serve: seconds before a dead bridge's claimed task is taken over.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="With --serve: how long to wait for an answer (setting default_timeout).",
            show_default=False,
        ),
    ] = None,
    connect_wait: ConnectWait = None,
    show_settings: Annotated[
        bool,
        typer.Option("--show-settings", help="Print the resolved settings as JSON and exit."),
    ] = False,
) -> None:
    """Bridge a JSON-lines bus file: query lines become tasks, findings response lines.

    A query line (type, from, to, question, context_file, timestamp) becomes a task
    of --spec, or of the spec its 'to' names; its finding is appended as a response
    line (answer, sources as FILE:LINE-LINE, 're' = the task id).

    The file position and the bridge's state live in Redis: a bridge killed and
    restarted neither repeats nor skips a line. Malformed lines are logged, counted
    and skipped; a truncated or rotated file is read again from its start.

    Example: swarmstream bridge jsonl bus.jsonl --spec research
    """
    settings = globals_of(ctx).settings(
        concurrency=concurrency,
        claim_idle=claim_idle,
        default_timeout=timeout,
        connect_wait=connect_wait,
    )
    if show_settings:
        print_settings(settings)
        return
    served = tuple(serve or ())
    options = BridgeOptions(
        path=path,
        spec=spec,
        forward=forward if forward is not None else (spec is not None or not served),
        serve=served,
        name=name,
        sender=sender,
        poll=poll,
        inotify=inotify,
        max_line=max_line,
        from_end=from_end,
    )
    s = asyncio.run(_serve(JsonlBridge(options, settings)))
    typer.echo(
        f"bridge {s.name}: {s.lines} lines read, {s.tasks} tasks submitted, "
        f"{s.responses} responses written, {s.queries} queries written, {s.answers} answers "
        f"read, {s.malformed} malformed lines skipped, {s.ignored} other lines",
        err=True,
    )


bridge_app.command("jsonl")(guarded(jsonl))
