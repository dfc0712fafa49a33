"""``swarmstream bench``: a quick benchmark against plain redis-py, for users."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from swarmstream.cli.base import globals_of
from swarmstream.cli.render import console as table_console
from swarmstream.errors import ConfigError, SwarmstreamError


def bench(
    ctx: typer.Context,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="Measure on this Redis, in a fresh namespace bench-<hex> whose keys are "
            "deleted afterwards (nothing is flushed). \\[default: an embedded redis-server "
            "on a free port]",
            show_default=False,
        ),
    ] = None,
    tasks: Annotated[
        int, typer.Option("--tasks", metavar="N", help="Tasks per enqueue and consume run.")
    ] = 10_000,
    requests: Annotated[
        int,
        typer.Option("--requests", metavar="M", help="Round trips per side for the latency."),
    ] = 300,
    repeats: Annotated[
        int,
        typer.Option("--repeats", metavar="R", help="Interleaved enqueue and consume repeats."),
    ] = 5,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json", metavar="PATH", help="Also write the results (machine, config, figures)."
        ),
    ] = None,
) -> None:
    """Measure swarmstream against plain redis-py on one Redis, in seconds.

    Side by side in one run: the enqueue rate (submit_many vs a pipelined
    XADD), the throughput of one worker process vs a raw redis-py consumer
    process, the submit -> finding round trip (p50, p99) vs raw streams,
    and borrowing a 3.2 MB context vs a raw GET. Prints swarmstream/raw
    ratios and the targets of issue 6, which are informational: the exit
    code is 0 whatever the figures.

    Without --redis-url it starts its own redis-server (as `swarmstream
    demo` does), so your Redis is never touched; SWARMSTREAM_REDIS_URL is
    not used here.

    Example: swarmstream bench --tasks 20000 --json bench.json
    """
    from swarmstream.bench import render, run_bench  # imported when used: startup stays lean

    source = ctx.find_root().get_parameter_source("redis_url")
    if redis_url is None and source is not None and source.name == "COMMANDLINE":
        redis_url = globals_of(ctx).redis_url  # `swarmstream --redis-url URL bench`
    if json_path is not None and (json_path.is_dir() or not json_path.parent.is_dir()):
        raise ConfigError(f"--json {json_path}: a file in an existing folder, please")
    with Console(stderr=True).status("starting") as status:
        report = run_bench(redis_url, tasks, requests, repeats=repeats, progress=status.update)
    out = table_console()
    out.print(render(report))
    if json_path is not None:
        try:
            json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        except OSError as exc:
            raise SwarmstreamError(f"cannot write {json_path}: {exc.strerror}") from None
        out.print(f"wrote {json_path}")
