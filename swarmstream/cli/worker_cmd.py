"""``swarmstream worker``: run an ephemeral worker on one or more specs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from swarmstream.cli.base import globals_of, print_settings
from swarmstream.cli.common import ConnectWait
from swarmstream.errors import ConfigError
from swarmstream.handlers import Handler, resolve
from swarmstream.handlers.exec import ExecHandler
from swarmstream.keys import validate_name
from swarmstream.metrics import DEFAULT_HOST
from swarmstream.models import worker_name
from swarmstream.settings import WorkerSettings
from swarmstream.worker.process import serve, tune_gc
from swarmstream.worker.worker import EphemeralWorker

if TYPE_CHECKING:
    from swarmstream.metrics.server import MetricsServer
    from swarmstream.metrics.worker import WorkerMetrics

#: the defaults shown in --help; a flag left out is None, so that it overrides
#: neither the config file nor SWARMSTREAM_* variables
_D = WorkerSettings()


def _default(value: object) -> str:
    """' [default: X]' for a help text (Rich markup needs the bracket escaped)."""
    shown = "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    return f" \\[default: {shown}]"


def worker(
    ctx: typer.Context,
    specs: Annotated[list[str], typer.Argument(help="Specializations to consume.")],
    handler: Annotated[
        str | None,
        typer.Option(
            "--handler",
            help="Built-in (echo, sleep, retrieve) or module:function. \\[default: echo]",
            show_default=False,
        ),
    ] = None,
    exec_command: Annotated[
        str | None,
        typer.Option(
            "--exec",
            metavar="COMMAND",
            help="Run this external command per task instead of --handler: the task's text "
            "on stdin, stdout is the finding (or a JSON object with content, sources, usage). "
            "Split like a shell line, never run by a shell.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            help="Tasks at once." + _default(_D.concurrency),
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool | None,
        typer.Option("--once", help="Run one task, then exit.", show_default=False),
    ] = None,
    max_tasks: Annotated[
        int | None,
        typer.Option(
            "--max-tasks",
            help="Exit after this many tasks." + _default(_D.max_tasks),
            show_default=False,
        ),
    ] = None,
    idle_exit: Annotated[
        float | None,
        typer.Option(
            "--idle-exit",
            metavar="SECONDS",
            help="Exit after this many idle seconds." + _default(_D.idle_exit),
            show_default=False,
        ),
    ] = None,
    claim_idle: Annotated[
        float | None,
        typer.Option(
            "--claim-idle",
            metavar="SECONDS",
            help="Seconds before a dead worker's task is reclaimed." + _default(_D.claim_idle),
            show_default=False,
        ),
    ] = None,
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace",
            metavar="SECONDS",
            help="Seconds to finish tasks on SIGTERM." + _default(_D.grace),
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Handler timeout of tasks that set none (setting default_timeout)."
            + _default(_D.default_timeout),
            show_default=False,
        ),
    ] = None,
    retry_base: Annotated[
        float | None,
        typer.Option(
            "--retry-base",
            metavar="SECONDS",
            help="Backoff before a failed task's first retry; doubles per attempt, with jitter."
            + _default(_D.retry_base),
            show_default=False,
        ),
    ] = None,
    retry_max: Annotated[
        float | None,
        typer.Option(
            "--retry-max",
            metavar="SECONDS",
            help="Longest backoff between retries." + _default(_D.retry_max),
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Consumer name. \\[default: host-pid-random]", show_default=False
        ),
    ] = None,
    connect_wait: ConnectWait = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            metavar="PORT",
            min=0,
            max=65535,
            help="Serve this worker's Prometheus metrics on http://METRICS-HOST:PORT/metrics: "
            "tasks by outcome, handler durations, lease events, reconnects, state. "
            "\\[default: not served]",
            show_default=False,
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host",
            help="Address of --metrics-port (no authentication: 0.0.0.0 only behind a "
            "firewall or a proxy).",
        ),
    ] = DEFAULT_HOST,
    show_settings: Annotated[
        bool,
        typer.Option(
            "--show-settings",
            help="Print the resolved settings as JSON (password redacted) and exit, "
            "without connecting.",
        ),
    ] = False,
) -> None:
    """Claim tasks from SPEC streams and run a handler on each; report findings.

    Each setting comes from its flag, else its SWARMSTREAM_* variable, else the
    --config file, else the default shown here (--show-settings prints the result).
    The spec's \\[specs.SPEC] table in --config comes right after the flags: its
    exec (or handler), concurrency and timeout beat the variables and \\[worker].

    Example: swarmstream worker research --handler echo --concurrency 4 --idle-exit 30

    Any command as a worker (task text on stdin, stdout is the finding):

    swarmstream worker research --exec "claude -p" --concurrency 4 --timeout 600
    """
    if handler is not None and exec_command is not None:
        raise ConfigError("--handler and --exec are mutually exclusive: give one of them")
    for spec in specs:
        validate_name("spec", spec)
    g = globals_of(ctx)
    # flags > the specs' [specs.SPEC] tables > SWARMSTREAM_* and [worker] > defaults
    table = g.settings().spec_defaults(specs)
    if handler is None and exec_command is None:
        handler, exec_command = table.handler, table.exec
    settings = g.settings(
        concurrency=concurrency if concurrency is not None else table.concurrency,
        once=once,
        max_tasks=max_tasks,
        idle_exit=idle_exit,
        claim_idle=claim_idle,
        grace=grace,
        default_timeout=timeout if timeout is not None else table.timeout,
        retry_base=retry_base,
        retry_max=retry_max,
        connect_wait=connect_wait,
    )
    if show_settings:
        print_settings(settings)
        return
    chosen: Handler = (
        ExecHandler.from_command(exec_command)
        if exec_command is not None
        else resolve(handler or "echo")
    )
    name = name or worker_name()
    metrics, server = None, None
    if metrics_port is not None:  # taken before the worker starts: a busy port fails at once
        metrics, server = _metrics(settings.redis.namespace, name, metrics_host, metrics_port)
    try:
        w = EphemeralWorker(specs, chosen, settings, name=name, hooks=[metrics] if metrics else ())
        tune_gc()
        summary = asyncio.run(serve(w))
    finally:
        if server is not None:
            server.close()
    typer.echo(
        f"worker {summary.name}: {summary.done} done, {summary.failed} failed, "
        f"{summary.dead} dead, {summary.retried} retried, {summary.reclaimed} reclaimed",
        err=True,
    )


def _metrics(
    namespace: str, name: str, host: str, port: int
) -> tuple[WorkerMetrics, MetricsServer]:
    """The worker's metrics hook and the HTTP endpoint serving it (started)."""
    import prometheus_client  # imported when used: startup stays lean

    from swarmstream.metrics.server import MetricsServer
    from swarmstream.metrics.worker import WorkerMetrics

    # no "<counter>_created" series: swarmstream_worker_tasks_created would read as a
    # count of tasks created (a setting of this process's prometheus_client)
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = WorkerMetrics(namespace, name)
    server = MetricsServer(metrics.registry, host, port)
    typer.echo(f"worker {name}: metrics on {server.url}", err=True)
    return metrics, server
