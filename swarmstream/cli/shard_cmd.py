"""``swarmstream shard`` (a shard process), ``swarmstream context load`` and
``swarmstream context split``."""

from __future__ import annotations

import asyncio
import math
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmstream.cli.base import globals_of, guarded
from swarmstream.cli.common import ConnectWait, emit_json, wait_for
from swarmstream.client import Swarm
from swarmstream.context import CHARS_PER_TOKEN, estimate_tokens
from swarmstream.errors import ConfigError
from swarmstream.keys import validate_name
from swarmstream.shard import Manifest, MemoryShard, load_shards, read_paths, split_corpus

context_app = typer.Typer(
    help="Manage shard contexts: load files as a shard's context, or split a corpus over "
    "new shards by token budget.",
    no_args_is_help=True,
)


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


def context_split(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders: the corpus.")],
    spec: Annotated[
        str, typer.Option("--spec", help="Spec of the shards (the tasks asked of them).")
    ],
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            metavar="N",
            help="Split into N shards: the smallest token budget that makes at most N.",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens",
            metavar="T",
            help="Split by this budget: shards of at most T tokens (~4 characters each), "
            "as many as it takes.",
            show_default=False,
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix",
            metavar="NAME",
            help="Shard ids are NAME-1 .. NAME-N. \\[default: SPEC]",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per shard.")] = False,
) -> None:
    """Split a corpus over shards by token budget; register each shard and load its
    part as its context.

    Give --shards N or --max-tokens T. Documents keep their order; one larger than
    the budget is cut at line boundaries and keeps its line numbers, so path:line
    citations stay true. Loading over existing shards adds a new context version.

    Example: swarmstream context split corpus/ --spec research --shards 5 --prefix kb
    """
    validate_name("spec", spec)
    name = validate_name("shard prefix", prefix or spec)
    if (shards is None) == (max_tokens is None):
        raise ConfigError("give --shards N or --max-tokens T (one of them)")
    if shards is not None and shards < 1:
        raise ConfigError(f"--shards must be 1 or more, got {shards}")
    if max_tokens is not None and max_tokens < 1:
        raise ConfigError(f"--max-tokens must be 1 or more, got {max_tokens}")
    settings = globals_of(ctx).settings()
    docs = read_paths(paths)
    chars = sum(len(text) for _, text in docs)
    if not chars:
        shown = " ".join(str(p) for p in paths)
        raise ConfigError(f"no text to split in {shown} (empty, or only binary files)")
    budget = max_tokens if max_tokens is not None else _budget_for(docs, shards or 1)
    made = len(split_corpus(docs, budget))
    validate_name("shard", f"{name}-{made}")

    async def main() -> tuple[list[dict[str, Any]], list[str]]:
        async with Swarm(settings) as swarm:
            loaded = await load_shards(swarm, docs, budget, spec, prefix=name)
            infos = [{"shard": s.id, **await s.info()} for s in loaded]
            ids = await loaded[0].store.shard_ids() if loaded else []
        return infos, _stale(ids, name, len(loaded))

    infos, stale = asyncio.run(main())
    for info in infos:
        row = {
            "shard": info["shard"],
            "spec": spec,
            "version": int(info.get("version", 0)),
            "documents": int(info.get("documents", 0)),
            "chars": int(info.get("chars", 0)),
            "tokens": int(info.get("tokens", 0)),
        }
        if as_json:
            emit_json({**row, "budget": budget})
        else:
            typer.echo(
                f"shard {row['shard']}: context v{row['version']}, {row['documents']} documents, "
                f"{row['chars']:,} chars, ~{row['tokens']:,} tokens"
            )
    if not as_json:
        typer.echo(
            f"{len(docs)} documents, ~{estimate_tokens(chars):,} tokens, over {len(infos)} "
            f"shard(s) of at most {budget:,} tokens for spec {spec}"
        )
    if shards is not None and len(infos) < shards:
        typer.echo(
            f"note: made {len(infos)} shard(s), not {shards}: the smallest budget that "
            f"makes at most {shards} makes {len(infos)} (the corpus is small)",
            err=True,
        )
    if stale:
        typer.echo(
            f"note: {', '.join(stale)} from an earlier split are still registered, with "
            "their old context",
            err=True,
        )


def _budget_for(docs: Sequence[tuple[str, str]], shards: int) -> int:
    """The smallest token budget that splits ``docs`` into at most ``shards`` shards:
    the even share first (total / N), raised by binary search when packing whole
    documents and lines needs more room."""
    total = sum(len(text) + 1 for _, text in docs)
    lo = max(1, math.ceil(total / (shards * CHARS_PER_TOKEN)))
    if len(split_corpus(docs, lo)) <= shards:
        return lo
    hi = math.ceil(total / CHARS_PER_TOKEN) + 1  # one shard holds everything
    while lo + 1 < hi:  # invariant: lo makes too many, hi few enough
        mid = (lo + hi) // 2
        if len(split_corpus(docs, mid)) <= shards:
            hi = mid
        else:
            lo = mid
    return hi


def _stale(registered: Sequence[str], prefix: str, made: int) -> list[str]:
    """Shards ``prefix-K`` with K > ``made``: left over from a split into more."""
    out = []
    for sid in registered:
        head, _, number = sid.rpartition("-")
        if head == prefix and number.isdigit() and int(number) > made:
            out.append(sid)
    return sorted(out, key=lambda sid: int(sid.rpartition("-")[2]))


# the context group's commands; swarmstream.cli.app adds the group
context_app.command("load")(guarded(context_load))
context_app.command("split")(guarded(context_split))
