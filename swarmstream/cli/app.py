"""The ``swarmstream`` command: global options, and the table of its commands.

Every command is a thin layer over one library call, in a module of its own
(``*_cmd.py``) that never imports this one. Errors become one line on stderr and a
non-zero exit code, never a traceback (``swarmstream.cli.base.guarded``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from swarmstream.bridge.cli import bridge_app
from swarmstream.cli import (
    ask_cmd,
    bench_cmd,
    budget_cmd,
    dead_cmd,
    demo_cmd,
    findings_cmd,
    metrics_cmd,
    protocol_cmd,
    run_cmd,
    server_cmd,
    shard_cmd,
    status_cmd,
    submit_cmd,
    worker_cmd,
)
from swarmstream.cli.base import Globals, globals_of, guarded, print_settings
from swarmstream.mcp.command import mcp as mcp_command
from swarmstream.settings import DEFAULT_NAMESPACE, DEFAULT_URL

app = typer.Typer(
    help="Swarms of AI agents sharing work and memory through Redis Streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


def config_cmd(ctx: typer.Context) -> None:
    """Print the resolved settings as JSON (password redacted), without connecting.

    They come from the global options, SWARMSTREAM_* variables and --config
    (defaults < file < environment < flags); 'swarmstream worker SPEC
    --show-settings' applies the worker's flags too.

    Example: swarmstream --config configs/swarmstream.toml config | jq .worker
    """
    print_settings(globals_of(ctx).settings())


# the commands, in the order --help lists them (groups come after the commands)
app.command("worker")(guarded(worker_cmd.worker))
app.command("run")(guarded(run_cmd.run))
app.command("status")(guarded(status_cmd.status))
app.command("monitor")(guarded(status_cmd.monitor))
app.command("metrics")(guarded(metrics_cmd.metrics))
app.command("shard")(guarded(shard_cmd.shard))
app.add_typer(shard_cmd.context_app, name="context")
app.command("ask")(guarded(ask_cmd.ask_command))
app.command("demo")(guarded(demo_cmd.demo))
app.command("bench")(guarded(bench_cmd.bench))
app.command("up")(guarded(server_cmd.up))
app.command("down")(guarded(server_cmd.down))
app.command("submit")(guarded(submit_cmd.submit))
app.command("findings")(guarded(findings_cmd.findings))
app.command("mcp")(guarded(mcp_command))
app.add_typer(dead_cmd.dead_app, name="dead")
app.add_typer(budget_cmd.budget_app, name="budget")
app.add_typer(bridge_app, name="bridge")
app.command("config")(guarded(config_cmd))
app.command("protocol")(guarded(protocol_cmd.protocol))


def main() -> None:
    """Entry point of the ``swarmstream`` script."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)
