"""One snapshot of a swarm in two pipelined round trips: no KEYS, no round trip
per item, whatever the number of tasks."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from swarmstream.codec import text as _s
from swarmstream.keys import GROUP, Keys

#: Findings read per spec for the feed of latest findings.
FEED_PER_SPEC = 10


def _group_info(reply: Any) -> dict[str, Any]:
    """The ``workers`` group's row of XINFO GROUPS, as a str-keyed dict."""
    if isinstance(reply, Exception) or not reply:
        return {}
    for row in reply:
        d = {_s(k): v for k, v in row.items()}
        if _s(d.get("name", b"")) == GROUP:
            return d
    return {}


class StatsReader:
    """Reads everything the monitor and ``status`` show."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self.client: Any = client  # replies are bytes; converted here
        self.keys = keys

    async def read(self) -> dict[str, Any]:
        """Raw material of a snapshot, as plain dicts (see swarmstream.monitor)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.smembers(self.keys.specs)
            pipe.zrange(self.keys.workers, 0, -1)
            pipe.zrange(self.keys.shards, 0, -1)
            pipe.time()
            specs_raw, workers_raw, shards_raw, now = await pipe.execute()
        specs = sorted(_s(s) for s in specs_raw)
        workers = [_s(w) for w in workers_raw]
        shards = [_s(s) for s in shards_raw]
        async with self.client.pipeline(transaction=False) as pipe:
            for spec in specs:
                k = self.keys.spec(spec)
                pipe.xlen(k.tasks)
                pipe.xinfo_groups(k.tasks)
                pipe.xpending(k.tasks, GROUP)
                pipe.xlen(k.dead)
                pipe.hgetall(k.stats)
                pipe.xrevrange(k.findings, count=FEED_PER_SPEC)
            for name in workers:
                pipe.hgetall(self.keys.worker(name))
            for shard in shards:
                pipe.hgetall(self.keys.shard(shard).meta)
            rows = await pipe.execute(raise_on_error=False)
        out: dict[str, Any] = {
            "time": float(now[0]) + float(now[1]) / 1e6,
            "specs": [],
            "workers": [],
            "shards": [],
        }
        i = 0
        for spec in specs:
            length, groups, pending, dead, stats, feed = rows[i : i + 6]
            i += 6
            out["specs"].append(
                {
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
                }
            )
        expired: list[str] = []
        for name in workers:
            row = rows[i]
            i += 1
            if row and not isinstance(row, Exception):
                out["workers"].append(row)
            elif not row:
                expired.append(name)
        out["expired_workers"] = expired
        for shard in shards:
            row = rows[i]
            i += 1
            if row and not isinstance(row, Exception):
                out["shards"].append({_s(a): _s(b) for a, b in row.items()} | {"id": shard})
        return out

    async def forget_workers(self, names: list[str]) -> None:
        """Drop registry entries of workers whose heartbeat hash has expired."""
        if names:
            await self.client.zrem(self.keys.workers, *names)
