"""The MCP server: the tools of ``swarmstream.mcp.tools`` over stdio (one agent
session per process) or streamable HTTP.

Its lifespan connects to Redis and starts the leases; when it ends (stdin closed,
SIGTERM or SIGINT, or the HTTP server stopping) every task still held is released
for immediate reclaim. A server killed outright releases nothing: its tasks are
reclaimed after ``claim_idle``, like a dead worker's.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from redis.exceptions import RedisError

from swarmstream import __version__
from swarmstream.errors import SwarmstreamError
from swarmstream.mcp import DEFAULT_HOLD, DEFAULT_HOST, DEFAULT_PORT
from swarmstream.mcp.tools import SwarmTools
from swarmstream.settings import Settings

log = logging.getLogger(__name__)

#: how much longer than the grace period a signalled server waits for its release (s)
EXIT_MARGIN = 5.0

INSTRUCTIONS = """\
swarmstream: a swarm of agents sharing work through Redis Streams.
Coordinate: submit / submit_many tasks to a spec, then wait for their findings (or
read them later with findings); ask questions across memory shards; status and
dead_letters show the swarm's state.
Work: claim a task of a spec, do it, then report(task_id, content, sources) - or
fail(task_id, error), or release(task_id). A claimed task stays yours while this
session keeps making tool calls (ping is the cheapest); after its hold time without
one, or when the session ends, it goes back to the swarm.
"""


def build_server(
    settings: Settings, *, hold: float = DEFAULT_HOLD, name: str | None = None
) -> MCPServer[None]:
    """An MCP server over the swarm of ``settings`` (not started)."""
    return _build(SwarmTools(settings, hold=hold, name=name))


def _build(tools: SwarmTools) -> MCPServer[None]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[None]) -> AsyncIterator[None]:
        try:
            await tools.open()
            yield None
        finally:
            with anyio.CancelScope(shield=True):  # a signal's cancellation lands here too
                await tools.close()

    server: MCPServer[None] = MCPServer(
        "swarmstream",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
    )
    tools.register(server)
    return server


def serve(
    settings: Settings,
    *,
    http: bool = False,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    hold: float = DEFAULT_HOLD,
    name: str | None = None,
) -> None:
    """Run the MCP server until its client goes away (stdio: stdin closes) or it is
    stopped (SIGTERM, SIGINT); the tasks the session holds are released either way."""
    tools = SwarmTools(settings, hold=hold, name=name)
    server = _build(tools)
    try:
        if http:  # uvicorn turns SIGTERM and SIGINT into a graceful shutdown itself
            run: Any = functools.partial(server.run_streamable_http_async, host=host, port=port)
            anyio.run(run)
        else:
            anyio.run(_stdio, server, tools)
    except BaseExceptionGroup as group:  # the SDK's task groups wrap a failed start
        cause = _ours(group)
        if cause is None:
            raise
        raise cause from None


def _ours(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The first swarmstream or Redis error inside (nested) exception groups."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _ours(exc)
            if found is not None:
                return found
        elif isinstance(exc, SwarmstreamError | RedisError):
            return exc
    return None


async def _stdio(server: MCPServer[None], tools: SwarmTools) -> None:
    """Serve stdio; SIGTERM or SIGINT ends the session as a closed stdin does.

    The SDK reads stdin in a thread that a cancellation cannot stop, so after a
    signal, once the session's tasks are released, the process exits at once
    rather than wait for an end of input that may never come."""
    async with anyio.create_task_group() as group:

        async def on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for sig in signals:
                    log.info("mcp server: %s, releasing held tasks", signal.Signals(sig).name)
                    break
            group.cancel_scope.cancel()
            if tools.started:
                wait = tools.settings.worker.grace + EXIT_MARGIN
                with anyio.CancelScope(shield=True), anyio.move_on_after(wait):
                    await tools.closed.wait()
            logging.shutdown()
            sys.stderr.flush()
            os._exit(0)

        group.start_soon(on_signal)
        await server.run_stdio_async()
        group.cancel_scope.cancel()
