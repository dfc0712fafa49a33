"""One snapshot of a swarm in two pipelined round trips: no KEYS, no round trip
per item, whatever the number of tasks.

Round trip 1 reads the registries (specs set, workers and shards zsets) and the
server clock. Round trip 2 reads, per spec, XLEN, XINFO GROUPS, the XPENDING
summary, the dead-letter XLEN, the stats hash, the latest findings, the oldest
member of the leases zset and the oldest pending entry (XPENDING - + 1); per worker,
its heartbeat hash; per shard, its meta hash and workflow progress. Every command
is O(1), O(log n) or O(consumers) in Redis, so the cost does not grow with the
number of pending or queued entries.
"""

from __future__ import annotations

import math
from typing import Any

from swarmstream.codec import text as _s
from swarmstream.keys import GROUP, Keys
from swarmstream.transport.link import Link

#: Findings read per spec for the feed of latest findings (at most).
FEED_PER_SPEC = 10
#: Findings the feed keeps; with many specs the first read takes fewer per spec.
FEED_SIZE = 20
#: Replies per spec in round trip 2.
PER_SPEC = 8
#: Fields of a shard's workflow hash shown as its progress.
WORKFLOW_FIELDS = ("passes", "state", "tasks", "findings")


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


def _shard_row(shard: str, meta: Any, flow: Any) -> dict[str, str] | None:
    """A shard's meta hash plus its workflow progress (``workflow_*`` keys)."""
    if not meta or isinstance(meta, Exception):
        return None
    out = {_s(a): _s(b) for a, b in meta.items()} | {"id": shard}
    if isinstance(flow, list):
        for f, v in zip(WORKFLOW_FIELDS, flow, strict=True):
            if v is not None:
                out[f"workflow_{f}"] = _s(v)
    return out


class StatsReader:
    """Reads everything the monitor and ``status`` show."""

    def __init__(self, link: Link, keys: Keys) -> None:
        self.link = link
        self.client: Any = link.client  # replies are bytes; converted here
        self.keys = keys
        self._forget: list[str] = []  # expired workers, dropped on the next read

    async def read(self, feed_since: str | None = None) -> dict[str, Any]:
        """Raw material of a snapshot, as plain dicts (see swarmstream.monitor).

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
            pipe.time()
            replies = (await pipe.execute(raise_on_error=False))[-4:]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        specs_raw, workers_raw, shards_raw, now = replies
        specs = sorted(_s(s) for s in specs_raw)
        workers = [_s(w) for w in workers_raw]
        shards = [_s(s) for s in shards_raw]
        async with self.client.pipeline(transaction=False) as pipe:
            self._queue_details(pipe, specs, workers, shards, feed_since)
            rows = await pipe.execute(raise_on_error=False)
        out: dict[str, Any] = {
            "time": float(now[0]) + float(now[1]) / 1e6,
            "specs": [],
            "workers": [],
            "shards": [],
        }
        i = 0
        for spec in specs:
            out["specs"].append(self._spec_row(spec, rows[i : i + PER_SPEC]))
            i += PER_SPEC
        expired: list[str] = []
        for name in workers:
            row = rows[i]
            i += 1
            if row and not isinstance(row, Exception):
                out["workers"].append(row)
            elif not row:
                expired.append(name)
        out["expired_workers"] = expired
        self._forget = expired
        for shard in shards:
            meta = _shard_row(shard, rows[i], rows[i + 1])
            i += 2
            if meta:
                out["shards"].append(meta)
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
            pipe.xpending(k.tasks, GROUP)
            pipe.xlen(k.dead)
            pipe.hgetall(k.stats)
            pipe.xrevrange(k.findings, min=feed_since or "-", count=per_spec)
            pipe.zrange(k.leases, 0, 0, withscores=True)
            pipe.xpending_range(k.tasks, GROUP, "-", "+", 1)
        for name in workers:
            pipe.hgetall(self.keys.worker(name))
        for shard in shards:
            pipe.hgetall(self.keys.shard(shard).meta)
            pipe.hmget(self.keys.shard(shard).workflow, *WORKFLOW_FIELDS)

    def _spec_row(self, spec: str, replies: list[Any]) -> dict[str, Any]:
        length, groups, pending, dead, stats, feed, leases, first = replies
        return {
            "name": spec,
            "stream": self.keys.spec(spec).tasks,
            "length": length if isinstance(length, int) else 0,
            "group": _group_info(groups),
            "pending": pending if isinstance(pending, dict) else {},
            "dead": dead if isinstance(dead, int) else 0,
            "stats": {}
            if isinstance(stats, Exception)
            else {_s(a): int(b) for a, b in stats.items()},
            "feed": []
            if isinstance(feed, Exception)
            else [(_s(entry_id), fields) for entry_id, fields in feed],
            # first delivery (ms) of the longest-held entry past a lease renewal
            "first_delivery_ms": int(leases[0][1]) if leases and isinstance(leases, list) else None,
            # idle time (ms) of the oldest pending entry
            "oldest_idle_ms": int(first[0]["time_since_delivered"])
            if first and isinstance(first, list)
            else None,
        }
