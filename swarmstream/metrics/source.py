"""Snapshots for the swarm exporter, taken on an event loop in a thread of its own.

HTTP request threads call ``SnapshotSource.get()``. At most one snapshot is in
flight at a time, and a new one is taken at most every ``min_interval`` seconds:
scrapes in between (several Prometheus replicas, a dashboard refreshing) get the
same reading, so Redis sees at most one snapshot (two pipelined round trips) per
interval whatever the number of scrapers. A snapshot that takes longer than
``timeout`` is abandoned and counts as failed, so a scrape never waits much longer
than ``timeout``, and a failed attempt is reused for ``min_interval`` too (scrapers
do not pile retries on a Redis that is struggling). Redis away, refusing or too
slow: the reading says so (``ok`` False, with the error) and keeps the last good
snapshot; the next attempt connects again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass

from redis.exceptions import NoPermissionError

from swarmstream.client import Swarm
from swarmstream.monitor.snapshot import Snapshot, collect
from swarmstream.settings import Settings
from swarmstream.transport.connection import translated

log = logging.getLogger(__name__)

#: a scrape waits this much longer than ``timeout`` for the loop before giving up
SLACK = 1.0


@dataclass(frozen=True, slots=True)
class Reading:
    """What a scrape serves: the latest attempt's outcome and the last good snapshot."""

    #: the last snapshot taken successfully (None before the first)
    snapshot: Snapshot | None
    #: whether the latest attempt succeeded (False: ``snapshot`` is old, if any)
    ok: bool
    error: BaseException | None = None
    #: seconds the latest attempt took (None before the first)
    duration: float | None = None
    #: seconds since ``snapshot`` was taken (this process's clock)
    age: float = 0.0
    snapshots: int = 0  # attempts so far
    errors: int = 0  # failed attempts so far


def summary(error: BaseException) -> str:
    """One line about a failed snapshot."""
    text = (str(error).splitlines() or [""])[0][:500]
    if isinstance(error, TimeoutError) and not text:
        return "no reply in time"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class SnapshotSource:
    """Takes monitor snapshots of one namespace for the exporter's scrapes.

    ``start()`` runs an event loop in a daemon thread; ``get()`` may be called from
    any thread; ``close()`` closes the connection and stops the loop."""

    def __init__(self, settings: Settings, *, min_interval: float = 1.0, timeout: float = 5.0):
        # One retry (a pooled connection that went stale while Redis restarted is
        # replaced at once); longer outages are retried by the next scrape.
        quick = dataclasses.replace(settings.redis, retries=min(settings.redis.retries, 1))
        self.settings = dataclasses.replace(settings, redis=quick)
        self.min_interval = min_interval
        self.timeout = timeout
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._inflight: concurrent.futures.Future[None] | None = None
        self._swarm: Swarm | None = None  # used on the loop only
        self._checked = False
        self._last: Snapshot | None = None
        self._last_at = 0.0  # monotonic time of the last good snapshot
        self._attempt_at: float | None = None  # monotonic end of the latest attempt
        self._ok = False
        self._error: BaseException | None = None
        self._duration: float | None = None
        self._snapshots = 0
        self._errors = 0

    @property
    def namespace(self) -> str:
        return self.settings.redis.namespace

    def start(self) -> SnapshotSource:
        """Start the event loop thread (once)."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._thread = threading.Thread(
                target=self._run, args=(loop,), name="swarmstream-metrics", daemon=True
            )
            self._thread.start()
        return self

    def get(self) -> Reading:
        """The current reading: a new snapshot if the latest attempt is older than
        ``min_interval`` (one at a time: concurrent callers share it)."""
        if self._loop is None:
            raise RuntimeError("SnapshotSource.get() before start()")
        with self._lock:
            fresh = (
                self._attempt_at is not None
                and time.monotonic() - self._attempt_at < self.min_interval
            )
            if not fresh and (self._inflight is None or self._inflight.done()):
                self._inflight = asyncio.run_coroutine_threadsafe(self._take(), self._loop)
            waiting = None if fresh else self._inflight
        if waiting is not None:
            try:
                waiting.result(self.timeout + SLACK)
            except concurrent.futures.TimeoutError:  # the loop itself is stuck
                return dataclasses.replace(
                    self.reading(), ok=False, error=TimeoutError("no snapshot in time")
                )
        return self.reading()

    def reading(self) -> Reading:
        """The latest attempt's outcome, without taking a snapshot."""
        with self._lock:
            return Reading(
                snapshot=self._last,
                ok=self._ok,
                error=self._error,
                duration=self._duration,
                age=time.monotonic() - self._last_at if self._last is not None else 0.0,
                snapshots=self._snapshots,
                errors=self._errors,
            )

    def close(self, timeout: float = 5.0) -> None:
        """Close the Redis connection and stop the loop thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._aclose(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    # -- on the loop --------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _aclose(self) -> None:
        if self._swarm is not None:
            await self._swarm.aclose()

    async def _collect(self) -> Snapshot:
        if self._swarm is None:  # connects lazily: Redis may well be down now
            self._swarm = Swarm(self.settings)
        try:
            if not self._checked:  # version check (and cluster detection) once
                await self._swarm.check()
                self._checked = True
            return await collect(self._swarm.transport.stats, self._last)
        except NoPermissionError as exc:
            raise translated(self.settings.redis, exc) from None

    async def _take(self) -> None:
        started = time.perf_counter()
        try:
            snap = await asyncio.wait_for(self._collect(), self.timeout)
        except Exception as exc:  # the exporter must outlive any failed snapshot
            self._record(None, exc, time.perf_counter() - started)
        else:
            self._record(snap, None, time.perf_counter() - started)

    def _record(self, snap: Snapshot | None, error: BaseException | None, took: float) -> None:
        with self._lock:
            was_ok, first = self._ok, self._attempt_at is None
            self._snapshots += 1
            self._duration = took
            self._attempt_at = time.monotonic()
            self._ok = snap is not None
            self._error = error
            if snap is not None:
                self._last, self._last_at = snap, self._attempt_at
            else:
                self._errors += 1
        if error is not None:
            if was_ok:  # the first attempt's error is the caller's to tell
                log.warning(
                    "swarm snapshot failed (%s): serving swarmstream_up 0 until Redis answers",
                    summary(error),
                )
            log.debug("snapshot failed", exc_info=error)
        elif not was_ok and not first:
            log.warning("Redis answers again: serving swarmstream_up 1")
