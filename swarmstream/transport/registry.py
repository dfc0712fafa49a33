"""Worker registry: heartbeats with a TTL, so the monitor sees who is alive."""

from __future__ import annotations

import json
import time
from typing import Any

from swarmstream.codec import text as _s
from swarmstream.keys import Keys
from swarmstream.models import WorkerInfo, WorkerState
from swarmstream.transport.link import Link


def _info_fields(info: WorkerInfo) -> dict[str, str]:
    return {
        "name": info.name,
        "host": info.host,
        "pid": str(info.pid),
        "specs": json.dumps(list(info.specs)),
        "state": info.state.value,
        "concurrency": str(info.concurrency),
        "current": json.dumps(list(info.current)),
        "busy_since": "" if info.busy_since is None else f"{info.busy_since:.3f}",
        "done": str(info.done),
        "failed": str(info.failed),
        "started": f"{info.started:.3f}",
        "heartbeat": f"{info.heartbeat:.3f}",
    }


def parse_worker(raw: dict[bytes, bytes]) -> WorkerInfo:
    """A WorkerInfo from the hash a worker publishes."""
    d = {_s(k): _s(v) for k, v in raw.items()}
    return WorkerInfo(
        name=d["name"],
        host=d.get("host", ""),
        pid=int(d.get("pid") or 0),
        specs=tuple(json.loads(d.get("specs") or "[]")),
        state=WorkerState(d.get("state") or "idle"),
        concurrency=int(d.get("concurrency") or 1),
        current=tuple(json.loads(d.get("current") or "[]")),
        busy_since=float(d["busy_since"]) if d.get("busy_since") else None,
        done=int(d.get("done") or 0),
        failed=int(d.get("failed") or 0),
        started=float(d.get("started") or 0),
        heartbeat=float(d.get("heartbeat") or 0),
    )


class Registry:
    """Publishes and lists worker heartbeats."""

    def __init__(self, link: Link, keys: Keys) -> None:
        self.link = link
        self.client: Any = link.client  # replies are bytes; converted here
        self.keys = keys

    async def heartbeat(self, info: WorkerInfo, ttl: int) -> None:
        """Publish a worker's state; it disappears ``ttl`` seconds after the last beat."""
        key = self.keys.worker(info.name)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=_info_fields(info))
            pipe.expire(key, ttl)
            pipe.zadd(self.keys.workers, {info.name: info.heartbeat})
            pipe.zremrangebyscore(self.keys.workers, "-inf", time.time() - 24 * 3600)
            await pipe.execute()

    async def unregister(self, name: str) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(self.keys.worker(name))
            pipe.zrem(self.keys.workers, name)
            await pipe.execute()

    async def workers(self) -> list[WorkerInfo]:
        """Live workers (heartbeat not expired), in two round trips."""
        names = [_s(n) for n in await self.client.zrange(self.keys.workers, 0, -1)]
        if not names:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.worker(name))
            rows = await pipe.execute()
        return [parse_worker(r) for r in rows if r]

    async def live_names(self) -> set[str]:
        return {w.name for w in await self.workers()}
