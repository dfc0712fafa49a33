"""EphemeralWorker: claims tasks of one or more specs and runs a handler on them.

The worker is a small state machine (starting, idle, busy, draining, stopped).
``step()`` does one blocking batched read and dispatches what it got; ``run()``
is a thin driver around it plus four background loops:

- leases: renews the entries this worker owns, so a long handler is never robbed;
- reclaim: XAUTOCLAIMs entries of dead workers (and retries whose backoff passed);
- flusher: records findings and acks in batches, one Lua call per spec;
- upkeep: heartbeat with state, stream trimming, pruning of dead consumers.

Executing a task (``worker.execution``) stays apart from reading and acking.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from swarmstream.handlers.base import CallableHandler, Handler, as_handler
from swarmstream.keys import Keys, validate_name
from swarmstream.models import Task, WorkerInfo, WorkerState, worker_name
from swarmstream.settings import Settings
from swarmstream.transport.connection import connect, server_version
from swarmstream.transport.registry import Registry
from swarmstream.transport.streams import Completion, Entry, Streams
from swarmstream.worker.execution import TRANSIENT, ContextProvider, Execution, Outcome

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Owned:
    """An entry this worker owns in a group's pending list."""

    entry: Entry
    job: asyncio.Task[None] | None = None
    task_id: str | None = None

    def note(self, task: Task) -> None:
        """Called once the entry is decoded: remember which task it carries."""
        self.task_id = task.id


@dataclass(frozen=True, slots=True)
class WorkerSummary:
    """What a worker did, returned by run()."""

    name: str
    done: int
    failed: int
    dead: int
    retried: int
    reclaimed: int
    lost: int
    released: int


class EphemeralWorker:
    """A worker that forgets everything between tasks; Redis remembers for it."""

    def __init__(
        self,
        specs: Sequence[str] | str,
        handler: Handler | Callable[..., Any],
        settings: Settings | None = None,
        *,
        name: str | None = None,
        client: Redis | None = None,
        context: ContextProvider | None = None,
    ) -> None:
        self.specs = [specs] if isinstance(specs, str) else list(specs)
        if not self.specs:
            raise ValueError("a worker needs at least one spec")
        for spec in self.specs:
            validate_name("spec", spec)
        self.settings = settings or Settings()
        self.cfg = self.settings.worker
        self.handler = as_handler(handler)
        self.name = name or worker_name()
        self.keys = Keys(self.settings.redis.namespace)
        self.state = WorkerState.STARTING
        self._client = client
        self._own_client = client is None
        self._context = context
        self._owned: dict[tuple[str, str], _Owned] = {}
        self._running = 0
        self._dispatched = 0
        self._buffer: dict[str, list[Completion]] = defaultdict(list)
        self._flush_wanted = asyncio.Event()
        self._flushing = 0  # flushes in flight
        self._slot_free = asyncio.Event()
        self._stop = asyncio.Event()
        self._closing = asyncio.Event()
        self._force = False
        self._last_activity = time.monotonic()
        self._counts: dict[str, int] = defaultdict(int)
        self._started = time.time()
        self._busy_since: float | None = None
        self._failures = 0
        self.streams: Streams
        self.registry: Registry
        self.execution: Execution

    # -- public API --------------------------------------------------------

    def stop(self, force: bool = False) -> None:
        """Drain: stop reading, finish in-flight tasks within the grace period."""
        self._force = self._force or force
        if self.state not in (WorkerState.STOPPED,):
            self.state = WorkerState.DRAINING
        self._stop.set()
        self._slot_free.set()

    async def run(self) -> WorkerSummary:
        """Run until stopped (signal, once, max_tasks, idle_exit); returns a summary."""
        await self._start()
        loops = [
            asyncio.create_task(self._supervised(body), name=body.__name__)
            for body in (self._leases_loop, self._reclaim_loop, self._flush_loop, self._upkeep_loop)
        ]
        try:
            while not self._stop.is_set():
                try:
                    await self.step()
                    self._failures = 0
                except TRANSIENT as exc:
                    await self._backoff("read", exc)
                self._check_exit()
        finally:
            await self._shutdown(loops)
        return self.summary()

    async def step(self) -> int:
        """One iteration: wait for a free slot, read a batch, dispatch it."""
        count = await self._free_slots()
        if count == 0 or self._stop.is_set():
            return 0
        entries = await self.streams.read(self.specs, self.name, count, int(self.cfg.block * 1000))
        for entry in entries:
            self._dispatch(entry)
        if entries:
            # Let the new jobs take their first step (a quick handler finishes and
            # sends its finding) before this loop sends its next blocking read.
            await asyncio.sleep(0)
        return len(entries)

    def summary(self) -> WorkerSummary:
        c = self._counts
        return WorkerSummary(
            self.name,
            c["done"],
            c["failed"],
            c["dead"],
            c["retried"],
            c["reclaimed"],
            c["lost"],
            c["released"],
        )

    def info(self) -> WorkerInfo:
        """This worker's state as published with its heartbeat."""
        current = tuple(o.task_id for o in self._owned.values() if o.job and o.task_id)
        return WorkerInfo(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            specs=tuple(self.specs),
            state=self.state,
            concurrency=self.cfg.concurrency,
            current=current,
            busy_since=self._busy_since,
            done=self._counts["done"],
            failed=self._counts["failed"] + self._counts["dead"],
            started=self._started,
            heartbeat=time.time(),
        )

    # -- start and stop ----------------------------------------------------

    async def _start(self) -> None:
        if self._client is None:
            self._client = connect(self.settings.redis, client_name=f"swarmstream:{self.name}")
        await server_version(self._client, self.settings.redis)
        self.streams = Streams(self._client, self.keys, self.settings.retention)
        self.registry = Registry(self._client, self.keys)
        self._pool = ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="handler")
        if isinstance(self.handler, CallableHandler):
            self.handler.use_pool(self._pool)
        if self._context is None:
            from swarmstream.shard.borrow import ContextCache
            from swarmstream.transport.shards import ShardStore

            self._context = ContextCache(ShardStore(self._client, self.keys))
        self.execution = Execution(
            self.handler, self.streams, self.name, self.settings, self._context, self._counts
        )
        for spec in self.specs:
            await self.streams.ensure_group(spec)
        self.state = WorkerState.IDLE
        await self.registry.heartbeat(self.info(), self.cfg.heartbeat_ttl)
        log.info("worker %s started on %s", self.name, ", ".join(self.specs))

    async def _shutdown(self, loops: list[asyncio.Task[None]]) -> None:
        self.state = WorkerState.DRAINING
        with contextlib.suppress(*TRANSIENT):
            await self.registry.heartbeat(self.info(), self.cfg.heartbeat_ttl)
        jobs = [o.job for o in self._owned.values() if o.job is not None and not o.job.done()]
        late = await self._wait_jobs(jobs, time.monotonic() + self.cfg.grace)
        for job in late:
            job.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        self._flush_wanted.set()
        await self._drain_flush(deadline=time.monotonic() + 10)
        self._closing.set()
        self._flush_wanted.set()
        _, stuck = await asyncio.wait(loops, timeout=5)
        for loop in stuck:
            loop.cancel()
        await self._release_all()
        with contextlib.suppress(*TRANSIENT):
            await self.registry.unregister(self.name)
            for spec in self.specs:
                await self.streams.prune_consumer(spec, self.name)
        self.state = WorkerState.STOPPED
        self._pool.shutdown(wait=False, cancel_futures=True)
        close = getattr(self.handler, "close", None)  # optional: release what it holds
        if callable(close):
            try:
                closing = close()
                if inspect.isawaitable(closing):
                    await closing
            except Exception:
                log.exception("worker %s: closing handler %s failed", self.name, self.handler.name)
        if self._own_client and self._client is not None:
            await self._client.aclose()
        log.info("worker %s stopped: %s", self.name, self.summary())

    async def _wait_jobs(
        self, jobs: list[asyncio.Task[None]], deadline: float
    ) -> set[asyncio.Task[None]]:
        """Wait for in-flight jobs until the grace deadline or a forced stop."""
        pending = set(jobs)
        while pending and not self._force and time.monotonic() < deadline:
            step = min(0.25, deadline - time.monotonic())
            _, pending = await asyncio.wait(pending, timeout=max(step, 0.001))
        return pending

    async def _release_all(self) -> None:
        """Give back whatever this worker still owns, for immediate reclaim."""
        by_spec: dict[str, list[str]] = defaultdict(list)
        for (spec, entry_id), owned in list(self._owned.items()):
            if owned.job is None or owned.job.done():
                by_spec[spec].append(entry_id)
        idle_ms = int(self.cfg.claim_idle * 1000)
        for spec, ids in by_spec.items():
            with contextlib.suppress(*TRANSIENT):
                self._counts["released"] += await self.streams.release(
                    spec, self.name, ids, idle_ms
                )
        self._owned.clear()

    def _check_exit(self) -> None:
        limit = 1 if self.cfg.once else self.cfg.max_tasks
        if limit is not None and self._dispatched >= limit and not self._owned:
            self.stop()
        idle = self.cfg.idle_exit
        quiet = time.monotonic() - self._last_activity
        if idle is not None and not self._owned and quiet >= idle:
            log.info("worker %s idle for %.1fs, exiting", self.name, idle)
            self.stop()

    # -- reading and dispatching -------------------------------------------

    async def _free_slots(self) -> int:
        limit = 1 if self.cfg.once else self.cfg.max_tasks
        while not self._stop.is_set():
            free = self.cfg.concurrency - self._running
            if limit is not None:
                free = min(free, limit - self._dispatched)
                if free <= 0 and not self._owned:
                    return 0
            if free > 0:
                return free
            self._slot_free.clear()
            await self._slot_free.wait()
        return 0

    def _dispatch(self, entry: Entry) -> None:
        key = (entry.spec, entry.entry_id)
        if key in self._owned:
            return  # our own entry, reclaimed after a missed renewal: already running
        owned = _Owned(entry)
        self._owned[key] = owned
        if self._stop.is_set():
            return  # read after drain began: released at shutdown, never started
        self._running += 1
        self._dispatched += 1
        self._last_activity = time.monotonic()
        if self._busy_since is None:
            self._busy_since = time.time()
        self.state = WorkerState.BUSY
        owned.job = asyncio.create_task(self._execute(owned))

    async def _execute(self, owned: _Owned) -> None:
        entry = owned.entry
        try:
            await self._settle(entry, await self.execution.run(entry, owned.note))
        except asyncio.CancelledError:
            pass  # lease lost or shutdown: the entry is released or already taken
        except TRANSIENT as exc:
            log.warning(
                "entry %s: Redis unavailable while settling (%s); left for reclaim",
                owned.task_id or entry.entry_id,
                exc,
            )
        finally:
            self._running -= 1
            self._last_activity = time.monotonic()
            if self._running == 0:
                self._busy_since = None
                if self.state is WorkerState.BUSY:
                    self.state = WorkerState.IDLE
            self._slot_free.set()

    # -- background loops --------------------------------------------------

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

    async def _settle(self, entry: Entry, outcome: Completion | Outcome) -> None:
        """Route an execution outcome: a completion is recorded, right away or batched
        behind a write in flight; anything else was settled by the execution."""
        if not isinstance(outcome, Completion):
            if not outcome.counted:
                self._dispatched -= 1
            self._owned.pop((entry.spec, entry.entry_id), None)
            return
        self._buffer[entry.spec].append(outcome)
        if self._flushing or self._stop.is_set():
            self._flush_wanted.set()  # batched by the flush loop
        else:
            await self._flush_now()

    async def _flush_now(self) -> None:
        """Record the buffer right away, in the finishing task's own turn: when no
        flush is in flight, a finding goes out without a hop to the flush loop (one
        event-loop turn less on every task's latency); under load, completions
        pile up meanwhile and the flush loop records them in batches. It is counted
        in ``_flushing`` before its first await, so the jobs finishing in the same
        turn see it and batch up behind it."""
        self._flushing += 1
        try:
            await self._flush_once()
        except TRANSIENT:
            self._flush_wanted.set()  # the flush loop retries with backoff
        finally:
            self._flushing -= 1
            if any(self._buffer.values()):
                # completions that arrived meanwhile, or a batch put back because this
                # job was cancelled mid-write (the Lua step is idempotent and fenced,
                # so writing it again is safe)
                self._flush_wanted.set()

    async def _flush_loop(self) -> None:
        while not self._closing.is_set():
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            self._flushing += 1
            try:
                await self._flush_once()
            except TRANSIENT as exc:
                await self._backoff("flush", exc)
                self._flush_wanted.set()
            finally:
                self._flushing -= 1

    async def _flush_once(self) -> None:
        batch, self._buffer = self._buffer, defaultdict(list)
        try:
            for spec in list(batch):
                items = batch[spec]
                try:
                    results = await self.streams.complete(spec, self.name, items)
                except TRANSIENT:
                    raise
                except Exception:
                    # Not a connection problem: retrying would fail the same way. The
                    # entries stay pending in Redis and are released for another try.
                    log.exception("recording %d findings on %s failed", len(items), spec)
                    del batch[spec]
                    continue
                self.execution.account(spec, items, results, self._owned)
                del batch[spec]
        finally:
            for spec, items in batch.items():  # put back what was not written
                self._buffer[spec][:0] = items
            self._slot_free.set()

    async def _drain_flush(self, deadline: float) -> None:
        while any(self._buffer.values()) and time.monotonic() < deadline:
            try:
                await self._flush_once()
            except TRANSIENT as exc:
                await self._backoff("flush", exc)

    async def _leases_loop(self) -> None:
        while not await self._pause(self.cfg.lease_every):
            try:
                await self._renew_leases()
            except TRANSIENT as exc:
                log.warning("lease renewal failed (%s); retrying", exc)

    async def _renew_leases(self) -> None:
        by_spec: dict[str, list[str]] = defaultdict(list)
        for spec, entry_id in self._owned:
            by_spec[spec].append(entry_id)
        for spec, ids in by_spec.items():
            for entry_id in await self.streams.renew(spec, self.name, ids):
                owned = self._owned.pop((spec, entry_id), None)
                if owned is None:
                    continue
                self._counts["lost"] += 1
                log.warning("lease on %s/%s lost to another worker; cancelling", spec, entry_id)
                if owned.job is not None and not owned.job.done():
                    owned.job.cancel()

    async def _reclaim_loop(self) -> None:
        cursors = dict.fromkeys(self.specs, "0-0")
        min_idle = int(self.cfg.claim_idle * 1000)
        while not await self._pause(self.cfg.reclaim_every):
            for spec in self.specs:
                free = self.cfg.concurrency - self._running
                if free <= 0 or self._stop.is_set():
                    break
                try:
                    nxt, entries = await self.streams.reclaim(
                        spec, self.name, min_idle, cursors[spec], free
                    )
                except TRANSIENT as exc:
                    log.warning("reclaim on %s failed (%s)", spec, exc)
                    continue
                cursors[spec] = nxt
                for entry in entries:
                    self._counts["reclaimed"] += 1
                    log.info(
                        "reclaimed %s/%s (delivery %d)", spec, entry.entry_id, entry.deliveries
                    )
                    self._dispatch(entry)

    async def _upkeep_loop(self) -> None:
        next_trim = next_prune = time.monotonic()
        while not self._closing.is_set():
            try:
                await self.registry.heartbeat(self.info(), self.cfg.heartbeat_ttl)
                now = time.monotonic()
                if now >= next_trim:
                    next_trim = now + self.cfg.trim_interval
                    for spec in self.specs:
                        await self.streams.trim(spec)
                if now >= next_prune:
                    next_prune = now + max(30.0, self.cfg.claim_idle)
                    await self._prune_dead_consumers()
            except TRANSIENT as exc:
                log.warning("upkeep failed (%s); retrying", exc)
            await self._pause(self.cfg.heartbeat_interval)

    async def _prune_dead_consumers(self) -> None:
        """Remove consumers of dead workers that own nothing any more."""
        live = await self.registry.live_names()
        stale_ms = 2 * self.cfg.claim_idle * 1000
        for spec in self.specs:
            for c in await self.streams.consumers(spec):
                if c["name"] in live or c["name"] == self.name:
                    continue
                stale = c["pending"] == 0 and c["idle"] > stale_ms
                if stale and await self.streams.prune_consumer(spec, c["name"]):
                    log.info("pruned dead consumer %s from %s", c["name"], spec)

    async def _backoff(self, what: str, exc: BaseException) -> None:
        """Wait before retrying after a transient Redis failure (or until stopped)."""
        self._failures += 1
        delay = min(5.0, 0.05 * 2 ** min(self._failures, 7))
        log.warning("%s: Redis unavailable (%s); retrying in %.2fs", what, exc, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
