"""``swarmstream status`` (one snapshot) and ``swarmstream monitor`` (live)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console

from swarmstream.client import Swarm
from swarmstream.monitor.live import run_monitor
from swarmstream.monitor.render import render
from swarmstream.monitor.snapshot import Snapshot, collect
from swarmstream.transport.stats import StatsReader


async def _snapshot(swarm: Swarm) -> Snapshot:
    reader = StatsReader(swarm.client, swarm.keys)
    return await collect(reader)


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """A one-shot snapshot of specs, workers and shards.

    Example: swarmstream status --json | jq '.specs[] | {name, pending, lag}'
    """
    from swarmstream.cli.app import globals_of

    settings = globals_of(ctx).settings()

    async def main() -> Snapshot:
        async with Swarm(settings) as swarm:
            return await _snapshot(swarm)

    snap = asyncio.run(main())
    if as_json:
        typer.echo(json.dumps(snap.to_json()))
    else:
        console = Console()
        console.print(render(snap, width=console.width))


def monitor(
    ctx: typer.Context,
    refresh: Annotated[
        float, typer.Option("--refresh", help="Seconds between redraws.", min=0.1)
    ] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Render one frame and exit.")] = False,
) -> None:
    """Live dashboard: backlog, pending, lag, throughput, workers, shards, findings.

    Example: swarmstream monitor --refresh 0.5
    """
    from swarmstream.cli.app import globals_of

    settings = globals_of(ctx).settings()
    asyncio.run(run_monitor(settings, refresh=refresh, once=once))


def register(app: typer.Typer) -> None:
    from swarmstream.cli.app import guarded

    app.command("status")(guarded(status))
    app.command("monitor")(guarded(monitor))
