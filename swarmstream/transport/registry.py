"""Worker registry: heartbeats with a TTL, so the monitor sees who is alive."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
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


#: Worker states by published value (a dict lookup; ``WorkerState(v)`` is slower).
_STATES: dict[str, WorkerState] = {state.value: state for state in WorkerState}


@functools.lru_cache(maxsize=4096)
def _names(raw: bytes | str) -> tuple[Any, ...]:
    """A published JSON list (``specs``, ``current``) as a tuple. Cached: a worker
    publishes the same lists beat after beat, and a monitor parses every worker
    on every refresh."""
    return tuple(json.loads(_s(raw) or "[]"))


def parse_worker(raw: Mapping[bytes, bytes]) -> WorkerInfo:
    """A WorkerInfo from the hash a worker publishes (an HGETALL reply).

    Numbers are parsed from the reply's bytes as they are (``int(b"12")``): the
    fields a worker publishes are ASCII."""
    if b"name" not in raw:  # str keys (a decoding client), or no name: KeyError below
        raw = {k if isinstance(k, bytes) else k.encode(): v for k, v in raw.items()}
    get = raw.get
    state = _s(get(b"state") or b"idle")
    busy_since = get(b"busy_since")
    return WorkerInfo(
        name=_s(raw[b"name"]),
        host=_s(get(b"host") or b""),
        pid=int(get(b"pid") or 0),
        specs=_names(get(b"specs") or b""),
        state=_STATES.get(state) or WorkerState(state),
        concurrency=int(get(b"concurrency") or 1),
        current=_names(get(b"current") or b""),
        busy_since=float(busy_since) if busy_since else None,
        done=int(get(b"done") or 0),
        failed=int(get(b"failed") or 0),
        started=float(get(b"started") or 0),
        heartbeat=float(get(b"heartbeat") or 0),
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

    async def alive(self, names: list[str]) -> set[str]:
        """Those of ``names`` whose heartbeat has not expired: one pipelined EXISTS per
        name (the server's TTL decides, so clocks of other machines do not matter)."""
        if not names:
            return set()
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.exists(self.keys.worker(name))
            found = await pipe.execute()
        return {name for name, n in zip(names, found, strict=True) if n}
