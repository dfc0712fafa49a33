"""The ``swarmstream`` command: global options, and the table of its commands.

Every command is a thin layer over one library call, in a module of its own
(``*_cmd.py``) that never imports this one. A command's module is imported only
when that command runs (``swarmstream.cli.lazy``): an agent that calls ``submit``
200 times does not import the worker, the monitor or MCP 200 times. Errors become
one line on stderr and a non-zero exit code, never a traceback
(``swarmstream.cli.base.guarded``).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from swarmstream.cli.base import Globals, globals_of, pause_gc, print_settings
from swarmstream.cli.lazy import Lazy, lazy_group
from swarmstream.settings import DEFAULT_NAMESPACE, DEFAULT_URL

#: the commands, in the order --help lists them (groups after the commands), with
#: the first paragraph of their help, which --help shows without importing them
#: (tests/test_cli_startup.py checks that it matches the command's own)
COMMANDS: dict[str, Lazy] = {
    "worker": Lazy(
        "swarmstream.cli.worker_cmd:worker",
        "Claim tasks from SPEC streams and run a handler on each; report findings.",
    ),
    "run": Lazy(
        "swarmstream.cli.run_cmd:run",
        "Run a pass workflow: post each pass's tasks, wait for the findings until the "
        "pass deadline, synthesize, and feed the synthesis to the next pass. Progress is "
        "kept in Redis: run the same command again after a crash and it resumes.",
    ),
    "status": Lazy(
        "swarmstream.cli.status_cmd:status",
        "A one-shot snapshot of specs, workers and shards, and what they spent.",
    ),
    "monitor": Lazy(
        "swarmstream.cli.status_cmd:monitor",
        "Live dashboard: backlog, pending, throughput, workers, shards, findings.",
    ),
    "metrics": Lazy(
        "swarmstream.cli.metrics_cmd:metrics",
        "Serve Prometheus metrics of the whole swarm on http://HOST:PORT/metrics.",
    ),
    "shard": Lazy(
        "swarmstream.cli.shard_cmd:shard",
        "Run a memory shard: register it, load its context, keep a heartbeat and collect "
        "the findings of its tasks until interrupted (all state stays in Redis).",
    ),
    "ask": Lazy(
        "swarmstream.cli.ask_cmd:ask_command",
        "Ask every shard a question; print the passages that support an answer, with "
        "path:line citations, or 'Not found in shards ...' and why.",
    ),
    "demo": Lazy(
        "swarmstream.cli.demo_cmd:demo",
        "Run the whole system on its own embedded Redis, then clean up (about 20 s).",
    ),
    "bench": Lazy(
        "swarmstream.cli.bench_cmd:bench",
        "Measure swarmstream against plain redis-py on one Redis, in seconds.",
    ),
    "up": Lazy(
        "swarmstream.cli.server_cmd:up",
        "Start a Redis in the background (loopback only, AOF persistence in DIR).",
    ),
    "down": Lazy(
        "swarmstream.cli.server_cmd:down",
        "Stop the Redis that 'swarmstream up' started in DIR; its data stays on disk.",
    ),
    "submit": Lazy(
        "swarmstream.cli.submit_cmd:submit",
        "Post a task to SPEC's stream and print its id (with --wait: its finding); "
        "with --file, post many, one JSON object per line.",
    ),
    "findings": Lazy(
        "swarmstream.cli.findings_cmd:findings",
        "List findings, oldest first, or stream new ones with --follow.",
    ),
    "mcp": Lazy(
        "swarmstream.mcp.command:mcp",
        "Serve the swarm to an agent session (Claude Code, Gemini CLI, Codex) over MCP.",
    ),
    "config": Lazy(
        "swarmstream.cli.app:config_cmd",
        "Print the resolved settings as JSON (password redacted), without connecting.",
    ),
    "protocol": Lazy(
        "swarmstream.cli.protocol_cmd:protocol",
        "Print the swarm's protocol record as JSON: the protocol version, each Lua "
        "script's SHA1 and the settings every worker must share, as published in "
        'NS:protocol by the first worker (docs/protocol.md). "published" is null when no '
        'worker has run yet; "here" is what this process would publish.',
    ),
    "context": Lazy(
        "swarmstream.cli.shard_cmd:context_app",
        "Manage shard contexts: load files as a shard's context, or split a corpus over "
        "new shards by token budget.",
        group=True,
    ),
    "dead": Lazy(
        "swarmstream.cli.dead_cmd:dead_app",
        "Dead letters: tasks that failed max_attempts times or could not be decoded.",
        group=True,
    ),
    "budget": Lazy(
        "swarmstream.cli.budget_cmd:budget_app",
        "Budgets: stop claiming a spec's tasks (or all of them) once USD or tokens are spent.",
        group=True,
    ),
    "bridge": Lazy(
        "swarmstream.bridge.cli:bridge_app",
        "Connect a bus your agents already use to the swarm, both ways.",
        group=True,
    ),
}

app = typer.Typer(
    cls=lazy_group(COMMANDS),
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
        typer.Option(
            "--config",
            envvar="SWARMSTREAM_CONFIG",
            help="TOML settings file, as in configs/swarmstream.toml (its \\[specs.SPEC] "
            "tables give per-spec defaults to submit and worker).",
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config is None and (named := os.environ.get("SWARMSTREAM_CONFIG")):
        config = Path(named)  # typer 0.26 ignores envvar= on a callback's options
    ctx.obj = Globals(redis_url, namespace, config, replicas)


def config_cmd(ctx: typer.Context) -> None:
    """Print the resolved settings as JSON (password redacted), without connecting.

    They come from the global options, SWARMSTREAM_* variables and --config
    (defaults < file < environment < flags); 'swarmstream worker SPEC
    --show-settings' applies the worker's flags too.

    Example: swarmstream --config configs/swarmstream.toml config | jq .worker
    """
    print_settings(globals_of(ctx).settings())


def main() -> None:
    """Entry point of the ``swarmstream`` script.

    The garbage collector pauses while the process starts (``pause_gc``), and at the
    exit everything is frozen out of the interpreter's final collection, which would
    traverse every object only to free what the process gives back anyway (about
    40 ms of each short command on a 2-vCPU VM: benchmarks/cli_startup.py)."""
    pause_gc()
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)
    finally:
        gc.freeze()
