"""Keeping what a worker owns, and only that: lease renewal, reclaim of dead
workers' entries, recovery of entries delivered by a read whose reply was lost, and
pruning of dead workers' consumers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from swarmstream.settings import WorkerSettings
from swarmstream.transport.registry import Registry
from swarmstream.transport.streams import Entry, Streams
from swarmstream.worker.hooks import Hooks, LeaseKind
from swarmstream.worker.ledger import Ledger, Owned

log = logging.getLogger(__name__)

#: most entries of one spec looked at in a worker's own pending list per recovery
RECOVER_COUNT = 1000


class Leases:
    """Renews, reclaims and recovers entries for one worker."""

    def __init__(
        self,
        streams: Streams,
        ledger: Ledger,
        name: str,
        specs: list[str],
        cfg: WorkerSettings,
        hooks: Hooks,
        dispatch: Callable[[Entry], None],
        paused: Callable[[str], bool] = lambda spec: False,
    ) -> None:
        self.streams = streams
        self.ledger = ledger
        self.name = name
        self.specs = specs
        self.cfg = cfg
        self.hooks = hooks
        self.dispatch = dispatch
        self.paused = paused  # a spec paused by its budget: nothing of it is reclaimed

    async def renew(self) -> None:
        """Renew every entry with something behind it; drop those taken or acked."""
        for spec, ids in self.ledger.renewable().items():
            taken, gone = await self.streams.renew(spec, self.name, ids)
            self.hooks.lease(LeaseKind.RENEWED, spec, len(ids) - len(taken) - len(gone))
            for entry_id in taken:
                owned = self.ledger.forget((spec, entry_id))
                if owned is None:
                    continue
                self.hooks.lease(LeaseKind.LOST, spec)
                log.warning("lease on %s/%s lost to another worker; cancelling", spec, entry_id)
                if owned.job is not None and not owned.job.done():
                    owned.job.cancel()
            for entry_id in gone:
                owned = self.ledger.get((spec, entry_id))
                if owned is None or owned.writing:
                    continue  # our own finding acked it (its result is being booked)
                self.ledger.forget((spec, entry_id))
                self.hooks.lease(LeaseKind.LOST, spec)
                log.info("%s/%s was acked elsewhere while it ran; cancelling", spec, entry_id)
                if owned.job is not None and not owned.job.done():
                    owned.job.cancel()

    async def reclaim(self, free: Callable[[], int]) -> None:
        """One reclaim round over the specs while slots are free (``reclaim.lua``:
        due entries first; one worker per reclaim interval scans for them)."""
        min_idle = int(self.cfg.claim_idle * 1000)
        for spec in self.specs:
            count = free()
            if count <= 0:
                break
            if self.paused(spec):
                continue
            entries = await self.streams.reclaim(
                spec, self.name, min_idle, count, self.cfg.reclaim_every_ms
            )
            self.hooks.lease(LeaseKind.RECLAIMED, spec, len(entries))
            for entry in entries:
                log.info("reclaimed %s/%s (delivery %d)", spec, entry.entry_id, entry.deliveries)
                self.dispatch(entry)

    async def recover(self) -> int:
        """Run the entries the group delivered to this worker that it does not hold
        (a read whose reply was lost with a connection), at once and without spending
        an attempt: they would otherwise wait ``claim_idle`` for a reclaim."""
        total = 0
        for spec in self.specs:
            found = 0
            pending = await self.streams.own_pending(spec, self.name, RECOVER_COUNT)
            strays = self.ledger.strays(spec, pending, len(pending) < RECOVER_COUNT)
            if not strays:
                continue
            fields = await self.streams.entries(spec, strays)
            deliveries = dict(pending)
            for entry_id in strays:
                if entry_id not in fields:  # deleted meanwhile: reclaim.lua records it
                    self.ledger.deferred.add((spec, entry_id))
                    continue
                found += 1
                log.info("recovered %s/%s, delivered by a lost reply", spec, entry_id)
                self.dispatch(Entry(spec, entry_id, fields[entry_id], deliveries[entry_id]))
            self.hooks.lease(LeaseKind.RECOVERED, spec, found)
            total += found
        return total

    async def prune_dead(self, registry: Registry, every: float) -> None:
        """Remove consumers of dead workers that own nothing any more: done for each
        spec by one worker per ``every`` seconds (the others skip it at once)."""
        stale_ms = 2 * self.cfg.claim_idle * 1000
        for spec in self.specs:
            if not await self.streams.chore_due(spec, "prune", int(every * 1000), self.name):
                continue
            candidates = [
                c["name"]
                for c in await self.streams.consumers(spec)
                if c["name"] != self.name and c["pending"] == 0 and c["idle"] > stale_ms
            ]
            live = await registry.alive(candidates)
            for name in candidates:
                if name not in live and await self.streams.prune_consumer(spec, name):
                    log.info("pruned dead consumer %s from %s", name, spec)

    async def release_all(self, exhausted: Callable[[Owned, int], Awaitable[None]]) -> None:
        """Give back everything this worker still has in its pending lists (entries it
        owns but will not finish, and any a lost reply delivered), for immediate
        reclaim. An entry released as often as its max_attempts is handed to
        ``exhausted`` (with its release count) instead, to be dead-lettered."""
        for spec in self.specs:
            after: str | None = None  # released entries stay listed under this worker
            while page := await self.streams.own_pending(spec, self.name, RECOVER_COUNT, after):
                await self._release_page(spec, page, exhausted)
                after = page[-1][0]
                if len(page) < RECOVER_COUNT:
                    break
        self.ledger.owned.clear()

    async def _release_page(
        self,
        spec: str,
        pending: list[tuple[str, int]],
        exhausted: Callable[[Owned, int], Awaitable[None]],
    ) -> None:
        """Release one page of this worker's pending entries of ``spec``."""
        idle_ms = int(self.cfg.claim_idle * 1000)
        items: list[tuple[str, int]] = []
        for entry_id, _ in pending:
            if (spec, entry_id) in self.ledger.deferred:
                continue  # a retry waiting for its backoff: left as it is
            owned = self.ledger.get((spec, entry_id))
            started = owned is not None and owned.started
            items.append((entry_id, owned.max_attempts if owned and started else 0))
        results = await self.streams.release(spec, self.name, items, idle_ms)
        self.hooks.lease(LeaseKind.RELEASED, spec, sum(1 for r in results if r == 1))
        for (entry_id, _), result in zip(items, results, strict=True):
            owned = self.ledger.get((spec, entry_id))
            if result < 0 and owned is not None:
                await exhausted(owned, -result)
