"""Collect: one snapshot of the swarm, used by ``status --json`` and the monitor.

``collect()`` costs two pipelined round trips however many specs, workers, shards
or tasks there are. Rates (delivered, completed, failed per second) come from the
difference with the previous snapshot; so does the feed of findings, which after
the first snapshot reads only findings newer than those it already holds. The
transport (``StatsReader``) hands over typed rows; nothing here reads a Redis reply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from swarmstream import codec
from swarmstream.accounting import BudgetState, SpecUsage, Totals, add_up
from swarmstream.models import Finding, WorkerInfo
from swarmstream.transport.stats import FEED_SIZE, ShardStats, SpecRow, StatsReader

__all__ = ["WINDOW", "ShardStats", "Snapshot", "SpecStats", "collect"]

#: Seconds of throughput the monitor's sparkline covers.
WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class SpecStats:
    """One specialization at one moment."""

    name: str
    stream: str
    length: int
    #: entries not yet delivered to any worker: the group's ``lag`` in XINFO GROUPS
    #: terms (None on Redis 6.2, or when Redis cannot compute it)
    backlog: int | None
    pending: int  # delivered to a worker, not yet acknowledged
    #: how long the oldest pending entry has been in flight, since its first delivery
    #: (exact for entries held past a lease renewal, retried or released; otherwise
    #: within one lease interval)
    oldest_pending_ms: int | None
    consumers: int
    dead: int
    #: deliveries: first deliveries (the group's entries-read, Redis 7+; None on 6.2)
    #: plus redeliveries (entries taken over from a dead or released holder)
    delivered: int | None
    completed: int
    failed: int
    retried: int
    redelivered: int = 0
    usage: SpecUsage = field(default_factory=SpecUsage)
    #: the spec's budget and what it spent (None: no budget)
    budget: BudgetState | None = None
    #: why workers do not claim its tasks: its budget or the namespace's is spent
    paused_by: str | None = None
    delivered_rate: float | None = None
    completed_rate: float | None = None
    failed_rate: float | None = None

    @property
    def lag(self) -> int | None:
        return self.backlog


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the monitor shows, taken at ``time`` (Redis server clock)."""

    time: float
    specs: tuple[SpecStats, ...] = ()
    workers: tuple[WorkerInfo, ...] = ()
    shards: tuple[ShardStats, ...] = ()
    feed: tuple[Finding, ...] = ()  # latest findings, newest first
    history: tuple[float, ...] = field(default=())  # completed/s per interval, oldest first
    #: (time, completed so far) over the last WINDOW seconds, oldest first, plus the
    #: last sample before the window: the throughput sparkline is drawn from these
    samples: tuple[tuple[float, int], ...] = field(default=())
    namespace: str = ""
    #: the namespace's budget and what all its specs spent (None: no budget)
    budget: BudgetState | None = None

    @property
    def completed(self) -> int:
        return sum(s.completed for s in self.specs)

    def usage_by(self, workers: Mapping[str, Totals] | None = None) -> dict[str, Any]:
        """Spending by model and by shard over every spec (and by worker, when
        given: ``StatsReader.worker_usage``), JSON-ready (``status --json``)."""
        models: dict[str, Totals] = {}
        shards: dict[str, Totals] = {}
        for s in self.specs:
            models = add_up(models, s.usage.models)
            shards = add_up(shards, s.usage.shards)
        groups = {"models": models, "shards": shards, "workers": dict(workers or {})}
        return {
            name: {key: totals.to_json() for key, totals in sorted(group.items())}
            for name, group in groups.items()
        }

    @property
    def usage(self) -> Totals:
        """What every spec spent, added up."""
        total = Totals()
        for s in self.specs:
            total = total + s.usage.total
        return total

    def to_json(self) -> dict[str, Any]:
        """The ``status --json`` shape (rates are null in a one-shot snapshot)."""
        return {
            "time": self.time,
            "namespace": self.namespace,
            "usage": self.usage.to_json(),
            "budget": self.budget.to_json() if self.budget else None,
            "specs": [
                {
                    "name": s.name,
                    "stream": s.stream,
                    "length": s.length,
                    "pending": s.pending,
                    "lag": s.backlog,
                    "backlog": s.backlog,
                    "consumers": s.consumers,
                    "dead": s.dead,
                    "oldest_pending_ms": s.oldest_pending_ms,
                    "delivered": s.delivered,
                    "redelivered": s.redelivered,
                    "completed": s.completed,
                    "failed": s.failed,
                    "retried": s.retried,
                    "usage": s.usage.to_json(),
                    "budget": s.budget.to_json() if s.budget else None,
                    "paused": s.paused_by is not None,
                    "paused_by": s.paused_by,
                    "delivered_per_s": s.delivered_rate,
                    "completed_per_s": s.completed_rate,
                    "failed_per_s": s.failed_rate,
                }
                for s in self.specs
            ],
            "workers": [
                {
                    **asdict(w),
                    "state": w.state.value,
                    "specs": list(w.specs),
                    "current": list(w.current),
                }
                for w in self.workers
            ],
            "shards": [
                {
                    "id": h.id,
                    "spec": h.spec,
                    "tokens": h.tokens,
                    "context_version": h.version,
                    "pass": h.pass_no,
                    "progress": h.progress,
                    "collected": h.collected,
                    "heartbeat": h.heartbeat,
                    "passes": h.passes,
                    "state": h.state,
                    "tasks": h.tasks,
                    "findings": h.findings,
                }
                for h in self.shards
            ],
        }


def _spec(row: SpecRow, now: float, namespace: BudgetState | None) -> SpecStats:
    oldest = None
    if row.pending:
        if row.first_delivery_ms is not None:
            oldest = max(0, int(now * 1000) - row.first_delivery_ms)
        elif row.oldest_idle_ms is not None:
            oldest = row.oldest_idle_ms
    counters = row.counters
    budget = None if row.budget.unlimited else BudgetState(row.budget, row.usage.total)
    paused = budget.paused_by if budget else None
    if paused is None and namespace is not None and namespace.paused_by:
        paused = f"namespace budget: {namespace.paused_by}"
    elif paused is not None:
        paused = f"spec budget: {paused}"
    delivered = None
    if row.entries_read is not None:
        delivered = row.entries_read + counters.redelivered
    return SpecStats(
        name=row.name,
        stream=row.stream,
        length=row.length,
        backlog=row.lag,
        pending=row.pending,
        oldest_pending_ms=oldest,
        consumers=row.consumers,
        dead=row.dead,
        delivered=delivered,
        completed=counters.ok,
        failed=counters.failed + counters.dead,
        retried=counters.retried,
        redelivered=counters.redelivered,
        usage=row.usage,
        budget=budget,
        paused_by=paused,
    )


def _entry_key(finding: Finding) -> tuple[int, int]:
    """A finding's stream entry id as a sortable pair (server clock, then sequence)."""
    return codec.entry_order(finding.entry_id)


def _feed(rows: Sequence[SpecRow], previous: Snapshot | None) -> tuple[Finding, ...]:
    seen: dict[tuple[str, str | None], Finding] = {}
    for row in rows:
        for f in row.feed:
            seen[(f.spec, f.entry_id)] = f
    if previous is not None:  # findings read before; a cut-off read returns them again
        for f in previous.feed:
            seen.setdefault((f.spec, f.entry_id), f)
    return tuple(sorted(seen.values(), key=_entry_key, reverse=True)[:FEED_SIZE])


def _feed_since(previous: Snapshot | None) -> str | None:
    """The oldest entry id of a full feed: nothing older can enter it again."""
    if previous is None or len(previous.feed) < FEED_SIZE:
        return None
    ms, seq = min(_entry_key(f) for f in previous.feed)
    return f"{ms}-{seq}"


def _samples(
    previous: Snapshot | None, now: float, done: int, window: float
) -> tuple[tuple[float, int], ...]:
    old = list(previous.samples) if previous is not None else []
    if old and (done < old[-1][1] or now <= old[-1][0]):
        old = []  # counters went back (Redis lost its data) or the clock did
    keep = [s for s in old if s[0] >= now - window]
    earlier = [s for s in old if s[0] < now - window]
    return (*earlier[-1:], *keep, (now, done))


def _rate(now: int | None, before: int | None, seconds: float) -> float | None:
    if now is None or before is None or seconds <= 0:
        return None
    return max(0.0, (now - before) / seconds)


def _with_rates(specs: list[SpecStats], previous: Snapshot | None, now: float) -> list[SpecStats]:
    if previous is None:
        return specs
    before = {s.name: s for s in previous.specs}
    dt = now - previous.time
    out = []
    for s in specs:
        p = before.get(s.name)
        if p is None:
            out.append(s)
            continue
        out.append(
            replace(
                s,
                delivered_rate=_rate(s.delivered, p.delivered, dt),
                completed_rate=_rate(s.completed, p.completed, dt),
                failed_rate=_rate(s.failed, p.failed, dt),
            )
        )
    return out


async def collect(
    reader: StatsReader,
    previous: Snapshot | None = None,
    history: int = 60,
    window: float = WINDOW,
) -> Snapshot:
    """Take one snapshot: two pipelined round trips, whatever the size of the swarm.

    With ``previous`` (the last snapshot), rates are filled in, the throughput
    history grows, and only findings newer than ``previous.feed`` are read. Worker
    registry entries whose heartbeat hash expired are dropped in the next call's
    first round trip (a dead worker disappears once its heartbeat expires).
    """
    reading = await reader.read(feed_since=_feed_since(previous))
    now = reading.time
    namespace = None
    if not reading.namespace_budget.unlimited:
        spent = Totals()
        for row in reading.specs:
            spent = spent + row.usage.total
        namespace = BudgetState(reading.namespace_budget, spent)
    specs = _with_rates([_spec(s, now, namespace) for s in reading.specs], previous, now)
    done = sum(s.completed for s in specs)
    hist = list(previous.history) if previous else []
    if previous is not None and now > previous.time:
        hist.append(max(0.0, (done - previous.completed) / (now - previous.time)))
    return Snapshot(
        time=now,
        specs=tuple(specs),
        workers=tuple(sorted(reading.workers, key=lambda w: w.name)),
        shards=tuple(sorted(reading.shards, key=lambda h: h.id)),
        feed=_feed(reading.specs, previous),
        history=tuple(hist[-history:]),
        samples=_samples(previous, now, done, window),
        namespace=reader.keys.namespace,
        budget=namespace,
    )
