"""``swarmstream protocol``: the swarm's protocol record (version, script SHA1s,
shared settings), for agents in other languages and for checking a deployment."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from swarmstream.cli.base import globals_of
from swarmstream.client import Swarm
from swarmstream.transport.protocol import PROTOCOL_VERSION, ProtocolRecord


def protocol(
    ctx: typer.Context,
    publish: Annotated[
        bool,
        typer.Option(
            "--publish",
            help="Replace the swarm's record with this process's settings and scripts "
            "(after changing claim_idle or retention for every worker, or an upgrade).",
        ),
    ] = False,
    scripts: Annotated[
        Path | None,
        typer.Option(
            "--scripts",
            metavar="DIR",
            help="Also write the Lua scripts (name.lua) to DIR, for a worker in another language.",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Print the swarm's protocol record as JSON: the protocol version, each Lua
    script's SHA1 and the settings every worker must share, as published in
    NS:protocol by the first worker (docs/protocol.md). "published" is null when no
    worker has run yet; "here" is what this process would publish.

    Example: swarmstream protocol --scripts ./lua | jq .published
    """
    settings = globals_of(ctx).settings()

    async def main() -> dict[str, object]:
        async with Swarm(settings) as swarm:
            store = swarm.transport.protocol
            mine = ProtocolRecord.of(settings, swarm.transport.scripts)
            if publish:
                await store.replace(mine)
            current = await store.read()
            return {
                "key": swarm.keys.protocol,
                "version": PROTOCOL_VERSION,
                "published": current.fields() if current else None,
                "here": mine.fields(),
                "differences": mine.differences(current) if current else [],
            }

    out = asyncio.run(main())
    if scripts is not None:
        scripts.mkdir(parents=True, exist_ok=True)
        for source in resources.files("swarmstream").joinpath("lua").iterdir():
            if source.name.endswith(".lua"):
                (scripts / source.name).write_text(source.read_text("utf-8"), "utf-8")
    typer.echo(json.dumps(out, indent=2))
