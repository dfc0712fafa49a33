"""Helpers of the producer commands (submit, findings, dead): a checked connection,
input parsing, and JSON lines that survive a closed pipe."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from swarmstream.errors import ConfigError
from swarmstream.settings import Settings

if TYPE_CHECKING:
    from swarmstream.client import Swarm

T = TypeVar("T")


@contextlib.asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Swarm]:
    """A Swarm whose connection is checked first (ConnectionFailed says how to fix it)."""
    from swarmstream.client import Swarm  # redis-py: only for commands that connect

    swarm = Swarm(settings)
    try:
        await swarm.check()
        yield swarm
    finally:
        await swarm.aclose()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def parse_json(raw: str, option: str) -> Any:
    """A JSON option value; a ConfigError (exit 2) naming the option otherwise."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{option} is not valid JSON: {exc}") from None


def read_text(text: str) -> str:
    """The TEXT argument; ``-`` reads stdin (without its trailing newline)."""
    if text != "-":
        return text
    try:
        return sys.stdin.read().rstrip("\n")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"stdin is not valid UTF-8: {exc}") from None


def positive(value: float | None, option: str) -> None:
    if value is not None and not 0 < value < float("inf"):
        raise ConfigError(f"{option} must be a positive number of seconds, got {value:g}")


def emit_json(obj: Any) -> None:
    """One JSON object on one line of stdout, flushed (for pipes and --follow)."""
    typer.echo(json.dumps(obj, ensure_ascii=False, default=str))


@contextlib.contextmanager
def quiet_pipe() -> Iterator[None]:
    """Exit quietly (code 0) when stdout's reader goes away, as with ``| head``."""
    try:
        yield
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


#: ``--connect-wait``, for the long-running commands (worker, shard, run)
ConnectWait = Annotated[
    float | None,
    typer.Option(
        "--connect-wait",
        metavar="SECONDS",
        help="How long to wait for Redis to answer at start, retrying with backoff and "
        "logging each try (setting connect_wait); then exit 3. Bad credentials or "
        "permissions exit at once. \\[default: wait as long as it takes]",
        show_default=False,
    ),
]


async def wait_for(settings: Settings, what: str) -> bool:
    """Wait for Redis as a long-running command does (``connect_wait``); False when
    interrupted (SIGINT/SIGTERM) while waiting."""
    import signal

    from swarmstream.transport.startup import wait_for_redis

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        found = await wait_for_redis(
            settings.redis, wait=settings.redis.connect_wait, stop=stop, what=what
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return found is not None
