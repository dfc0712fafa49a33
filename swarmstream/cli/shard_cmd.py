"""``swarmstream shard`` (a shard process) and ``swarmstream context load``."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from swarmstream.cli.base import globals_of, guarded
from swarmstream.cli.common import ConnectWait, wait_for
from swarmstream.client import Swarm
from swarmstream.errors import ConfigError
from swarmstream.keys import validate_name
from swarmstream.shard import Manifest, MemoryShard

context_app = typer.Typer(help="Manage shard contexts.", no_args_is_help=True)


def _describe(shard: str, manifest: Manifest, version: str) -> str:
    return (
        f"shard {shard}: context v{version}, {len(manifest.documents)} documents, "
        f"{manifest.chars:,} chars, ~{manifest.tokens:,} tokens"
    )


def shard(
    ctx: typer.Context,
    spec: Annotated[str, typer.Argument(help="Spec of the tasks this shard posts.")],
    shard_id: Annotated[
        str | None, typer.Option("--id", help="Shard id \\[default: SPEC].")
    ] = None,
    context: Annotated[
        list[Path] | None, typer.Option("--context", help="File or folder to load (repeatable).")
    ] = None,
    heartbeat: Annotated[float, typer.Option("--heartbeat", help="Seconds between beats.")] = 5.0,
    connect_wait: ConnectWait = None,
) -> None:
    """Run a memory shard: register it, load its context, keep a heartbeat and collect
    the findings of its tasks until interrupted (all state stays in Redis).

    Example: swarmstream shard research --id alpha --context docs/ --context notes.md
    """
    settings = globals_of(ctx).settings(connect_wait=connect_wait)
    sid = validate_name("shard", shard_id or spec)
    validate_name("spec", spec)

    async def main() -> None:
        if not await wait_for(settings, f"shard {sid}"):
            return
        async with Swarm(settings) as swarm:
            memory = MemoryShard(swarm, sid, spec)
            await memory.register()
            if context:
                manifest = await memory.load(context)
                info = await memory.info()
                typer.echo(_describe(sid, manifest, info.get("version", "?")))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            beats = asyncio.create_task(memory.keep_alive(stop, heartbeat))
            typer.echo(f"shard {sid} ({spec}) is up; collecting findings, Ctrl-C to stop")
            while not stop.is_set():
                n = await memory.collect(block_ms=1000)
                if n:
                    info = await memory.info()
                    typer.echo(f"collected {n} finding(s); {info.get('collected', n)} in all")
            await beats

    asyncio.run(main())


def context_load(
    ctx: typer.Context,
    shard_id: Annotated[str, typer.Argument(help="Shard id.")],
    paths: Annotated[list[Path], typer.Argument(help="Files or folders.")],
    spec: Annotated[
        str | None, typer.Option("--spec", help="Spec, for a shard that does not exist yet.")
    ] = None,
) -> None:
    """Load files or folders as a shard's new context version (atomic switch).

    Example: swarmstream context load alpha docs/ notes.md --spec research
    """
    settings = globals_of(ctx).settings()
    validate_name("shard", shard_id)

    async def main() -> str:
        async with Swarm(settings) as swarm:
            existing = await MemoryShard(swarm, shard_id, spec or "research").info()
            chosen = spec or existing.get("spec")
            if not chosen:
                raise ConfigError(f"shard {shard_id!r} does not exist yet: give --spec")
            memory = MemoryShard(swarm, shard_id, chosen)
            manifest = await memory.load(paths)
            info = await memory.info()
            return _describe(shard_id, manifest, info.get("version", "?"))

    typer.echo(asyncio.run(main()))


# the context group's commands; swarmstream.cli.app adds the group
context_app.command("load")(guarded(context_load))
