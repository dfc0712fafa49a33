"""``swarmstream mcp``: the swarm as an MCP server for an agent session."""

from __future__ import annotations

from typing import Annotated

import typer

from swarmstream.cli.base import globals_of
from swarmstream.cli.common import ConnectWait, run, wait_for
from swarmstream.errors import ConfigError
from swarmstream.mcp import DEFAULT_HOLD, DEFAULT_HOST, DEFAULT_PORT


def mcp(
    ctx: typer.Context,
    http: Annotated[
        bool,
        typer.Option(
            "--http", help="Serve streamable HTTP on --host/--port (path /mcp) instead of stdio."
        ),
    ] = False,
    host: Annotated[
        str, typer.Option("--host", help="With --http: address to listen on.")
    ] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="With --http: port to listen on.")
    ] = DEFAULT_PORT,
    hold: Annotated[
        float,
        typer.Option(
            "--hold",
            metavar="SECONDS",
            help="A claimed task goes back to the swarm after this many seconds without a "
            "tool call from the session (claim can set its own).",
        ),
    ] = DEFAULT_HOLD,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Consumer name of the session. \\[default: mcp-host-pid-random]",
            show_default=False,
        ),
    ] = None,
    connect_wait: ConnectWait = None,
) -> None:
    """Serve the swarm to an agent session (Claude Code, Gemini CLI, Codex) over MCP.

    The agent can submit tasks and wait for their findings, read findings, ask
    across memory shards, see status and dead letters, and work as a worker: claim
    a task, report its finding or fail it. Tasks it holds are kept leased while it
    is active, and released when the session ends or goes silent for --hold seconds.
    Without --http it speaks MCP on stdin/stdout (logs go to stderr).

    Example: claude mcp add swarmstream -- swarmstream --redis-url redis://localhost:6379/0 mcp
    """
    if not 0 < hold < float("inf"):
        raise ConfigError(f"--hold must be a positive number of seconds, got {hold:g}")
    settings = globals_of(ctx).settings(connect_wait=connect_wait)
    if not run(wait_for(settings, "mcp server")):
        return
    from swarmstream.mcp.server import serve  # the MCP SDK: imported only here

    serve(settings, http=http, host=host, port=port, hold=hold, name=name)
