"""One snapshot of a swarm in two pipelined round trips: no KEYS, no round trip
per item, whatever the number of tasks.

Round trip 1 reads the registries (specs set, workers and shards zsets) and the
server clock. Round trip 2 reads, per spec, XLEN, XINFO GROUPS (the group's lag,
entries read, consumers and pending entries), the dead-letter XLEN, the stats hash,
the latest findings, the oldest member of the leases zset, the oldest pending entry
(XPENDING - + 1), the usage totals (its ``usage`` hash: a few fields per model and
shard) and its budget; per worker, its heartbeat hash; per shard, its meta hash and
workflow progress. Every command is O(1), O(log n) or O(consumers) in Redis, so the
cost does not grow with the number of pending or queued entries.

What a read returns is typed and decoded (``StatsReading``: a ``SpecRow`` per spec,
a ``WorkerInfo`` per live worker, a ``ShardStats`` per shard); a reply Redis
refused in round trip 2 reads as empty. ``swarmstream.monitor`` derives rates, the
age of the oldest pending entry and the feed from it, and never sees a Redis reply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from swarmstream import codec
from swarmstream.accounting import Budget, SpecUsage, Totals, add_up, worker_totals
from swarmstream.codec import text as _s
from swarmstream.keys import GROUP, Keys
from swarmstream.models import Finding, WorkerInfo
from swarmstream.transport.connection import str_hash
from swarmstream.transport.link import Link
from swarmstream.transport.registry import parse_worker

#: Findings read per spec for the feed of latest findings (at most).
FEED_PER_SPEC = 10
#: Findings the feed keeps; with many specs the first read takes fewer per spec.
FEED_SIZE = 20
#: Replies per spec in round trip 2.
PER_SPEC = 9
#: Fields of a shard's workflow hash shown as its progress.
WORKFLOW_FIELDS = ("passes", "state", "tasks", "findings")


@dataclass(frozen=True, slots=True)
class Counters:
    """A spec's stats hash: findings by status, retries and dead-lettered entries."""

    ok: int = 0
    failed: int = 0
    dead: int = 0  # findings with status dead
    retried: int = 0
    buried: int = 0  # entries moved to the dead-letter stream
    redelivered: int = 0  # entries taken over from another consumer (XAUTOCLAIM)


@dataclass(frozen=True, slots=True)
class SpecRow:
    """One specialization as round trip 2 read it."""

    name: str
    stream: str
    length: int  # XLEN of the task stream
    #: the ``workers`` group's ``lag``: entries not yet delivered to any worker (None
    #: on Redis 6.2, or when Redis cannot compute it)
    lag: int | None
    entries_read: int | None  # the group's entries-read (Redis 7+)
    consumers: int  # consumers of the group
    pending: int  # delivered to a worker, not yet acknowledged (the group's PEL)
    dead: int  # XLEN of the dead-letter stream
    counters: Counters
    #: the latest findings (newest first) that decode; a foreign producer's odd one
    #: is left out
    feed: tuple[Finding, ...]
    #: first delivery (ms) of the longest-held entry past a lease renewal
    first_delivery_ms: int | None
    #: idle time (ms) of the oldest pending entry
    oldest_idle_ms: int | None
    usage: SpecUsage = field(default_factory=SpecUsage)
    budget: Budget = field(default_factory=Budget)


@dataclass(frozen=True, slots=True)
class ShardStats:
    """One memory shard at one moment: its meta hash and workflow progress."""

    id: str
    spec: str
    tokens: int
    version: int | None
    pass_no: int | None
    progress: str
    collected: int
    heartbeat: float | None
    passes: int | None = None  # passes of the workflow running on the shard
    state: str = ""  # its state: posting, posted, waiting, synthesized, done, aborted
    tasks: int | None = None  # tasks of the current pass
    findings: int | None = None  # findings of the current pass so far


@dataclass(frozen=True, slots=True)
class StatsReading:
    """What one ``StatsReader.read()`` returned, taken at ``time`` (Redis server clock)."""

    time: float
    specs: tuple[SpecRow, ...]  # sorted by name
    workers: tuple[WorkerInfo, ...]  # live workers whose hash parses, registry order
    shards: tuple[ShardStats, ...]  # shards whose meta hash exists, registry order
    #: registered workers whose heartbeat hash expired: dropped on the next read
    expired_workers: tuple[str, ...] = ()
    namespace_budget: Budget = field(default_factory=Budget)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _group_info(reply: Any) -> dict[str, Any]:
    """The ``workers`` group's row of XINFO GROUPS, as a str-keyed dict."""
    if isinstance(reply, Exception) or not reply:
        return {}
    for row in reply:
        d = {_s(k): v for k, v in row.items()}
        if _s(d.get("name", b"")) == GROUP:
            return d
    return {}


def feed_count(specs: int, since: str | None) -> int:
    """Findings to read per spec. With a cutoff (``since``) only entries newer than
    the feed already shown come back, so up to FEED_PER_SPEC each is cheap; without
    one (first read), the total stays near 2 x FEED_SIZE however many specs exist."""
    if since is not None or specs == 0:
        return FEED_PER_SPEC
    return max(2, min(FEED_PER_SPEC, math.ceil(2 * FEED_SIZE / specs)))


def _shard_row(shard: str, meta: Any, flow: Any) -> ShardStats | None:
    """A shard's meta hash plus its workflow progress; None if it has no meta hash."""
    if not meta or isinstance(meta, Exception):
        return None
    raw = {_s(a): _s(b) for a, b in meta.items()}
    if isinstance(flow, list):
        for f, v in zip(WORKFLOW_FIELDS, flow, strict=True):
            if v is not None:
                raw[f"workflow_{f}"] = _s(v)
    return ShardStats(
        id=shard,
        spec=raw.get("spec", ""),
        tokens=_int(raw.get("tokens")) or 0,
        version=_int(raw.get("version")),
        pass_no=_int(raw.get("pass")),
        progress=raw.get("progress", ""),
        collected=_int(raw.get("collected")) or 0,
        heartbeat=_float(raw.get("heartbeat")),
        passes=_int(raw.get("workflow_passes")),
        state=raw.get("workflow_state", ""),
        tasks=_int(raw.get("workflow_tasks")),
        findings=_int(raw.get("workflow_findings")),
    )


def _worker(row: dict[bytes, bytes]) -> WorkerInfo | None:
    try:
        return parse_worker(row)
    except (KeyError, ValueError, TypeError):  # a foreign or half-written hash
        return None


def _feed(reply: Any) -> tuple[Finding, ...]:
    """The findings of an XREVRANGE reply that decode, in its order."""
    if isinstance(reply, Exception):
        return ()
    out = []
    for entry_id, fields in reply:
        try:
            out.append(codec.decode_finding(_s(entry_id), fields))
        except Exception:  # a foreign producer's odd finding must not stop the monitor
            continue
    return tuple(out)


def _counters(reply: Any) -> Counters:
    if isinstance(reply, Exception):
        return Counters()
    values = {_s(a): int(b) for a, b in reply.items()}
    return Counters(
        ok=values.get("ok", 0),
        failed=values.get("failed", 0),
        dead=values.get("dead", 0),
        retried=values.get("retried", 0),
        buried=values.get("buried", 0),
        redelivered=values.get("redelivered", 0),
    )


class StatsReader:
    """Reads everything the monitor and ``status`` show."""

    def __init__(self, link: Link, keys: Keys) -> None:
        self.link = link
        self.client: Any = link.client  # replies are bytes; converted here
        self.keys = keys
        self._forget: list[str] = []  # expired workers, dropped on the next read

    async def read(self, feed_since: str | None = None) -> StatsReading:
        """Everything a snapshot is made of, decoded (see swarmstream.monitor).

        ``feed_since`` (a stream id, inclusive) limits the findings read to those
        at least that recent: the monitor passes the oldest entry of the feed it
        already shows, so a refresh transfers only new findings.
        """
        forget, self._forget = self._forget, []
        async with self.client.pipeline(transaction=False) as pipe:
            if forget:  # best effort: a read-only ACL user gets NOPERM here, and that's fine
                pipe.zrem(self.keys.workers, *forget)
            pipe.smembers(self.keys.specs)
            pipe.zrange(self.keys.workers, 0, -1)
            pipe.zrange(self.keys.shards, 0, -1)
            pipe.execute_command("TIME")  # not pipe.time(): the cluster pipeline refuses it
            pipe.hgetall(self.keys.budget)
            replies = (await pipe.execute(raise_on_error=False))[-5:]
        for reply in replies[:4]:
            if isinstance(reply, Exception):
                raise reply
        specs_raw, workers_raw, shards_raw, now, budget = replies
        specs = sorted(_s(s) for s in specs_raw)
        workers = [_s(w) for w in workers_raw]
        shards = [_s(s) for s in shards_raw]
        async with self.client.pipeline(transaction=False) as pipe:
            self._queue_details(pipe, specs, workers, shards, feed_since)
            rows = await pipe.execute(raise_on_error=False)
        i = 0
        spec_rows = []
        for spec in specs:
            spec_rows.append(self._spec_row(spec, rows[i : i + PER_SPEC]))
            i += PER_SPEC
        live: list[WorkerInfo] = []
        expired: list[str] = []
        for name, row in zip(workers, rows[i : i + len(workers)], strict=True):
            if not row:
                expired.append(name)
            elif not isinstance(row, Exception) and (info := _worker(row)) is not None:
                live.append(info)
        i += len(workers)
        self._forget = expired
        shard_rows = []
        for shard in shards:
            row = _shard_row(shard, rows[i], rows[i + 1])
            i += 2
            if row is not None:
                shard_rows.append(row)
        return StatsReading(
            time=float(now[0]) + float(now[1]) / 1e6,
            specs=tuple(spec_rows),
            workers=tuple(live),
            shards=tuple(shard_rows),
            expired_workers=tuple(expired),
            namespace_budget=Budget.from_fields(str_hash(budget)),
        )

    async def worker_usage(self, specs: list[str]) -> dict[str, Totals]:
        """Usage totals per worker over ``specs`` (one pipelined round trip; a hash
        per spec whose size grows with the workers that ever reported usage)."""
        out: dict[str, Totals] = {}
        if not specs:
            return out
        async with self.client.pipeline(transaction=False) as pipe:
            for spec in specs:
                pipe.hgetall(self.keys.spec(spec).usage_workers)
            for reply in await pipe.execute(raise_on_error=False):
                out = add_up(out, worker_totals(str_hash(reply)))
        return out

    def _queue_details(
        self,
        pipe: Any,
        specs: list[str],
        workers: list[str],
        shards: list[str],
        feed_since: str | None,
    ) -> None:
        """Round trip 2: a fixed handful of O(1) commands per spec, worker and shard."""
        per_spec = feed_count(len(specs), feed_since)
        for spec in specs:
            k = self.keys.spec(spec)
            pipe.xlen(k.tasks)
            pipe.xinfo_groups(k.tasks)
            pipe.xlen(k.dead)
            pipe.hgetall(k.stats)
            pipe.xrevrange(k.findings, min=feed_since or "-", count=per_spec)
            pipe.zrange(k.leases, 0, 0, withscores=True)
            pipe.xpending_range(k.tasks, GROUP, "-", "+", 1)
            pipe.hgetall(k.usage)
            pipe.hgetall(k.budget)
        for name in workers:
            pipe.hgetall(self.keys.worker(name))
        for shard in shards:
            pipe.hgetall(self.keys.shard(shard).meta)
            pipe.hmget(self.keys.shard(shard).workflow, *WORKFLOW_FIELDS)

    def _spec_row(self, spec: str, replies: list[Any]) -> SpecRow:
        length, groups, dead, stats, feed, leases, first, usage, budget = replies
        group = _group_info(groups)
        return SpecRow(
            name=spec,
            stream=self.keys.spec(spec).tasks,
            length=length if isinstance(length, int) else 0,
            lag=_int(group.get("lag")),
            entries_read=_int(group.get("entries-read")),
            consumers=int(group.get("consumers") or 0),
            pending=int(group.get("pending") or 0),
            dead=dead if isinstance(dead, int) else 0,
            counters=_counters(stats),
            feed=_feed(feed),
            first_delivery_ms=int(leases[0][1]) if leases and isinstance(leases, list) else None,
            oldest_idle_ms=int(first[0]["time_since_delivered"])
            if first and isinstance(first, list)
            else None,
            usage=SpecUsage.from_hash(str_hash(usage)),
            budget=Budget.from_fields(str_hash(budget)),
        )
