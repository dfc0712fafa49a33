"""``swarmstream status`` (one snapshot) and ``swarmstream monitor`` (live)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console

from swarmstream.cli.base import globals_of
from swarmstream.client import Swarm
from swarmstream.monitor.live import run_monitor
from swarmstream.monitor.render import render
from swarmstream.monitor.snapshot import Snapshot, collect


async def _snapshot(swarm: Swarm) -> Snapshot:
    reader = swarm.transport.stats
    return await collect(reader)


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """A one-shot snapshot of specs, workers and shards.

    In the JSON, "lag" (also given as "backlog") counts entries no worker has
    been given yet; rates are null (one snapshot has no interval).

    Example: swarmstream status --json | jq '.specs[] | {name, pending, lag}'
    """
    settings = globals_of(ctx).settings()

    async def main() -> Snapshot:
        async with Swarm(settings) as swarm:
            return await _snapshot(swarm)

    snap = asyncio.run(main())
    if as_json:
        typer.echo(json.dumps(snap.to_json()))
    else:
        console = Console()
        source = f"{settings.redis.namespace} @ {settings.redis.redacted_url}"
        console.print(render(snap, width=console.width, source=source))


def monitor(
    ctx: typer.Context,
    refresh: Annotated[
        float,
        typer.Option("--refresh", metavar="SECONDS", help="Seconds between redraws.", min=0.1),
    ] = 1.0,
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Print one frame and exit (after one refresh interval, for rates)."
        ),
    ] = False,
) -> None:
    """Live dashboard: backlog, pending, throughput, workers, shards, findings.

    Per spec: backlog (Redis calls it lag: entries not yet delivered to any
    worker), pending (delivered, not acknowledged) and how long the oldest
    pending entry has been in flight since its first delivery, delivered,
    completed and failed per second over the last refresh, dead letters and
    consumers. Workers with their state, current task and last
    heartbeat; shards with their pass and progress; the latest findings; a
    sparkline of the last minute's throughput. Redis going away does not stop
    it: it shows "disconnected, retrying" and recovers by itself.

    Example: swarmstream monitor --refresh 0.5
    """
    settings = globals_of(ctx).settings()
    asyncio.run(run_monitor(settings, refresh=refresh, once=once))
