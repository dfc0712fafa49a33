"""EphemeralWorker: claims tasks of one or more specs and runs a handler on them.

The worker is a small state machine (starting, idle, busy, draining, stopped).
``step()`` waits for room and reads a batch: inline for its free slots, or, when
tasks are quick and Redis is far, through a read-ahead (``worker.readahead``).
``run()`` is a thin driver around it plus four background loops
(``worker.loops``):

- leases: renews the entries this worker owns while something is behind them, so
  a long handler is never robbed and a dead job is never kept alive;
- reclaim: takes over entries of dead workers (and retries whose backoff passed);
- flusher: records findings and acks in batches, one Lua call per spec;
- upkeep: heartbeat with state and budgets, and the swarm's chores (trimming,
  pruning dead consumers) when it is this worker's turn.

After any connection failure the worker looks in its own pending list for entries
delivered by a read whose reply was lost, and runs them. A stop cancels the read
in flight; whatever the worker still holds is released for immediate reclaim, all
within the grace period. Executing a task (``worker.execution``) stays apart from
reading and acking; what the worker holds is kept in a ``Ledger``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from swarmstream import codec
from swarmstream.handlers.base import CallableHandler, Handler, as_handler, close_handler
from swarmstream.keys import Keys, validate_name
from swarmstream.models import Status, WorkerInfo, WorkerState, worker_name
from swarmstream.settings import Settings
from swarmstream.transport.protocol import ProtocolRecord
from swarmstream.transport.registry import Registry
from swarmstream.transport.startup import wait_for_redis
from swarmstream.transport.streams import Completion, Entry, Streams
from swarmstream.transport.transport import Transport
from swarmstream.worker.execution import TRANSIENT, ContextProvider, Execution, Outcome, describe
from swarmstream.worker.flusher import Flusher
from swarmstream.worker.gate import BudgetGate
from swarmstream.worker.hooks import Hooks, WorkerHooks
from swarmstream.worker.leases import Leases
from swarmstream.worker.ledger import Ledger, Owned
from swarmstream.worker.loops import TRANSIENT_OR_LATE, BackgroundLoops
from swarmstream.worker.readahead import ReadAhead

log = logging.getLogger(__name__)


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
    recovered: int = 0


class EphemeralWorker(BackgroundLoops):
    """A worker that forgets everything between tasks; Redis remembers for it."""

    def __init__(
        self,
        specs: Sequence[str] | str,
        handler: Handler | Callable[..., Any],
        settings: Settings | None = None,
        *,
        name: str | None = None,
        transport: Transport | None = None,
        context: ContextProvider | None = None,
        hooks: Sequence[WorkerHooks] = (),
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
        #: what the worker does, told to its hooks (metrics, logs); Tally counts it
        self.hooks = Hooks(hooks)
        self._state = WorkerState.STARTING
        self.transport = transport
        self._own_transport = transport is None
        self._context = context
        self.ledger = Ledger()
        self._running = 0
        self._dispatched = 0
        self._slot_free = asyncio.Event()
        self._stop = asyncio.Event()
        #: delivered entries not started yet, and the reads in flight (``readahead``)
        self.ahead = ReadAhead(
            self.cfg.concurrency,
            self.ledger,
            self._launch,
            lambda: self._running < self.cfg.concurrency,
            self._slot_free.set,
            self._stop,
        )
        self._closing = asyncio.Event()
        self._force = False
        self._deadline: float | None = None  # monotonic end of the grace period
        self._last_activity = time.monotonic()
        self._counts = self.hooks.counts
        self._started = time.time()
        self._busy_since: float | None = None
        self._failures = 0  # consecutive failed reads (backoff)
        self._seen_failures = 0  # the client's connection failures already looked at
        self.streams: Streams
        self.registry: Registry
        self.execution: Execution
        self.leases: Leases
        self.flusher: Flusher
        self.gate: BudgetGate

    @property
    def state(self) -> WorkerState:
        return self._state

    @state.setter
    def state(self, new: WorkerState) -> None:
        old, self._state = self._state, new
        if old is not new:
            self.hooks.state(old, new)

    # -- public API --------------------------------------------------------

    def stop(self, force: bool = False) -> None:
        """Drain: stop reading, finish in-flight tasks within the grace period."""
        self._force = self._force or force
        if self._deadline is None:
            self._deadline = time.monotonic() + self.cfg.grace
        if self.state not in (WorkerState.STOPPED,):
            self.state = WorkerState.DRAINING
        self._stop.set()
        self._slot_free.set()

    async def run(self) -> WorkerSummary:
        """Run until stopped (signal, once, max_tasks, idle_exit); returns a summary.

        Redis not answering at start is waited for (``connect_wait`` bounds it)."""
        try:
            started = await self._start()
        except BaseException:
            if self.transport is not None and self._own_transport:
                await self.transport.aclose()
            raise
        if not started:
            self.state = WorkerState.STOPPED
            return self.summary()
        loops = [
            asyncio.create_task(self._supervised(body), name=body.__name__)
            for body in (self._leases_loop, self._reclaim_loop, self._flush_loop, self._upkeep_loop)
        ]
        try:
            await self._unless_stopped(self._read_loop())
        finally:
            await self._shutdown(loops)
        return self.summary()

    async def _read_loop(self) -> None:
        """Read and dispatch until stopped (``run`` cancels it at a stop: a read that
        waits on a dead connection must not hold up the shutdown)."""
        while not self._stop.is_set():
            try:
                await self.step()
                self._failures = 0
            except TRANSIENT as exc:
                await self._backoff("read", exc)
            await self._recover_if_needed()
            self._check_exit()

    async def step(self) -> int:
        """One iteration: wait for room (free slots, plus read-ahead: ``readahead``),
        send a read; it queues what it delivers, started in order as slots free up."""
        count = await self._free_slots()
        if count == 0 or self._stop.is_set():
            return 0
        specs = self.gate.active()
        if not specs:  # every spec paused by its budget: wait, claim nothing
            if self._running == 0 and self.state is WorkerState.IDLE:
                self.state = WorkerState.PAUSED
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.cfg.block)
            return 0
        if self.state is WorkerState.PAUSED:
            self.state = WorkerState.IDLE
        block = int(self.cfg.block * 1000)
        if not self.ahead.reads and not self.ahead.target():
            # No read-ahead (slow tasks, or near Redis and idle): read inline.
            sent = time.monotonic()
            entries = await self.streams.read(specs, self.name, count, block)
            self.ahead.measured(time.monotonic() - sent, count, len(entries))
            for entry in entries:
                self._dispatch(entry)
            if entries:
                # Let the new jobs take their first step (a quick handler finishes and
                # sends its finding) before this loop sends its next blocking read.
                await asyncio.sleep(0)
            return len(entries)
        self.ahead.send(self.streams.read(specs, self.name, count, block), count)
        return count

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
            c["recovered"],
        )

    def info(self) -> WorkerInfo:
        """This worker's state as published with its heartbeat."""
        current = tuple(o.task_id for o in self.ledger if o.alive and o.task_id)
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

    async def _start(self) -> bool:
        """Connect (waiting for Redis if need be) and join the groups; False if the
        worker was stopped while it waited."""
        if self.transport is None:
            version = await wait_for_redis(
                self.settings.redis,
                wait=self.settings.redis.connect_wait,
                stop=self._stop,
                what=f"worker {self.name}",
            )
            if version is None:
                return False
            self.transport = await Transport.open(self.settings, f"swarmstream:{self.name}")
        self.streams = self.transport.streams
        self.registry = self.transport.registry
        self._pool = ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="handler")
        if isinstance(self.handler, CallableHandler):
            self.handler.use_pool(self._pool)
        if self._context is None:
            from swarmstream.shard.borrow import ContextCache

            self._context = ContextCache(self.transport.shards)
        self.execution = Execution(
            self.handler,
            self.streams,
            self.name,
            self.settings,
            self._context,
            self.hooks,
            give_up=self._past_grace,
        )
        self.gate = BudgetGate(
            self.streams,
            self.transport.budgets,
            self.specs,
            max(1.0, self.cfg.heartbeat_interval),
        )
        self.hooks.add(self.gate)
        self.flusher = Flusher(
            self.streams,
            self.name,
            self.ledger,
            self.execution.account,
            self._slot_free.set,
            self.gate.checking,
        )
        self.leases = Leases(
            self.streams,
            self.ledger,
            self.name,
            self.specs,
            self.cfg,
            self.hooks,
            self._dispatch,
            self.gate.paused,
        )
        await self.streams.ensure_group(self.specs[0])  # a cluster client learns its slots
        # open the connections reads, writes and loops will use side by side, while
        # the start-up's own round trips run (see ReadAhead.warm_up)
        tasks_keys = [self.keys.spec(s).tasks for s in self.specs]
        hot = [self.transport.scripts.source(n) for n in ("complete", "reclaim", "renew")]
        warm = asyncio.ensure_future(self.ahead.warm_up(self.streams.link, tasks_keys, hot))
        try:
            for spec in self.specs[1:]:
                await self.streams.ensure_group(spec)
            await self._check_protocol()
            await self.gate.refresh()
        except BaseException:  # a failed start-up must not leave it opening connections
            warm.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm
            raise
        await warm
        self._seen_failures = self.transport.failures
        self.state = WorkerState.IDLE
        await self._heartbeat()
        log.info("worker %s started on %s", self.name, ", ".join(self.specs))
        return True

    async def _shutdown(self, loops: list[asyncio.Task[None]]) -> None:
        if self._deadline is None:
            self._deadline = time.monotonic() + self.cfg.grace
        self.state = WorkerState.DRAINING
        with contextlib.suppress(*TRANSIENT, TimeoutError):
            async with asyncio.timeout(min(1.0, self._left())):
                await self.registry.heartbeat(self.info(), self.cfg.heartbeat_ttl)
        late = await self._wait_jobs(list(self.ledger.running()))
        for job in late:
            job.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        self.flusher.wanted.set()
        await self._drain_flush()
        self._closing.set()
        self.flusher.wanted.set()
        _, stuck = await asyncio.wait(loops, timeout=min(5.0, self._left()))
        for loop in stuck:
            loop.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        try:
            async with asyncio.timeout(self._left()):
                await self.leases.release_all(self._bury_exhausted)
                await self.registry.unregister(self.name)
                for spec in self.specs:
                    await self.streams.prune_consumer(spec, self.name)
        except TRANSIENT_OR_LATE as exc:
            log.warning("worker %s: cleanup at exit incomplete (%s)", self.name, describe(exc))
        self.state = WorkerState.STOPPED
        self._pool.shutdown(wait=False, cancel_futures=True)
        await close_handler(self.handler)
        if self.transport is not None:
            await (self.transport.aclose() if self._own_transport else self.streams.aclose())
        log.info("worker %s stopped: %s", self.name, self.summary())

    async def _wait_jobs(self, jobs: list[asyncio.Task[None]]) -> set[asyncio.Task[None]]:
        """Wait for in-flight jobs until the grace deadline or a forced stop."""
        pending = set(jobs)
        while pending and not self._force and not self._past_grace():
            step = min(0.25, self._left())
            _, pending = await asyncio.wait(pending, timeout=max(step, 0.001))
        return pending

    async def _bury_exhausted(self, owned: Owned, releases: int) -> None:
        why = "its worker was stopped each time"
        reason = f"released {releases} times without finishing ({why}), max_attempts is"
        await self._bury_owned(owned, f"{reason} {owned.max_attempts}")

    async def _bury_owned(self, owned: Owned, reason: str) -> None:
        """Dead-letter an entry the worker gives up on, with the task's final finding
        when the entry decodes (so that waiters on its id are released)."""
        entry = owned.entry
        try:
            task, wire = codec.decode_task(entry.spec, entry.fields, attempt=entry.deliveries)
        except Exception:
            task, wire = None, codec.wire_of(entry.fields)
        await self.execution.bury(entry, reason, None, task, Status.DEAD, wire)

    def _check_exit(self) -> None:
        limit = 1 if self.cfg.once else self.cfg.max_tasks
        if limit is not None and self._dispatched >= limit and not self.ledger:
            self.stop()
        idle = self.cfg.idle_exit
        quiet = time.monotonic() - self._last_activity
        if idle is not None and not self.ledger and quiet >= idle:
            log.info("worker %s idle for %.1fs, exiting", self.name, idle)
            self.stop()

    # -- reading and dispatching -------------------------------------------

    async def _unless_stopped(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run the read loop, cancelled if the worker is stopped meanwhile (what a
        read in flight may have been delivered is released at exit). Once for the
        whole loop, not per read: that cost two tasks and several event-loop turns
        per request."""
        step = asyncio.ensure_future(coro)
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({step, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not step.done():
            step.cancel()
            with contextlib.suppress(asyncio.CancelledError, *TRANSIENT):
                await step
            return
        step.result()

    async def _check_protocol(self) -> None:
        """Publish the swarm's protocol record, or compare with it (docs/protocol.md)."""
        assert self.transport is not None
        mine = ProtocolRecord.of(self.settings, self.transport.scripts)
        for line in await self.transport.protocol.join(mine):
            log.warning(
                "worker %s: %s (%s; see 'swarmstream protocol')",
                self.name,
                line,
                self.keys.protocol,
            )

    async def _recover_if_needed(self) -> None:
        """After a connection failure, run what a lost reply delivered to this worker."""
        seen = self.transport.failures if self.transport else 0
        if seen == self._seen_failures or self._stop.is_set():
            return
        try:
            await self.leases.recover()
            self._seen_failures = seen
            self.hooks.reconnect()
        except TRANSIENT as exc:
            log.warning("worker %s: looking for lost deliveries failed (%s)", self.name, exc)

    async def _free_slots(self) -> int:
        """Entries to read now (``ReadAhead.want``), waiting for room; 0 on a stop or
        once ``max_tasks`` is reached and nothing is held. Raises a failed read's error."""
        limit = 1 if self.cfg.once else self.cfg.max_tasks
        while not self._stop.is_set():
            self.ahead.check()
            remaining = None if limit is None else limit - self._dispatched
            if remaining is not None and remaining <= 0 and not (self.ledger or self.ahead.asked):
                return 0
            ahead = not self._budgeted() and len(self.gate.active()) == len(self.specs)
            if count := self.ahead.want(self._running, remaining, ahead):
                return count
            self._slot_free.clear()
            await self._slot_free.wait()
        return 0

    def _dispatch(self, entry: Entry) -> None:
        """Start a reclaimed or recovered entry at once."""
        owned = self.ledger.add(entry)
        if owned is None:
            return  # our own entry, reclaimed after a missed renewal: already running
        if self._stop.is_set():
            return  # read after drain began: released at shutdown, never started
        self._launch(owned)

    def _launch(self, owned: Owned) -> None:
        self._running += 1
        self._dispatched += 1
        self._last_activity = time.monotonic()
        if self._busy_since is None:
            self._busy_since = time.time()
        self.state = WorkerState.BUSY
        owned.job = asyncio.create_task(self._execute(owned))
        owned.job.add_done_callback(lambda job: self._job_ended(owned, job))

    async def _execute(self, owned: Owned) -> None:
        since = time.monotonic()
        held = True  # the slot: given back before the finding is written
        try:
            outcome = await self.execution.run(owned)
            self.ahead.finished(since)
            if not self._budgeted():  # with a budget, the spend is booked first
                held = False
                self._free_slot()
            await self._settle(owned, outcome)
        except asyncio.CancelledError:
            pass  # lease lost or shutdown: the entry is released or already taken
        except TRANSIENT as exc:  # gave up writing at the end of the grace period
            log.warning(
                "entry %s: outcome not written (%s); left for reclaim",
                owned.task_id or owned.entry.entry_id,
                exc,
            )
            self.ledger.defer(owned.key)
        except Exception as exc:  # a bug of ours: never leave the entry held
            log.exception("worker %s: entry %s/%s failed", self.name, *owned.key)
            await self._orphan(owned, exc)
        finally:
            if held:
                self._free_slot()

    def _budgeted(self) -> bool:
        """A budget applies: no read-ahead, and a slot is held until its finding is
        written (what was spent is known before more is claimed)."""
        return bool(self.gate.limited) or self.gate.namespace is not None

    def _free_slot(self) -> None:
        """A handler ended: start the next queued entry."""
        self._running -= 1
        self._last_activity = time.monotonic()
        self.ahead.start_queued()
        if self._running == 0:
            self._busy_since = None
            if self.state is WorkerState.BUSY:
                self.state = WorkerState.IDLE
        self._slot_free.set()

    def _job_ended(self, owned: Owned, job: asyncio.Task[None]) -> None:
        """A job that died of an exception is noticed at once: logged, and its entry
        is never renewed again (``_execute`` catches everything; this is the net)."""
        if job.cancelled() or job.exception() is None:
            return
        log.error("worker %s: job of %s/%s died", self.name, *owned.key, exc_info=job.exception())
        if not owned.writing:
            self.ledger.defer(owned.key)

    async def _orphan(self, owned: Owned, exc: BaseException) -> None:
        """Dead-letter an entry whose execution failed inside the worker itself."""
        self.ledger.defer(owned.key)
        try:
            await self._bury_owned(owned, f"worker error while running it: {describe(exc)}")
            self.ledger.deferred.discard(owned.key)
        except Exception:
            log.exception("worker %s: %s/%s left for reclaim", self.name, *owned.key)

    async def _settle(self, owned: Owned, outcome: Completion | Outcome) -> None:
        """Route an execution outcome: a completion is recorded, right away or batched
        behind a write in flight; anything else was settled by the execution."""
        if not isinstance(outcome, Completion):
            if not outcome.counted:
                self._dispatched -= 1
            if outcome.retrying:  # stays pending here until reclaimed: never released
                self.ledger.defer(owned.key)
            else:
                self.ledger.forget(owned.key)
            return
        owned.writing = True
        await self.flusher.add(owned.entry.spec, outcome, batch_only=self._stop.is_set())
