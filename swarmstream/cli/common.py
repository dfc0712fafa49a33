"""Helpers of the producer commands (submit, findings, dead): a checked connection,
input parsing, and JSON lines that survive a closed pipe."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

import typer

from swarmstream.client import Swarm
from swarmstream.errors import ConfigError
from swarmstream.settings import Settings

T = TypeVar("T")


@contextlib.asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Swarm]:
    """A Swarm whose connection is checked first (ConnectionFailed says how to fix it)."""
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
