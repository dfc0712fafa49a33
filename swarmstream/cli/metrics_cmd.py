"""``swarmstream metrics``: a Prometheus endpoint for the whole swarm."""

from __future__ import annotations

from typing import Annotated

import typer

from swarmstream.cli.base import globals_of
from swarmstream.metrics import DEFAULT_HOST, DEFAULT_PORT


def metrics(
    ctx: typer.Context,
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="TCP port to serve on (0: any free port)."),
    ] = DEFAULT_PORT,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. The endpoint has no authentication: give 0.0.0.0 "
            "(all interfaces) only behind a firewall or an authenticating proxy.",
        ),
    ] = DEFAULT_HOST,
    min_interval: Annotated[
        float,
        typer.Option(
            "--min-interval",
            metavar="SECONDS",
            min=0.0,
            help="Reuse a snapshot for this long: scrapes in between (several Prometheus "
            "replicas) cost Redis nothing.",
        ),
    ] = 1.0,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            min=0.1,
            help="Give up on a snapshot after this long and serve swarmstream_up 0 "
            "(keep it below Prometheus's scrape_timeout).",
        ),
    ] = 5.0,
) -> None:
    """Serve Prometheus metrics of the whole swarm on http://HOST:PORT/metrics.

    Each scrape reads the snapshot the monitor shows, in two pipelined round
    trips whatever the number of tasks (reused for --min-interval): per spec
    the backlog, pending tasks and the age of the oldest, dead letters,
    consumers, whether it is paused, and counters of tasks delivered,
    completed, failed, retried and redelivered; tokens and cost per spec,
    model and shard; budgets and what is left; workers by state; shards.
    Labels: namespace, spec, model, shard, state, type (never a task or a
    worker name). While Redis does not answer, swarmstream_up is 0 and the
    exporter keeps running; it recovers by itself. Workers serve their own
    metrics with 'swarmstream worker SPEC --metrics-port PORT'; a Grafana
    dashboard for both: configs/grafana-dashboard.json.

    Example: swarmstream metrics --port 9464, scraped with this prometheus.yml:

    scrape_configs:
      - job_name: swarmstream
        scrape_interval: 15s
        static_configs:
          - targets: ["127.0.0.1:9464"]
    """
    from swarmstream.metrics.server import run_exporter  # prometheus_client: only here

    settings = globals_of(ctx).settings()
    run_exporter(
        settings,
        host=host,
        port=port,
        min_interval=min_interval,
        timeout=timeout,
        announce=lambda line: typer.echo(f"swarmstream metrics: {line}", err=True),
    )
