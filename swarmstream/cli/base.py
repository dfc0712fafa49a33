"""What every command shares: the global options until a command resolves its
settings, the error handling that turns a library error into one line on stderr
and an exit code, never a traceback, and the garbage collector's start-up pause.

The command modules import this; ``swarmstream.cli.app`` names them (and imports
each one when its command runs), so the dependency runs one way.
"""

from __future__ import annotations

import functools
import gc
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer

from swarmstream.errors import (
    AuthenticationFailed,
    ConfigError,
    ConnectionFailed,
    PermissionDenied,
    SwarmstreamError,
)
from swarmstream.settings import Settings

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_AUTH = 4
EXIT_PERMISSION = 5
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Globals:
    """The global options, kept until a command resolves its settings."""

    redis_url: str | None
    namespace: str | None
    config: Path | None
    replicas: int | None = None
    resolved: Settings | None = None  # what the command resolved, for error messages

    def settings(self, **overrides: Any) -> Settings:
        """Resolve settings: defaults < --config < SWARMSTREAM_* env < flags.

        A flag left out is None and overrides nothing."""
        self.resolved = Settings.load(
            self.config,
            url=self.redis_url,
            namespace=self.namespace,
            durable_replicas=self.replicas,
            **overrides,
        )
        return self.resolved


def globals_of(ctx: typer.Context) -> Globals:
    """The global options of the command line ``ctx`` belongs to."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals(None, None, None)


def print_settings(settings: Settings) -> None:
    """The resolved settings as indented JSON on stdout, password redacted."""
    typer.echo(json.dumps(settings.to_json(), indent=2))


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print one error line on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def exit_code(error: SwarmstreamError) -> int:
    """The exit code of an error: 2 usage or config, 3 Redis unreachable,
    4 authentication failed, 5 permission denied, 1 anything else."""
    if isinstance(error, ConfigError):
        return EXIT_USAGE
    if isinstance(error, AuthenticationFailed):
        return EXIT_AUTH
    if isinstance(error, ConnectionFailed):
        return EXIT_UNAVAILABLE
    if isinstance(error, PermissionDenied):
        return EXIT_PERMISSION
    return EXIT_FAILURE


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so library errors become one line and an exit code.

    A redis-py error that escapes the library is translated first (user, URL and
    namespace of the settings the command resolved; Redis's words, without
    redis-py's pipeline annotation). redis-py is not imported here: a command that
    never imported it cannot have raised its errors."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        resume_gc()
        try:
            return fn(*args, **kwargs)
        except SwarmstreamError as exc:
            fail(str(exc), exit_code(exc))
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            from swarmstream.transport.errors import translate

            resolved = _resolved([*args, *kwargs.values()])
            error = translate(exc, resolved) or SwarmstreamError(f"Redis error: {exc}")
            fail(str(error), exit_code(error))

    return wrapper


_gc_paused = False


def pause_gc() -> None:
    """Pause the cyclic garbage collector while a CLI process starts.

    Start-up imports Typer, the command's module and their dependencies: hundreds of
    thousands of objects that live until the process exits, so every collection
    while they are created finds nothing, and the full ones traverse them all
    (about 15 ms of a 200 ms ``submit``). Only ``main`` calls this; ``resume_gc``
    undoes it when the command starts."""
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def resume_gc() -> None:
    """Collect again, leaving what start-up created out of every collection
    (``gc.freeze``): it lives as long as the process. A no-op unless ``pause_gc``
    paused the collector (a command run by a test, in its process, changes nothing)."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def _is_redis_error(exc: BaseException) -> bool:
    exceptions = sys.modules.get("redis.exceptions")
    return exceptions is not None and isinstance(exc, exceptions.RedisError)


def _resolved(arguments: list[Any]) -> Settings | None:
    """The settings the command (given its arguments) resolved, if it got that far."""
    for arg in arguments:
        # the command's context: Typer passes a Click Context, not a typer.Context
        find_root = getattr(arg, "find_root", None)
        if callable(find_root):
            obj = find_root().obj
            return obj.resolved if isinstance(obj, Globals) else None
    return None
