"""The ``swarmstream`` command: global options and error handling.

Every command is a thin layer over one library call. Errors become one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from redis.exceptions import RedisError

from swarmstream.errors import (
    AuthenticationFailed,
    ConfigError,
    ConnectionFailed,
    PermissionDenied,
    SwarmstreamError,
)
from swarmstream.settings import DEFAULT_NAMESPACE, DEFAULT_URL, Settings
from swarmstream.transport.errors import translate

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_AUTH = 4
EXIT_PERMISSION = 5
P = ParamSpec("P")
R = TypeVar("R")


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
    redis-py's pipeline annotation)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SwarmstreamError as exc:
            fail(str(exc), exit_code(exc))
        except RedisError as exc:
            resolved = _resolved([*args, *kwargs.values()])
            error = translate(exc, resolved) or SwarmstreamError(f"Redis error: {exc}")
            fail(str(error), exit_code(error))

    return wrapper


def _resolved(arguments: list[Any]) -> Settings | None:
    """The settings the command (given its arguments) resolved, if it got that far."""
    for arg in arguments:
        # the command's context: Typer passes a Click Context, not a typer.Context
        find_root = getattr(arg, "find_root", None)
        if callable(find_root):
            obj = find_root().obj
            return obj.resolved if isinstance(obj, Globals) else None
    return None


app = typer.Typer(
    help="Swarms of AI agents sharing work and memory through Redis Streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


def print_settings(settings: Settings) -> None:
    """The resolved settings as indented JSON on stdout, password redacted."""
    typer.echo(json.dumps(settings.to_json(), indent=2))


@app.callback()
def _global(
    ctx: typer.Context,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            envvar="SWARMSTREAM_REDIS_URL",
            help="Redis URL, user:password@ allowed: redis:// or rediss:// (TLS) for one "
            "server or any node of a cluster, redis+sentinel://HOST:26379,.../MASTER for a "
            f"Sentinel-managed primary (README, Redis URLs). \\[default: {DEFAULT_URL}]",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            envvar="SWARMSTREAM_NAMESPACE",
            help=f"Key prefix isolating one swarm. \\[default: {DEFAULT_NAMESPACE}]",
            show_default=False,
        ),
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(
            "--replicas",
            metavar="N",
            min=0,
            help="Durability: submissions and findings are acknowledged only once N "
            "replicas have them (WAIT; setting durable_replicas). Without it a failover "
            "can lose the last writes (README, Durability). \\[default: 0]",
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
    ctx.obj = Globals(redis_url, namespace, config, replicas)


def globals_of(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals(None, None, None)


def config_cmd(ctx: typer.Context) -> None:
    """Print the resolved settings as JSON (password redacted), without connecting.

    They come from the global options, SWARMSTREAM_* variables and --config
    (defaults < file < environment < flags); 'swarmstream worker SPEC
    --show-settings' applies the worker's flags too.

    Example: swarmstream --config configs/swarmstream.toml config | jq .worker
    """
    print_settings(globals_of(ctx).settings())


def _register() -> None:
    from swarmstream.cli import run_cmd, worker_cmd

    worker_cmd.register(app)
    run_cmd.register(app)
    from swarmstream.cli import ask_cmd, shard_cmd, status_cmd

    status_cmd.register(app)
    shard_cmd.register(app)
    ask_cmd.register(app)
    from swarmstream.cli import bench_cmd, demo_cmd

    demo_cmd.register(app)
    bench_cmd.register(app)
    from swarmstream.cli import dead_cmd, findings_cmd, server_cmd, submit_cmd

    server_cmd.register(app)
    submit_cmd.register(app)
    findings_cmd.register(app)
    dead_cmd.register(app)
    app.command("config")(guarded(config_cmd))


_register()


def main() -> None:
    """Entry point of the ``swarmstream`` script."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)
