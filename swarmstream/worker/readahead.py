"""Read-ahead: entries a worker reads beyond its free slots, and the reads in flight.

A worker far from Redis would leave its slots idle for a round trip per read if it
only read for free slots: at most ``concurrency`` tasks per round trip. So it keeps
a local queue of delivered entries not started yet, sized as a bandwidth-delay
product: the rate at which it can complete tasks x the round trip x ``MARGIN``,
capped at ``CAP_SLOTS`` x concurrency and ``CAP``.

- The rate is the lower of what its slots allow (``concurrency`` / mean handler
  time) and what its CPU allows (1 / the process's CPU seconds per completed task,
  handler threads included).
- The round trip is the least of the last few samples: full reads (they did not
  block) and heartbeats (a small command). A big reply's transfer only lengthens a
  sample, so the read-ahead cannot feed itself.

Near Redis a fast worker holds a few dozen entries beyond its slots, so it does not
hoard a swarm's queue; far away, a round trip's worth or two. It is zero until the
timings are known, and while a handler takes longer than ``PATIENCE`` round trips:
slow tasks (an LLM call) get no read-ahead and are left to the other workers of a
swarm. With no read-ahead the worker reads for free slots only, one read at a time
and inline, exactly as without this module.

With read-ahead, up to ``MAX_READS`` reads are in flight at once, each sent as soon
as there is room for ``1/BATCH`` of what may be held, so reading overlaps running
and writing. Queued entries are owned (in the worker's pending list and ``Ledger``,
renewed while queued) but not started: a stop never starts them, and their release
at exit does not spend an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from swarmstream.transport.streams import Entry
from swarmstream.worker.ledger import Ledger, Owned

#: read-ahead = the rate the worker can complete tasks x the round trip x MARGIN
MARGIN = 2.0
#: a smaller read-ahead is none: the reads stay inline (one request at a time near
#: Redis would otherwise pay a read task and its wake-ups for nothing)
MIN_AHEAD = 16
#: most entries read ahead: CAP_SLOTS x concurrency, and never more than CAP
CAP_SLOTS = 64
CAP = 16384
#: no read-ahead while a handler takes longer than PATIENCE read round trips
PATIENCE = 4.0
#: weight of a new sample in the moving averages
ALPHA = 0.25
#: with read-ahead, a read waits until it can ask for 1/BATCH of what may be held
BATCH = 8
#: most reads in flight at once (each one holds a connection: see WARM)
MAX_READS = 2
#: connections opened at start (``warm_up``), the first ones loading hot scripts
WARM = 6
#: round trip samples the round trip is the least of
RTT_SAMPLES = 8
#: tasks completed between two samples of the CPU per task (besides one per read)
SAMPLE = 64

log = logging.getLogger(__name__)

Read = Coroutine[Any, Any, list[Entry]]


class ReadAhead:
    """The queue of delivered, not yet started entries of one worker, its size, and
    the reads in flight (what each delivers is owned in ``ledger`` and queued)."""

    def __init__(
        self,
        concurrency: int,
        ledger: Ledger,
        start: Callable[[Owned], None],
        free: Callable[[], bool],
        wake: Callable[[], None],
        stop: asyncio.Event,
    ) -> None:
        self.concurrency = concurrency
        self.cap = min(CAP_SLOTS * concurrency, CAP)
        self.ledger = ledger
        self.start = start  # runs an entry in a slot
        self.free = free  # True while a slot is free
        self.wake = wake  # a read ended: there may be room for another
        self.stop = stop  # reads in flight are cancelled on a stop
        self.solo = False  # reads may not overlap (specs on several cluster slots)
        self.queue: deque[Owned] = deque()
        self.rtt: float | None = None  # seconds per round trip (``round_trip``)
        self._rtts: deque[float] = deque(maxlen=RTT_SAMPLES)
        self.duration: float | None = None  # seconds per handler
        self.cpu: float | None = None  # process CPU seconds per completed task
        self.completed = 0  # handlers that returned
        #: completed, CPU time: at the last read (None: not yet; start-up is not a task)
        self._sampled: tuple[int, float] | None = None
        self.asked = 0  # entries asked for by the reads in flight
        self.drained = True  # the last read returned less than asked for
        self.reads: set[asyncio.Task[None]] = set()
        self.failure: BaseException | None = None  # of a read, raised by ``check``

    def __len__(self) -> int:
        return len(self.queue)

    def deliver(self, entries: list[Entry]) -> None:
        """Own and queue the entries a read delivered; start them as slots allow (one
        delivered after a stop is never started: it is released at exit)."""
        for entry in entries:
            owned = self.ledger.add(entry)
            if owned is not None and not self.stop.is_set():
                owned.queued = True
                self.queue.append(owned)
        self.start_queued()

    def start_queued(self) -> None:
        """Start queued entries, in delivery order, while slots are free (never after
        a stop: they are released at exit without spending an attempt)."""
        while self.queue and self.free() and not self.stop.is_set():
            owned = self.queue.popleft()
            owned.queued = False
            if self.ledger.get(owned.key) is owned:  # else its lease was lost meanwhile
                self.start(owned)

    def target(self) -> int:
        """Entries to hold beyond the slots (0: read for free slots only)."""
        rtt, duration, cpu = self.rtt, self.duration, self.cpu
        if rtt is None or duration is None or cpu is None or duration > PATIENCE * rtt:
            return 0
        rate = min(self.concurrency / max(duration, 1e-6), 1 / max(cpu, 1e-6))
        ahead = min(self.cap, int(rate * rtt * MARGIN))
        return ahead if ahead >= MIN_AHEAD else 0  # a few entries: not worth a read task

    def want(self, running: int, remaining: int | None, ahead: bool) -> int:
        """How many entries to read now; 0 to wait for a slot, a read or a write.

        ``running``: handlers running; ``remaining``: what ``max_tasks`` still
        allows beyond what was started; ``ahead``: False reads for free slots only."""
        target = self.target() if ahead else 0
        if self.asked and (not target or self.solo or self.drained or len(self.reads) >= MAX_READS):
            return 0
        queued = len(self.queue)
        room = self.concurrency + target - running - queued - self.asked
        # findings not written yet (Redis away?) hold the reading: memory stays bounded
        room = min(room, 2 * (self.concurrency + target) - len(self.ledger) - self.asked)
        if remaining is not None:
            room = min(room, remaining - queued - self.asked)
        if room <= 0:
            return 0
        if (queued or self.asked) and room < (self.concurrency + target) // BATCH:
            return 0  # enough on its way: wait to ask for more at once
        return room

    async def warm_up(self, link: Any, keys: list[str], scripts: list[str]) -> None:
        """Open ``WARM`` connections at once (at start): a read, a write and the
        background loops run side by side under load, and a connection opened then
        costs several round trips (a far worker would stall on it). The first ones
        load the hot path's Lua ``scripts``: a first EVALSHA would otherwise cost
        two more round trips (NOSCRIPT, then the load)."""
        self.solo = len(link.slot_groups(keys)) > 1
        loads = [link.load_script(source) for source in scripts[:WARM]]
        pings = [link.call("PING", key=keys[0]) for _ in range(WARM - len(loads))]
        for failed in await asyncio.gather(*loads, *pings, return_exceptions=True):
            if isinstance(failed, Exception):  # only a head start: the real calls retry
                log.debug("warming connections up: %s", failed)

    def finished(self, since: float) -> None:
        """A handler started at ``since`` (monotonic) returned."""
        self.duration = _ewma(self.duration, time.monotonic() - since)
        self.completed += 1
        if self._sampled is not None and self.completed - self._sampled[0] >= SAMPLE:
            self._sample_cpu()

    def check(self) -> None:
        """Raise what the last failed read raised (the worker backs off)."""
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure

    def send(self, read: Read, count: int) -> None:
        """Start a read of ``count`` entries; it runs on its own until it delivers."""
        self.asked += count
        task = asyncio.ensure_future(self._run(read, count))
        self.reads.add(task)
        task.add_done_callback(self.reads.discard)

    async def _run(self, read: Read, count: int) -> None:
        sent = time.monotonic()
        job = asyncio.ensure_future(read)
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({job, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not job.done():  # stopped: what the read delivered is released at exit
                return
            try:
                entries = job.result()
            except Exception as exc:
                self.failure = exc
                return
            self.measured(time.monotonic() - sent, count, len(entries))
            self.deliver(entries)
        finally:
            stopped.cancel()
            if not job.done():
                job.cancel()
                with contextlib.suppress(BaseException):
                    await job
            self.asked -= count
            self.wake()

    def _sample_cpu(self) -> None:
        """CPU seconds per task completed since the last sample (the first call, at
        the first read, only marks: start-up is not a task's)."""
        now = time.process_time()
        if self._sampled is None:
            self._sampled = (self.completed, now)
        elif self.completed > self._sampled[0]:
            done, then = self._sampled
            sample = (now - then) / (self.completed - done)
            cpu = self.cpu  # a lower sample is taken at once, a higher one averaged in
            self.cpu = sample if cpu is None or sample < cpu else _ewma(cpu, sample)
            self._sampled = (self.completed, now)

    def measured(self, seconds: float, asked: int, got: int) -> None:
        """A read of ``asked`` entries delivered ``got`` in ``seconds``: sample the
        round trip (a full reply did not block) and the CPU spent per task completed
        since the last read."""
        self._sample_cpu()
        self.drained = got < asked
        if got and got >= asked:  # a full reply did not wait for entries: a round trip
            self.round_trip(seconds)

    def round_trip(self, seconds: float) -> None:
        """A round trip sample: a full read, or a small command (the heartbeat). The
        round trip is the least of the last ``RTT_SAMPLES``: a big reply's transfer
        and parsing, or a busy event loop, only lengthen a sample, and taking them
        for distance would make the read-ahead feed itself."""
        self._rtts.append(seconds)
        self.rtt = min(self._rtts)


def _ewma(old: float | None, sample: float) -> float:
    return sample if old is None else old + ALPHA * (sample - old)
