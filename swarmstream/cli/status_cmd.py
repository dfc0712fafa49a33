"""``swarmstream status`` (one snapshot) and ``swarmstream monitor`` (live).

Rich and the renderers are imported only to draw: ``status --json`` does without."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from swarmstream.cli.base import globals_of
from swarmstream.client import Swarm
from swarmstream.monitor.snapshot import Snapshot, collect

if TYPE_CHECKING:
    from rich.table import Table


async def _snapshot(swarm: Swarm) -> Snapshot:
    reader = swarm.transport.stats
    return await collect(reader)


def _usage_table(usage_by: dict[str, Any]) -> Table | None:
    """Spending by model, shard and worker (the ten costliest of each)."""
    from rich.table import Table

    from swarmstream.monitor.render import fmt_usd

    rows = [
        (kind[:-1], name, t)
        for kind in ("models", "shards", "workers")
        for name, t in sorted(usage_by[kind].items(), key=lambda item: -item[1]["cost_usd"])[:10]
    ]
    if not rows:
        return None
    table = Table(title="spending", title_justify="left", box=None)
    for col in ("by", "name", "input", "output", "cache", "cost", "attempts"):
        table.add_column(col, justify="left" if col in ("by", "name") else "right")
    for kind, name, t in rows:
        cache = t["cache_read_tokens"] + t["cache_write_tokens"]
        table.add_row(
            kind,
            name,
            f"{t['input_tokens']:,}",
            f"{t['output_tokens']:,}",
            f"{cache:,}",
            fmt_usd(t["cost_usd"], t["unpriced"]),
            str(t["attempts"]),
        )
    return table


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """A one-shot snapshot of specs, workers and shards, and what they spent.

    In the JSON, "lag" (also given as "backlog") counts entries no worker has
    been given yet; "delivered" counts deliveries (first ones plus redeliveries to
    another worker); rates are null (one snapshot has no interval). "usage" holds
    tokens and cost (per spec, with its models and shards; "usage_by" adds them
    up by model, shard and worker); "budget" and "paused_by" say whether a budget
    stops a spec's work (swarmstream budget --help).

    Example: swarmstream status --json | jq '.specs[] | {name, pending, lag, cost: .usage.cost_usd}'
    """
    settings = globals_of(ctx).settings()

    async def main() -> tuple[Snapshot, dict[str, Any]]:
        async with Swarm(settings) as swarm:
            snap = await _snapshot(swarm)
            workers = {}
            if snap.usage.attempts:
                names = [s.name for s in snap.specs]
                workers = await swarm.transport.stats.worker_usage(names)
            return snap, snap.usage_by(workers)

    snap, usage_by = asyncio.run(main())
    if as_json:
        typer.echo(json.dumps({**snap.to_json(), "usage_by": usage_by}))
    else:
        from rich.console import Console

        from swarmstream.monitor.render import render

        console = Console()
        source = f"{settings.redis.namespace} @ {settings.redis.redacted_url}"
        console.print(render(snap, width=console.width, source=source))
        if (table := _usage_table(usage_by)) is not None:
            console.print(table)


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
    from swarmstream.monitor.live import run_monitor

    settings = globals_of(ctx).settings()
    asyncio.run(run_monitor(settings, refresh=refresh, once=once))
