"""The worker side of an MCP session: an agent claims tasks and reports their
findings itself.

The session is one consumer of the spec groups (``mcp-<host>-<pid>-<hex>``) and
follows the worker algorithm of docs/protocol.md §6 with the agent as its handler:

- ``claim`` takes an entry through ``reclaim.lua`` (abandoned tasks, retries whose
  backoff passed) or ``XREADGROUP COUNT 1``; a malformed entry, or one delivered more
  than ``max_attempts`` times, is dead-lettered as the worker does, never handed out;
- ``keep`` renews the lease of every held task each lease interval, and gives back a
  task whose session went silent (no tool call for its ``hold`` seconds) or whose
  timeout passed (a failed attempt, as a handler timeout is);
- ``report`` records the finding with ``complete.lua``; ``fail`` retries with
  backoff or buries, as ``worker.execution`` does; a report whose lease was lost is
  refused by Redis and said to be lost, never counted as recorded;
- ``close`` releases what is still held, at once and without spending an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from swarmstream import codec
from swarmstream.errors import (
    ConfigError,
    LeaseLost,
    MalformedEntry,
    SwarmstreamError,
)
from swarmstream.keys import validate_name
from swarmstream.mcp.ledger import Held, Ledger
from swarmstream.mcp.writes import Writes
from swarmstream.models import Status, Task, WorkerInfo, WorkerState, worker_name
from swarmstream.settings import Settings
from swarmstream.transport.protocol import ProtocolRecord
from swarmstream.transport.streams import DUPLICATE, RECORDED, Completion, Entry
from swarmstream.transport.transport import Transport
from swarmstream.usage import PriceTable, normalize
from swarmstream.worker.execution import TRANSIENT, describe

__all__ = ["Desk", "Held"]

log = logging.getLogger(__name__)

#: entries a claim may skip (dead-lettered, or a second entry of a task already held)
MAX_SKIPS = 20
#: own pending entries looked at when recovering a lost reply
RECOVER_COUNT = 1000
#: seconds between two looks at the hold and timeout deadlines
TICK = 0.25
#: the longest hold a claim may ask for (s)
MAX_HOLD = 7 * 86400.0


class Desk:
    """Claims, leases and settles tasks on behalf of one agent session."""

    def __init__(
        self,
        transport: Transport,
        settings: Settings,
        *,
        hold: float = 600.0,
        name: str | None = None,
    ) -> None:
        if not 0 < hold <= MAX_HOLD:
            raise ConfigError(f"hold must be from 0 to {MAX_HOLD:g} seconds, got {hold:g}")
        self.transport = transport
        self.streams = transport.streams
        self.cfg = settings.worker
        self.prices = PriceTable.from_mapping(settings.prices)
        self.hold = hold
        self.name = name or worker_name(f"mcp-{socket.gethostname().split('.')[0]}")
        self.ledger = Ledger()
        self.specs: list[str] = []  # the specs this session claimed from
        self.counts: dict[str, int] = defaultdict(int)
        self.writes = Writes(self.streams, self.name, self.cfg, self.counts)
        self._suspect: set[str] = set()  # specs whose last read may have lost a reply
        self._seen_failures = transport.failures
        self._started = time.time()

    @property
    def held(self) -> dict[str, Held]:
        """The held tasks by task id."""
        return self.ledger.held

    # -- claiming -------------------------------------------------------------

    async def claim(self, spec: str, hold: float | None = None, wait: float = 0.0) -> Held | None:
        """One task of ``spec`` for this session, or None if none came within ``wait``
        seconds. Abandoned tasks and retries that are due come first."""
        validate_name("spec", spec)
        hold = self.hold if hold is None else hold
        if not 0 < hold <= MAX_HOLD:
            raise ConfigError(f"hold must be from 0 to {MAX_HOLD:g} seconds, got {hold:g}")
        if not 0 <= wait <= 3600:
            raise ConfigError(f"wait must be from 0 to 3600 seconds, got {wait:g}")
        if len(self.ledger) >= self.cfg.concurrency:
            raise SwarmstreamError(
                f"this session holds {len(self.ledger)} tasks already, its limit (setting "
                "concurrency): report, fail or release one before claiming another"
            )
        await self.streams.ensure_group(spec)
        if not self.specs:  # the first claim makes this session a worker: join the protocol
            mine = ProtocolRecord.of(self.transport.settings, self.transport.scripts)
            for line in await self.transport.protocol.join(mine):
                log.warning("%s: %s (see 'swarmstream protocol')", self.name, line)
        if spec not in self.specs:
            self.specs.append(spec)
        end = time.monotonic() + wait
        for _ in range(MAX_SKIPS):
            entry = await self._next(spec, max(1, int((end - time.monotonic()) * 1000)))
            if entry is None:
                return None
            held = await self._admit(entry, hold)
            if held is not None:
                return held
        return None

    async def _next(self, spec: str, block_ms: int) -> Entry | None:
        """The next entry to hand out: one delivered by a lost reply, else one due
        for reclaim, else a new one (blocking up to ``block_ms``)."""
        if self.transport.failures != self._seen_failures:  # a reply may have been lost
            self._seen_failures = self.transport.failures
            self._suspect.update(self.specs)
        if spec in self._suspect:
            stray = await self._stray(spec)
            if stray is not None:
                return stray
        min_idle = int(self.cfg.claim_idle * 1000)
        entries = await self.streams.reclaim(
            spec, self.name, min_idle, 1, self.cfg.reclaim_every_ms
        )
        if entries:
            self.counts["reclaimed"] += 1
            return entries[0]
        try:
            got = await self.streams.read([spec], self.name, 1, block_ms)
        except BaseException:  # cancelled or cut off: its reply may have delivered one
            self._suspect.add(spec)
            raise
        return got[0] if got else None

    async def _stray(self, spec: str) -> Entry | None:
        """An entry in this session's pending list that it neither holds nor left
        there on purpose: delivered by a read whose reply was lost (protocol §6.2)."""
        pending = await self.streams.own_pending(spec, self.name, RECOVER_COUNT)
        deferred = self.ledger.deferred
        if len(pending) < RECOVER_COUNT:  # the whole list: forget retries taken since
            listed = {entry_id for entry_id, _ in pending}
            deferred -= {k for k in deferred if k[0] == spec and k[1] not in listed}
        mine = {h.entry.entry_id for h in self.ledger if h.entry.spec == spec}
        for entry_id, deliveries in pending:
            if entry_id in mine or (spec, entry_id) in deferred:
                continue
            fields = await self.streams.entries(spec, [entry_id])
            if entry_id not in fields:  # deleted meanwhile: reclaim.lua records it
                deferred.add((spec, entry_id))
                continue
            self.counts["recovered"] += 1
            log.info("recovered %s/%s, delivered by a lost reply", spec, entry_id)
            return Entry(spec, entry_id, fields[entry_id], deliveries)
        self._suspect.discard(spec)
        return None

    async def _admit(self, entry: Entry, hold: float) -> Held | None:
        """Decode and guard a delivered entry as the worker does: a malformed entry
        or one delivered too often is dead-lettered here (None)."""
        try:
            task, wire = codec.decode_task(
                entry.spec, entry.fields, self.cfg.max_entry_bytes, entry.deliveries
            )
        except MalformedEntry as exc:
            await self.writes.bury_malformed(entry, exc.reason, exc.task_id)
            return None
        except Exception as exc:  # the decoder's contract is MalformedEntry: be safe
            reason = f"undecodable entry ({describe(exc)})"
            await self.writes.bury_malformed(entry, reason, None)
            return None
        if entry.deliveries > task.max_attempts:
            last = await self.writes.write(lambda: self.streams.last_error(entry.spec, task.id))
            error = (last or {}).get("error") or "the worker running it stopped or was killed"
            reason = f"delivered {entry.deliveries} times, max_attempts is {task.max_attempts}"
            await self.writes.bury(entry, reason, str(error), task, Status.DEAD, wire)
            return None
        other = self.held.get(task.id)
        if other is not None:  # a second entry of a task this session holds
            if other.entry.entry_id != entry.entry_id:
                await self.writes.release([(entry, 0)])
            return None
        now = time.monotonic()
        timeout = task.timeout or self.cfg.default_timeout
        held = Held(entry, task, wire, time.time(), hold, now, now + timeout if timeout else None)
        self.ledger.add(held)
        self.counts["claimed"] += 1
        return held

    # -- settling -------------------------------------------------------------

    async def report(
        self,
        task_id: str,
        content: str,
        sources: Sequence[str] = (),
        data: Any = None,
        usage: Any = None,
    ) -> Held:
        """Record the finding of a held task (status ok), with what it spent when the
        session says (priced from the table if it gives no cost). LeaseLost if
        another worker owns the task now: nothing was recorded then."""
        held = self.ledger.take(task_id)
        task = held.task
        spent = normalize(usage) if usage is not None else None
        if spent is not None:
            spent = self.prices.apply(spent)
        try:
            body = codec.finding_body(
                task,
                status=Status.OK.value,
                content=content,
                worker=self.name,
                sources=list(sources),
                usage=spent.to_dict() if spent is not None else None,
                data=data,
                started=held.claimed,
                finished=time.time(),
                wire=held.wire,
            )
            item = Completion(
                held.entry.entry_id,
                task.id,
                task.shard or "",
                Status.OK.value,
                body,
                task.attempt > 1,
                spent,
                attempt=task.attempt,
            )
            (result,) = await self.writes.write(
                lambda: self.streams.complete(task.spec, self.name, [item])
            )
        except BaseException:
            self.ledger.keep(held)  # nothing written (a replay is safe): still ours
            raise
        if result == RECORDED:
            self.counts["done"] += 1
            self.ledger.forget(held, "its finding was recorded")
            return held
        self.counts["lost"] += 1
        if result == DUPLICATE:  # taken over and finished by another worker, or done before
            why = (
                f"lease lost: the task already has a finding, recorded by "
                f"{await self._finisher(task)}; your finding was NOT recorded"
            )
        else:
            why = (
                "lease lost: another worker reclaimed the task (this session's lease "
                "was not renewed in time); your finding was NOT recorded"
            )
        self.ledger.forget(held, why)
        raise LeaseLost(f"task {task_id}: {why}")

    async def _finisher(self, task: Task) -> str:
        """Who recorded a task's finding, for the message of a refused report."""
        try:
            theirs = await self.transport.results.finding(task.spec, task.id)
        except TRANSIENT:
            theirs = None
        if theirs is None:
            return "another worker"
        return f"{theirs.worker or 'another worker'} (attempt {theirs.attempt})"

    async def fail(self, task_id: str, error: str) -> tuple[Held, float | None]:
        """Fail the attempt of a held task: retried after a backoff while attempts
        remain (returns the delay), else dead-lettered as failed (delay None)."""
        held = self.ledger.take(task_id)
        try:
            delay = await self._failed(held, codec.safe_text(error) or "failed")
        except LeaseLost:
            raise
        except BaseException:
            self.ledger.keep(held)  # nothing written: still ours
            raise
        return held, delay

    async def _failed(self, held: Held, error: str) -> float | None:
        """worker.execution's failure path: retry with backoff, or bury as failed."""
        task, entry = held.task, held.entry
        log.info(
            "task %s attempt %d/%d failed: %s", task.id, task.attempt, task.max_attempts, error
        )
        if task.attempt < task.max_attempts:
            delay = await self.writes.retry_later(entry, task, error)
            if delay is None:
                raise self._lost(held)
            self.ledger.deferred.add((entry.spec, entry.entry_id))
            self.ledger.forget(held, f"its attempt {task.attempt} failed and will be retried")
            return delay
        reason = f"failed on all {task.max_attempts} attempts"
        started = held.claimed
        if not await self.writes.bury(
            entry, reason, error, task, Status.FAILED, held.wire, started
        ):
            raise self._lost(held)
        self.ledger.forget(held, f"it failed on all {task.max_attempts} attempts (dead-lettered)")
        return None

    def _lost(self, held: Held) -> LeaseLost:
        """Forget a task whose settling write Redis refused; the error to raise."""
        why = "lease lost: another worker reclaimed the task; nothing was recorded"
        self.counts["lost"] += 1
        self.ledger.forget(held, why)
        return LeaseLost(f"task {held.task.id}: {why}")

    async def release(self, task_id: str) -> Held:
        """Give a held task back for immediate reclaim, without spending an attempt."""
        held = self.ledger.take(task_id)
        try:
            await self._release([held], "this session released it")
        except BaseException:
            self.ledger.keep(held)
            raise
        return held

    async def _release(self, items: Sequence[Held], why: str) -> None:
        """Release held tasks; one released as often as its max_attempts is buried
        instead (the worker's rule for a task no worker ever finishes)."""
        released = await self.writes.release([(h.entry, h.task.max_attempts) for h in items])
        for held in items:
            n = released.get(held.entry.entry_id, 1)
            if n < 0:
                reason = (
                    f"released {-n} times without finishing (its worker or MCP session "
                    f"let it go each time), max_attempts is {held.task.max_attempts}"
                )
                await self.writes.bury(held.entry, reason, None, held.task, Status.DEAD, held.wire)
                self.ledger.forget(held, f"{why}; released too often, it is dead-lettered")
            else:
                self.ledger.forget(held, why)

    # -- leases -------------------------------------------------------------------

    async def keep(self, stopping: asyncio.Event) -> None:
        """Until ``stopping``: renew leases every lease interval, give back tasks whose
        session went silent or whose timeout passed, heartbeat once a worker."""
        next_renew = time.monotonic() + self.cfg.lease_every
        next_beat = 0.0
        while not stopping.is_set():
            now = time.monotonic()
            try:
                if now >= next_renew:
                    next_renew = now + self.cfg.lease_every
                    await self.renew()
                await self.expire()
                if self.specs and now >= next_beat:
                    next_beat = now + self.cfg.heartbeat_interval
                    await self.transport.registry.heartbeat(self.info(), self.cfg.heartbeat_ttl)
            except TRANSIENT as exc:
                log.warning("mcp session %s: Redis unavailable (%s)", self.name, describe(exc))
            except Exception:  # a bug of ours must not stop the leases
                log.exception("mcp session %s: lease upkeep failed", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), TICK)

    async def renew(self) -> None:
        """Renew every held task's lease; forget those another worker took."""
        by_spec: dict[str, dict[str, Held]] = defaultdict(dict)
        for held in self.ledger:
            by_spec[held.entry.spec][held.entry.entry_id] = held
        for spec, ids in by_spec.items():
            taken, gone = await self.streams.renew(spec, self.name, list(ids))
            for entry_id in [*taken, *gone]:
                held = ids[entry_id]
                if not self.ledger.holds(held):
                    continue  # settled meanwhile (its own write acked it)
                self.ledger.drop(held)
                self.counts["lost"] += 1
                log.warning("lease on %s/%s lost to another worker", spec, entry_id)
                self.ledger.forget(
                    held,
                    "lease lost: another worker reclaimed the task (this session's lease "
                    "was not renewed in time); nothing you send for it is recorded",
                )

    async def expire(self) -> None:
        """Fail the attempts whose timeout passed; release the tasks of a silent session."""
        now = time.monotonic()
        for held in self.ledger:
            if not self.ledger.holds(held):
                continue
            if held.due is not None and now >= held.due:
                timeout = held.task.timeout or self.cfg.default_timeout or 0.0
                self.ledger.drop(held)
                try:
                    await self._failed(held, f"timed out after {timeout:g}s")
                except LeaseLost:
                    continue
                except BaseException:
                    self.ledger.keep(held)
                    raise
                self.ledger.forget(held, f"its timeout of {timeout:g}s passed (a failed attempt)")
            elif self.ledger.busy == 0 and now >= held.expires:
                self.ledger.drop(held)
                why = f"released after {held.hold:g}s without a tool call from this session"
                log.info("task %s %s", held.task.id, why)
                try:
                    await self._release([held], why)
                except BaseException:
                    self.ledger.keep(held)
                    raise

    # -- the end of the session ------------------------------------------------------

    async def close(self) -> None:
        """Release every held task (and any entry a lost reply delivered) for
        immediate reclaim, then leave the registry and the groups."""
        held = self.ledger.clear()
        if held:
            await self._release(held, "the MCP session ended")
        for spec in self.specs:
            pending = await self.streams.own_pending(spec, self.name, RECOVER_COUNT)
            strays = [
                (Entry(spec, entry_id, {}, deliveries), 0)
                for entry_id, deliveries in pending
                if (spec, entry_id) not in self.ledger.deferred
            ]
            if strays:
                await self.writes.release(strays)
        if self.specs:
            await self.transport.registry.unregister(self.name)
        for spec in self.specs:
            await self.streams.prune_consumer(spec, self.name)

    def info(self) -> WorkerInfo:
        """This session as a worker, for ``status`` and the monitor."""
        return WorkerInfo(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            specs=tuple(self.specs),
            state=WorkerState.BUSY if self.held else WorkerState.IDLE,
            concurrency=self.cfg.concurrency,
            current=tuple(self.held),
            busy_since=self.ledger.busy_since,
            done=self.counts["done"],
            failed=self.counts["failed"] + self.counts["dead"],
            started=self._started,
            heartbeat=time.time(),
        )
