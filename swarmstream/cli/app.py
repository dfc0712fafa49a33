"""The ``swarmstream`` command: global options and error handling.

Every command is a thin layer over one library call. Errors become one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from redis.exceptions import RedisError
from typer.core import TyperGroup

from swarmstream.errors import ConfigError, ConnectionFailed, SwarmstreamError
from swarmstream.settings import DEFAULT_NAMESPACE, DEFAULT_URL, Settings

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class CliError(click.ClickException):
    """A one-line error with a chosen exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class _Group(TyperGroup):
    """Turns library errors into CliError (one line, exit code by kind)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        except ConnectionFailed as exc:
            raise CliError(str(exc), EXIT_UNAVAILABLE) from None
        except SwarmstreamError as exc:
            raise CliError(str(exc)) from None
        except RedisError as exc:
            raise CliError(f"Redis error: {exc}", EXIT_UNAVAILABLE) from None


app = typer.Typer(
    cls=_Group,
    help="Swarms of AI agents sharing work and memory through Redis Streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass(frozen=True)
class Globals:
    """The global options, kept until a command resolves its settings."""

    redis_url: str | None
    namespace: str | None
    config: Path | None

    def settings(self, **overrides: Any) -> Settings:
        """Resolve settings: defaults < --config < SWARMSTREAM_* env < flags."""
        return Settings.load(
            self.config, url=self.redis_url, namespace=self.namespace, **overrides
        )


@app.callback()
def _global(
    ctx: typer.Context,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            envvar="SWARMSTREAM_REDIS_URL",
            help=f"Redis URL: redis://, rediss:// (TLS), with user:password. [default: {DEFAULT_URL}]",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            envvar="SWARMSTREAM_NAMESPACE",
            help=f"Key prefix isolating one swarm. [default: {DEFAULT_NAMESPACE}]",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML settings file, as in configs/swarmstream.toml."),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = Globals(redis_url, namespace, config)


def globals_of(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals(None, None, None)


def _register() -> None:
    from swarmstream.cli import worker_cmd

    worker_cmd.register(app)


_register()


def main() -> None:
    """Entry point of the ``swarmstream`` script."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)
