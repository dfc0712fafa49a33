"""The library API for producers and readers: submit tasks, read and wait for
findings, manage dead letters. Workers live in ``swarmstream.worker``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from swarmstream.codec import entry_order
from swarmstream.codec import text as _s
from swarmstream.errors import TaskNotFound, WaitTimeout
from swarmstream.keys import Keys, validate_name
from swarmstream.models import DEFAULT_MAX_ATTEMPTS, DeadLetter, Finding, Task, new_task_id
from swarmstream.settings import Settings
from swarmstream.transport.link import Link, make_link
from swarmstream.transport.registry import Registry
from swarmstream.transport.results import Results
from swarmstream.transport.streams import Streams
from swarmstream.transport.transport import Transport

#: how many submitted tasks' wait hints a Swarm keeps, and for how long (s); beyond
#: either, ``wait`` probes Redis instead (same result, one more round trip)
WATCH_LIMIT = 10_000
WATCH_FRESH = 30.0


class Swarm:
    """A connection to one swarm (namespace). Use ``async with Swarm(...)``."""

    def __init__(
        self,
        settings: Settings | None = None,
        client: Redis | None = None,
        transport: Transport | None = None,
    ) -> None:
        """``client`` (a redis-py asyncio client) or ``transport`` are shared, not
        closed by ``aclose``; without either, the Swarm builds its own transport
        from the settings (and ``check`` finds a cluster behind a redis:// URL)."""
        self.settings = transport.settings if transport else settings or Settings()
        self._own = client is None and transport is None
        if transport is None:
            link = (
                Link(client, self.settings.redis)
                if client
                else make_link(self.settings.redis, "swarmstream:client")
            )
            transport = Transport(link, self.settings)
        self.transport = transport
        # (spec, task id) -> (monotonic time, findings cursor, finding id or None)
        self._watched: dict[tuple[str, str], tuple[float, str, str | None]] = {}

    @property
    def keys(self) -> Keys:
        return self.transport.keys

    @property
    def streams(self) -> Streams:
        return self.transport.streams

    @property
    def results(self) -> Results:
        return self.transport.results

    @property
    def registry(self) -> Registry:
        return self.transport.registry

    @property
    def client(self) -> Any:
        """The redis-py client (``Redis`` or ``RedisCluster``)."""
        return self.transport.link.client

    @classmethod
    def from_url(cls, url: str, namespace: str = "swarm") -> Swarm:
        return cls(Settings.from_flat({"url": url, "namespace": namespace}))

    async def __aenter__(self) -> Swarm:
        await self.check()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def check(self) -> tuple[int, ...]:
        """Ping Redis and check its version; raises ConnectionFailed with advice.
        A redis:// URL that points at a cluster node switches to the cluster."""
        if self._own:
            self.transport = await self.transport.detected("swarmstream:client")
        return await self.transport.check()

    async def aclose(self) -> None:
        if self._own:
            await self.transport.aclose()

    # -- producing ---------------------------------------------------------

    async def submit(
        self,
        spec: str,
        text: str,
        *,
        data: Any = None,
        shard: str | None = None,
        pass_no: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        timeout: float | None = None,
        task_id: str | None = None,
    ) -> Task:
        """Post one task to a spec's stream; returns it (with its id)."""
        validate_name("spec", spec)
        task = Task(
            spec=spec,
            text=text,
            id=task_id or new_task_id(),
            data=data,
            shard=shard,
            pass_no=pass_no,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        _, cursor, marker = await self.streams.submit_watched(task)
        self._watch((task.spec, task.id), (cursor, _s(marker) if marker else None))
        return task

    def _watch(self, key: tuple[str, str], hint: tuple[str, str | None]) -> None:
        """Remember where a just-submitted task's finding will appear (bounded)."""
        self._watched[key] = (time.monotonic(), *hint)
        if len(self._watched) > WATCH_LIMIT:
            self._watched.pop(next(iter(self._watched)))

    async def submit_many(self, tasks: Sequence[Task]) -> list[Task]:
        """Post many tasks in one pipelined round trip."""
        for t in tasks:
            validate_name("spec", t.spec)
        await self.streams.submit(tasks)
        return list(tasks)

    # -- reading -----------------------------------------------------------

    async def finding(self, spec: str, task_id: str) -> Finding | None:
        """The finding of a task, if it has one."""
        return await self.results.finding(spec, task_id)

    async def wait(self, task: Task, timeout: float = 60.0) -> Finding:
        """Block until the task's finding exists; raises WaitTimeout."""
        found = await self.wait_many([task], timeout)
        if task.id not in found:
            raise WaitTimeout(f"no finding for task {task.id} within {timeout:g}s")
        return found[task.id]

    async def wait_many(self, tasks: Iterable[Task], timeout: float = 60.0) -> dict[str, Finding]:
        """Wait for the findings of many tasks; returns those that arrived in time."""
        by_spec: dict[str, set[str]] = {}
        for t in tasks:
            by_spec.setdefault(t.spec, set()).add(t.id)
        deadline = time.monotonic() + timeout
        found: dict[str, Finding] = {}
        cursors: dict[str, str] = {}
        for spec, ids in by_spec.items():
            cursors[spec], existing = await self._start_wait(spec, ids)
            found.update((f.task_id, f) for f in existing if f.task_id in ids)
        wanted = {s: ids - found.keys() for s, ids in by_spec.items()}
        while any(wanted.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            live = {s: c for s, c in cursors.items() if wanted[s]}
            cursors_new, batch = await self.results.follow(live, block_ms=max(1, int(left * 1000)))
            cursors.update(cursors_new)
            for f in batch:
                if f.task_id in wanted.get(f.spec, ()):
                    found[f.task_id] = f
                    wanted[f.spec].discard(f.task_id)
        return found

    async def _start_wait(self, spec: str, ids: set[str]) -> tuple[str, list[Finding]]:
        """A follow cursor and the findings that exist already. Tasks submitted by
        this Swarm moments ago need no round trip for that (``submit`` read the cursor
        and marker with the XADD); for any other task, one probe."""
        hints = [self._watched.pop((spec, i), None) for i in ids]
        fresh = time.monotonic() - WATCH_FRESH
        if all(h is not None and h[0] >= fresh for h in hints):
            known = [h for h in hints if h is not None]
            cursor = min((h[1] for h in known), key=entry_order)
            return cursor, await self.results.entries(spec, [h[2] for h in known if h[2]])
        return await self.results.probe(spec, sorted(ids))

    async def findings(
        self,
        spec: str | None = None,
        *,
        shard: str | None = None,
        task_id: str | None = None,
        count: int | None = None,
    ) -> list[Finding]:
        """Stored findings, filtered by spec, shard or task (oldest first).

        With ``count``, the newest ``count`` of them: each spec's stream is read
        backwards for only that many (more pages when a shard filters them), so the
        cost follows ``count``, not the number of stored findings."""
        specs = [spec] if spec else await self.results.specs()
        if task_id is not None:
            for s in specs:
                f = await self.results.finding(s, task_id)
                if f is not None:
                    return [f]
            raise TaskNotFound(f"no finding for task {task_id}")
        out: list[Finding] = []
        for s in specs:
            if count:
                out += await self.results.newest_findings(s, count, shard)
            else:
                found = await self.results.findings(s)
                out += [f for f in found if shard is None or f.shard == shard]
        out.sort(key=lambda f: f.finished)
        return out[-count:] if count else out

    async def cursors(self, specs: Sequence[str] | None = None) -> dict[str, str]:
        """The newest finding id of each spec ('0-0' if none): a ``follow`` start."""
        names = list(specs) if specs else await self.results.specs()
        return {s: await self.results.last_finding_id(s) for s in names}

    async def follow(
        self,
        specs: Sequence[str] | None = None,
        *,
        since: str | Mapping[str, str] = "$",
        block: float = 1.0,
    ) -> AsyncIterator[Finding]:
        """Yield findings as they arrive (``since='0'`` replays stored ones first).

        ``since`` may map specs to ids, as ``cursors()`` returns: each spec then
        starts exactly there, so nothing written after ``cursors()`` is missed.
        """
        default = since if isinstance(since, str) else "$"
        per_spec = {} if isinstance(since, str) else dict(since)
        names = list(specs) if specs else list(per_spec) or await self.results.specs()
        cursors = {}
        for s in names:
            start = per_spec.get(s, default)
            cursors[s] = await self.results.last_finding_id(s) if start == "$" else start
        while True:
            cursors, batch = await self.results.follow(cursors, block_ms=int(block * 1000))
            for f in batch:
                yield f

    # -- dead letters ------------------------------------------------------

    async def dead(self, spec: str, count: int = 100) -> list[DeadLetter]:
        return await self.results.dead(validate_name("spec", spec), count)

    async def requeue(self, spec: str, entry_ids: Sequence[str] | None = None) -> list[str]:
        return await self.results.requeue(validate_name("spec", spec), entry_ids)

    async def purge_dead(self, spec: str) -> int:
        return await self.results.purge_dead(validate_name("spec", spec))
