"""Waiting for Redis at start: a long-running process (worker, shard, run, monitor)
started before Redis, or during a failover, retries until it answers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time

from swarmstream.errors import AuthenticationFailed, ConnectionFailed
from swarmstream.settings import RedisSettings
from swarmstream.transport.link import make_link

log = logging.getLogger(__name__)

#: backoff of the wait for Redis at start: base and cap (seconds), jittered
WAIT_BASE, WAIT_CAP = 0.25, 3.0


async def wait_for_redis(
    settings: RedisSettings,
    *,
    wait: float | None,
    stop: asyncio.Event | None = None,
    what: str = "swarmstream",
) -> tuple[int, ...] | None:
    """Wait until Redis answers, for up to ``wait`` seconds (None: as long as it takes).

    Each try is one quick connection (no retries of its own), logged when it fails;
    between tries a capped, jittered backoff. Bad credentials, missing permissions
    and a too old server raise at once; so does a ``wait`` of 0 or a wait that runs
    out (ConnectionFailed). Returns the server version, or None if ``stop`` was set.
    """
    probe = make_link(dataclasses.replace(settings, health_check_interval=0, retries=0))
    started = time.monotonic()
    tries = 0
    try:
        while True:
            tries += 1
            try:
                return await probe.version()
            except ConnectionFailed as exc:
                if isinstance(exc, AuthenticationFailed):
                    raise
                cause = exc.__cause__ or exc.__context__ or exc
                waited = time.monotonic() - started
                if wait is not None and waited >= wait:
                    if tries > 1:
                        raise ConnectionFailed(f"{exc} (waited {waited:.0f}s)") from None
                    raise
                delay = min(WAIT_CAP, WAIT_BASE * 2 ** min(tries, 8)) * random.uniform(0.5, 1.0)
                if wait is not None:
                    delay = max(0.0, min(delay, wait - waited))
                log.warning(
                    "%s: Redis at %s not reachable (%s); try %d, next in %.1fs (%s)",
                    what,
                    settings.redacted_url,
                    str(cause).rstrip(".") or type(cause).__name__,
                    tries,
                    delay,
                    "waiting without limit" if wait is None else f"waiting up to {wait:g}s",
                )
                if stop is None:
                    await asyncio.sleep(delay)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    return None
    finally:
        await probe.aclose()
