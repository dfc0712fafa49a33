"""Recording findings: completions are queued per spec and written in batches, one
``complete.lua`` call per spec per flush.

A finishing job writes its finding itself when no write is in flight (one event-loop
turn less on every task's latency); under load, completions pile up meanwhile and
the flush loop records them in batches. When ``OVERLAP`` of them wait behind a
write in flight (far from Redis), a second write starts at once. A batch that
cannot reach Redis is put back and written again: the Lua step is idempotent and
fenced, so that is always safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

from swarmstream.transport.connection import TRANSIENT
from swarmstream.transport.streams import Completion, Streams
from swarmstream.worker.ledger import Ledger

log = logging.getLogger(__name__)
#: a second write may start while one is in flight once this many completions wait
#: (far from Redis, a round trip's worth of them piles up behind each write)
OVERLAP = 1024
#: most writes in flight at once
MAX_WRITES = 2


class Flusher:
    """The queue of completions of one worker, and its writes."""

    def __init__(
        self,
        streams: Streams,
        name: str,
        ledger: Ledger,
        account: Callable[[str, Sequence[Completion], Sequence[int], Ledger], None],
        written: Callable[[], None],
        check_budget: Callable[[str], bool] = lambda spec: False,
    ) -> None:
        self.streams = streams
        self.name = name
        self.ledger = ledger
        self.account = account
        self.written = written  # called after every flush (frees slots)
        self.check_budget = check_budget  # read the spec's budget back with its batch
        self.buffer: dict[str, list[Completion]] = defaultdict(list)
        self.wanted = asyncio.Event()
        self.flushing = 0  # flushes in flight

    def queued(self) -> int:
        """Completions waiting to be written."""
        return sum(map(len, self.buffer.values()))

    def __bool__(self) -> bool:
        """True while completions wait to be written."""
        return any(self.buffer.values())

    async def add(self, spec: str, item: Completion, batch_only: bool) -> None:
        """Queue a completion; written at once unless a flush is in flight (or
        ``batch_only``), else by the flush loop with whatever joins it meanwhile."""
        self.buffer[spec].append(item)
        if batch_only:
            self.wanted.set()
        elif not self.flushing or (self.flushing < MAX_WRITES and self.queued() >= OVERLAP):
            await self.now()
        else:
            self.wanted.set()

    async def now(self) -> None:
        """Write the queue in this task's turn. Counted in ``flushing`` before its first
        await, so the jobs finishing in the same turn see it and batch up behind it."""
        self.flushing += 1
        try:
            await self.once()
        except TRANSIENT:
            self.wanted.set()  # the flush loop retries with backoff
        finally:
            self.flushing -= 1
            if self:
                # completions that arrived meanwhile, or a batch put back because this
                # job was cancelled mid-write
                self.wanted.set()

    async def loop(
        self, closing: asyncio.Event, backoff: Callable[[str, BaseException], Awaitable[None]]
    ) -> None:
        while not closing.is_set():
            await self.wanted.wait()
            self.wanted.clear()
            self.flushing += 1
            try:
                await self.once()
            except TRANSIENT as exc:
                await backoff("flush", exc)
                self.wanted.set()
            finally:
                self.flushing -= 1

    async def once(self) -> None:
        batch, self.buffer = self.buffer, defaultdict(list)
        try:
            for spec in list(batch):
                items = batch[spec]
                try:
                    check = self.check_budget(spec)
                    results = await self.streams.complete(spec, self.name, items, check)
                except TRANSIENT:
                    raise
                except Exception:
                    # Not a connection problem: retrying would fail the same way. The
                    # entries stay pending in Redis, left for another worker's reclaim.
                    log.exception("recording %d findings on %s failed", len(items), spec)
                    for item in items:
                        self.ledger.defer((spec, item.entry_id))
                    del batch[spec]
                    continue
                self.account(spec, items, results, self.ledger)
                del batch[spec]
        finally:
            for spec, items in batch.items():  # put back what was not written
                self.buffer[spec][:0] = items
            self.written()
