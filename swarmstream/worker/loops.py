"""The background side of a worker: its loops (leases, reclaim, flush, upkeep), the
heartbeat, backoff after a transient failure, and the grace period's clock.

A mixin of ``EphemeralWorker`` (``worker.py``): the attributes below are the
worker's, set in its ``__init__`` and ``_start``. Loops end on the ``_closing`` flag
rather than on cancellation, so a cancellation never lands in a Redis reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from swarmstream.models import WorkerInfo
from swarmstream.settings import WorkerSettings
from swarmstream.transport.registry import Registry
from swarmstream.transport.streams import Streams
from swarmstream.worker.execution import TRANSIENT
from swarmstream.worker.flusher import Flusher
from swarmstream.worker.gate import BudgetGate
from swarmstream.worker.leases import Leases
from swarmstream.worker.readahead import ReadAhead

log = logging.getLogger(__name__)
#: what may end a cleanup step at exit: Redis away, or the grace period over
TRANSIENT_OR_LATE: tuple[type[BaseException], ...] = (*TRANSIENT, TimeoutError)


class BackgroundLoops:
    """The loops, heartbeat, backoff and grace clock of an ``EphemeralWorker``."""

    name: str
    specs: list[str]
    cfg: WorkerSettings
    streams: Streams
    registry: Registry
    leases: Leases
    flusher: Flusher
    gate: BudgetGate
    ahead: ReadAhead
    _closing: asyncio.Event
    _stop: asyncio.Event
    _running: int
    _failures: int
    _deadline: float | None

    def info(self) -> WorkerInfo:
        raise NotImplementedError  # EphemeralWorker.info

    async def _heartbeat(self) -> None:
        """Publish the worker's state; its round trip is a sample of the distance to
        Redis for the read-ahead (a small command: no transfer in it)."""
        sent = time.monotonic()
        await self.registry.heartbeat(self.info(), self.cfg.heartbeat_ttl)
        self.ahead.round_trip(time.monotonic() - sent)

    def _past_grace(self) -> bool:
        """True once a stop's grace period is over: pending writes give up."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _left(self) -> float:
        """Seconds left of the grace period (a little at least, for cleanup)."""
        if self._deadline is None:
            return self.cfg.grace
        return max(0.05, self._deadline - time.monotonic())

    async def _supervised(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop; an unexpected error is logged and the loop restarted,
        so a bug can never silently stop leases, reclaims or flushes."""
        while not self._closing.is_set():
            try:
                await body()
            except Exception:
                log.exception("worker %s: %s failed; restarting it", self.name, body.__name__)
                await self._pause(1.0)

    async def _pause(self, seconds: float) -> bool:
        """Sleep between rounds of a background loop; True when the loop should end.

        Loops end on this flag rather than on cancellation, so a cancellation can
        never land in the middle of a Redis reply."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
        return self._closing.is_set()

    async def _drain_flush(self) -> None:
        """Write the queued findings before exiting, until the grace period is over;
        what is not written by then stays pending in Redis for another worker."""
        while self.flusher and not self._past_grace():
            try:
                async with asyncio.timeout(self._left()):
                    await self.flusher.once()
            except TRANSIENT_OR_LATE as exc:
                await self._backoff("flush", exc, until_grace=True)

    async def _flush_loop(self) -> None:
        await self.flusher.loop(self._closing, self._backoff)

    async def _leases_loop(self) -> None:
        while not await self._pause(self.cfg.lease_every):
            try:
                await self.leases.renew()
            except TRANSIENT as exc:
                log.warning("lease renewal failed (%s); retrying", exc)

    async def _reclaim_loop(self) -> None:
        while not await self._pause(self.cfg.reclaim_every):
            if self._stop.is_set():
                continue
            try:
                await self.leases.reclaim(lambda: self.cfg.concurrency - self._running)
            except TRANSIENT as exc:
                log.warning("reclaim failed (%s)", exc)

    async def _upkeep_loop(self) -> None:
        next_trim = next_prune = time.monotonic()
        while not self._closing.is_set():
            try:
                await self._heartbeat()
                await self.gate.refresh()
                now = time.monotonic()
                if now >= next_trim:  # one worker per interval trims each spec
                    next_trim = now + self.cfg.trim_interval
                    trim_ms = int(self.cfg.trim_interval * 1000)
                    for spec in self.specs:
                        await self.streams.trim(spec, trim_ms)
                if now >= next_prune:
                    prune_every = max(30.0, self.cfg.claim_idle)
                    next_prune = now + prune_every
                    await self.leases.prune_dead(self.registry, prune_every)
            except TRANSIENT as exc:
                log.warning("upkeep failed (%s); retrying", exc)
            await self._pause(self.cfg.heartbeat_interval)

    async def _backoff(self, what: str, exc: BaseException, until_grace: bool = False) -> None:
        """Wait before retrying after a transient Redis failure (or until stopped)."""
        self._failures += 1
        delay = min(5.0, 0.05 * 2 ** min(self._failures, 7))
        if until_grace:
            delay = min(delay, self._left())
            await asyncio.sleep(delay)
            return
        log.warning("%s: Redis unavailable (%s); retrying in %.2fs", what, exc, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
