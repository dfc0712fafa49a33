"""The live loop: collect, render, repeat; keeps running while Redis is away."""

from __future__ import annotations

import asyncio
import contextlib

from redis.exceptions import RedisError
from rich.console import Console
from rich.live import Live

from swarmstream.client import Swarm
from swarmstream.monitor.render import render
from swarmstream.monitor.snapshot import Snapshot, collect
from swarmstream.settings import Settings
from swarmstream.transport.stats import StatsReader


async def run_monitor(
    settings: Settings, *, refresh: float = 1.0, once: bool = False, console: Console | None = None
) -> None:
    """Redraw the dashboard every ``refresh`` seconds until interrupted.

    When Redis goes away the last frame stays on screen marked "disconnected,
    retrying", and the monitor recovers by itself when Redis is back.
    """
    console = console or Console()
    swarm = Swarm(settings)
    if once:
        async with swarm:
            first = await collect(StatsReader(swarm.client, swarm.keys))
        console.print(render(first, width=console.width))
        return
    await swarm.check()
    reader = StatsReader(swarm.client, swarm.keys)
    snap: Snapshot | None = None
    try:
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                status = "connected"
                try:
                    snap = await asyncio.wait_for(collect(reader, snap), max(5.0, refresh * 5))
                except (RedisError, OSError, TimeoutError) as exc:
                    status = f"disconnected, retrying ({type(exc).__name__})"
                if snap is not None:
                    live.update(render(snap, status=status, width=console.width), refresh=True)
                await asyncio.sleep(refresh)
    finally:
        with contextlib.suppress(Exception):
            await swarm.aclose()
