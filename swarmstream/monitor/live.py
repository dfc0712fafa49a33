"""The live loop: collect, render, repeat; keeps running while Redis is away.

Redis down or unreachable (at start or later): the monitor keeps redrawing, with
the last data it had (or an empty frame) marked "disconnected, retrying", and
tries again every refresh. Each attempt gives up after ``timeout`` seconds
(default: two refreshes, at least one second), so a dead link or a stopped server
never freezes the screen; the client reconnects once Redis answers. After an
attempt times out the next one may take twice as long (up to MAX_TIMEOUT), so
that a link too slow for a reconnection (handshake and all) within one timeout
still gets one; a success brings the timeout back. Only a Redis that is too old
(or a bad URL, refused before the loop starts) stops the monitor, with a
one-line error, and so do credentials Redis refuses and a missing ACL permission.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console, RenderableType
from rich.live import Live

from swarmstream.client import Swarm
from swarmstream.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    PermissionDenied,
    RedisVersionError,
)
from swarmstream.monitor.render import render
from swarmstream.monitor.snapshot import Snapshot, collect
from swarmstream.settings import Settings
from swarmstream.transport.connection import translated

log = logging.getLogger(__name__)

DISCONNECTED = "disconnected, retrying"
MAX_TIMEOUT = 30.0


def describe(exc: BaseException, timeout: float) -> str:
    """The status line for a failed refresh."""
    if isinstance(exc, TimeoutError):
        return f"{DISCONNECTED} (no reply in {timeout:g}s)"
    if isinstance(exc, ConnectionFailed):
        cause = exc.__cause__ or exc.__context__
        return f"{DISCONNECTED} ({type(cause).__name__ if cause else 'ConnectionError'})"
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return f"{DISCONNECTED} ({type(exc).__name__})"
    first = (str(exc).splitlines() or [""])[0][:80]
    if isinstance(exc, RedisError):
        return f"Redis error, retrying ({type(exc).__name__}: {first})"
    return f"error, retrying ({type(exc).__name__}: {first})"


class Monitor:
    """One monitor session: a connection that is checked lazily, the last
    snapshot, and how long ago it was taken."""

    def __init__(self, settings: Settings, timeout: float) -> None:
        self.settings = settings
        self.base_timeout = timeout
        self.timeout = timeout  # grows while attempts time out, back to base on success
        # One retry (a pooled connection that went stale while Redis restarted is
        # replaced at once); longer outages are retried by the loop, every refresh,
        # and shown. The client connects lazily: Redis may well be down right now.
        quick = dataclasses.replace(settings.redis, retries=min(settings.redis.retries, 1))
        self.swarm = Swarm(dataclasses.replace(settings, redis=quick))
        self.snap: Snapshot | None = None
        self.checked = False
        self.last_ok: float | None = None
        self.source = f"{settings.redis.namespace} @ {settings.redis.redacted_url}"

    async def refresh(self) -> str:
        """Take a snapshot; returns the status to show ("connected" or why not)."""
        try:
            if not self.checked:  # version check once, on first contact
                await asyncio.wait_for(self.swarm.check(), self.timeout)
                self.checked = True
            reader = self.swarm.transport.stats  # after check(): a cluster's, if it is one
            self.snap = await asyncio.wait_for(collect(reader, self.snap), self.timeout)
        except (RedisVersionError, AuthenticationFailed, PermissionDenied):
            raise  # waiting would not help: say so and stop
        except NoPermissionError as exc:
            raise translated(self.settings.redis, exc) from None
        except Exception as exc:  # the monitor must outlive any one failed refresh
            log.debug("refresh failed", exc_info=True)
            status = describe(exc, self.timeout)
            if isinstance(exc, TimeoutError):
                self.timeout = min(MAX_TIMEOUT, self.timeout * 2)
            if self.last_ok is not None:
                status += f" · data from {time.monotonic() - self.last_ok:.0f}s ago"
            return status
        self.last_ok = time.monotonic()
        self.timeout = self.base_timeout
        return "connected"

    def frame(self, status: str, width: int, height: int | None) -> RenderableType:
        snap = self.snap or Snapshot(time=0.0, namespace=self.settings.redis.namespace)
        return render(snap, status=status, width=width, height=height, source=self.source)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.swarm.aclose()


async def run_monitor(
    settings: Settings,
    *,
    refresh: float = 1.0,
    once: bool = False,
    console: Console | None = None,
    timeout: float | None = None,
) -> None:
    """Redraw the dashboard every ``refresh`` seconds until interrupted.

    On a terminal the frame is redrawn in place and fitted to the terminal's
    height; otherwise (a pipe, a file) each frame is printed after the previous
    one. ``once`` prints a single frame, taken from two snapshots ``refresh``
    apart so that it has rates; with ``once``, Redis being down is an error.
    """
    console = console or Console()
    timeout = timeout if timeout is not None else max(1.0, 2 * refresh)
    if once:
        async with Swarm(settings) as swarm:
            reader = swarm.transport.stats
            first = await collect(reader)
            await asyncio.sleep(refresh)
            snap = await collect(reader, first)
        source = f"{settings.redis.namespace} @ {settings.redis.redacted_url}"
        console.print(render(snap, width=console.width, source=source))
        return
    mon = Monitor(settings, timeout)
    try:
        if console.is_terminal:
            with Live(console=console, auto_refresh=False, redirect_stderr=False) as live:
                while True:
                    started = time.monotonic()
                    status = await mon.refresh()
                    live.update(mon.frame(status, console.width, console.height - 1), refresh=True)
                    await asyncio.sleep(max(0.0, refresh - (time.monotonic() - started)))
        else:
            while True:
                started = time.monotonic()
                status = await mon.refresh()
                console.print(mon.frame(status, console.width, None))
                await asyncio.sleep(max(0.0, refresh - (time.monotonic() - started)))
    finally:
        await mon.aclose()
