"""Collect: one snapshot of the swarm, used by ``status --json`` and the monitor.

``collect()`` costs two pipelined round trips however many specs, workers, shards
or tasks there are. Rates (delivered, completed, failed per second) come from the
difference with the previous snapshot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from swarmstream import codec
from swarmstream.codec import text as _s
from swarmstream.models import Finding, WorkerInfo
from swarmstream.transport.registry import parse_worker
from swarmstream.transport.stats import StatsReader


@dataclass(frozen=True, slots=True)
class SpecStats:
    """One specialization at one moment."""

    name: str
    stream: str
    length: int
    backlog: int | None  # entries not yet delivered (XINFO lag; None on Redis 6.2)
    pending: int
    oldest_pending_ms: int | None
    consumers: int
    dead: int
    delivered: int | None  # entries-read of the group (Redis 7+)
    completed: int
    failed: int
    retried: int
    delivered_rate: float | None = None
    completed_rate: float | None = None
    failed_rate: float | None = None

    @property
    def lag(self) -> int | None:
        return self.backlog


@dataclass(frozen=True, slots=True)
class ShardStats:
    """One memory shard at one moment."""

    id: str
    spec: str
    tokens: int
    version: int | None
    pass_no: int | None
    progress: str
    collected: int
    heartbeat: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the monitor shows, taken at ``time`` (Redis server clock)."""

    time: float
    specs: tuple[SpecStats, ...] = ()
    workers: tuple[WorkerInfo, ...] = ()
    shards: tuple[ShardStats, ...] = ()
    feed: tuple[Finding, ...] = ()
    history: tuple[float, ...] = field(default=())  # completed/s, oldest first

    @property
    def completed(self) -> int:
        return sum(s.completed for s in self.specs)

    def to_json(self) -> dict[str, Any]:
        """The ``status --json`` shape."""
        return {
            "time": self.time,
            "specs": [
                {
                    "name": s.name,
                    "stream": s.stream,
                    "length": s.length,
                    "pending": s.pending,
                    "lag": s.backlog,
                    "consumers": s.consumers,
                    "dead": s.dead,
                    "oldest_pending_ms": s.oldest_pending_ms,
                    "delivered": s.delivered,
                    "completed": s.completed,
                    "failed": s.failed,
                    "retried": s.retried,
                    "completed_per_s": s.completed_rate,
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
                }
                for h in self.shards
            ],
        }


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _spec(raw: dict[str, Any], now: float) -> SpecStats:
    group = raw["group"]
    pending = raw["pending"]
    oldest = None
    min_id = pending.get("min")
    if pending.get("pending") and min_id:
        created_ms = int(_s(min_id).split("-")[0])
        oldest = max(0, int(now * 1000) - created_ms)
    stats = raw["stats"]
    return SpecStats(
        name=raw["name"],
        stream=raw["stream"],
        length=raw["length"],
        backlog=_int(group.get("lag")),
        pending=int(pending.get("pending") or 0),
        oldest_pending_ms=oldest,
        consumers=int(group.get("consumers") or 0),
        dead=raw["dead"],
        delivered=_int(group.get("entries-read")),
        completed=stats.get("ok", 0),
        failed=stats.get("failed", 0) + stats.get("dead", 0),
        retried=stats.get("retried", 0),
    )


def _shard(raw: dict[str, str]) -> ShardStats:
    return ShardStats(
        id=raw["id"],
        spec=raw.get("spec", ""),
        tokens=_int(raw.get("tokens")) or 0,
        version=_int(raw.get("version")),
        pass_no=_int(raw.get("pass")),
        progress=raw.get("progress", ""),
        collected=_int(raw.get("collected")) or 0,
        heartbeat=float(raw["heartbeat"]) if raw.get("heartbeat") else None,
    )


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
    reader: StatsReader, previous: Snapshot | None = None, history: int = 60
) -> Snapshot:
    """Take one snapshot (two pipelined round trips)."""
    raw = await reader.read()
    now = raw["time"]
    specs = _with_rates([_spec(s, now) for s in raw["specs"]], previous, now)
    feed: list[Finding] = []
    for s in raw["specs"]:
        for entry_id, fields in s["feed"]:
            try:
                feed.append(codec.decode_finding(entry_id, fields))
            except Exception:  # a foreign producer's odd finding must not stop the monitor
                continue
    feed.sort(key=lambda f: f.finished, reverse=True)
    if raw["expired_workers"]:
        await reader.forget_workers(raw["expired_workers"])
    hist = list(previous.history) if previous else []
    if previous is not None and now > previous.time:
        done_now = sum(s.completed for s in specs)
        hist.append(max(0.0, (done_now - previous.completed) / (now - previous.time)))
    return Snapshot(
        time=now,
        specs=tuple(specs),
        workers=tuple(sorted((parse_worker(w) for w in raw["workers"]), key=lambda w: w.name)),
        shards=tuple(_shard(h) for h in raw["shards"]),
        feed=tuple(feed[:20]),
        history=tuple(hist[-history:]),
    )
