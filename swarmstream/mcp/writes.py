"""The writes that end or defer an entry for an agent session, made as the worker
makes them (``worker.execution``): dead letters, retries with backoff, releases.

Each write is retried with backoff while Redis cannot be reached, for up to
WRITE_PATIENCE seconds; each is fenced by Redis, so one whose lease was lost
meanwhile is refused (False, 0), never doubled.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import TypeVar

from swarmstream import codec
from swarmstream.models import Status, Task
from swarmstream.settings import WorkerSettings
from swarmstream.transport.streams import Entry, Streams
from swarmstream.worker.execution import backoff, final_finding, retrying

log = logging.getLogger(__name__)
T = TypeVar("T")

#: how long a write keeps retrying while Redis cannot be reached (s)
WRITE_PATIENCE = 10.0


class Writes:
    """Dead letters, retries and releases of one consumer (the session)."""

    def __init__(
        self,
        streams: Streams,
        name: str,
        cfg: WorkerSettings,
        counts: MutableMapping[str, int],
    ) -> None:
        self.streams = streams
        self.name = name
        self.cfg = cfg
        self.counts = counts

    async def write(self, op: Callable[[], Awaitable[T]]) -> T:
        """A Redis write, retried with backoff for up to WRITE_PATIENCE seconds."""
        end = time.monotonic() + WRITE_PATIENCE
        return await retrying(op, lambda: time.monotonic() >= end)

    async def bury(
        self,
        entry: Entry,
        reason: str,
        error: str | None,
        task: Task | None,
        status: Status,
        wire: str,
        started: float | None = None,
    ) -> bool:
        """Dead-letter an entry with the task's final finding when its id is known
        (as ``Execution.bury`` does); False if the lease was lost."""
        finding = final_finding(entry, task, status, reason, error, self.name, started)
        why = f"{reason} ({error})" if error else reason
        log.warning("dead-lettering %s/%s: %s", entry.spec, entry.entry_id, why)
        why, err = codec.safe_text(reason), codec.safe_text(error) if error else None
        ok = await self.write(
            lambda: self.streams.bury(entry.spec, self.name, entry, why, err, finding, wire)
        )
        key = "failed" if status is Status.FAILED else "dead"
        self.counts[key if ok else "lost"] += 1
        return ok

    async def bury_malformed(self, entry: Entry, reason: str, task_id: str | None) -> None:
        """Dead-letter an entry that is not a task (with a finding if its id is known)."""
        reason = codec.safe_text(f"malformed: {reason}")
        task = None
        if task_id is not None:  # what is known of a malformed task: its id
            task = Task(entry.spec, "", task_id, attempt=entry.deliveries, created=0.0)
        await self.bury(entry, reason, None, task, Status.DEAD, codec.wire_of(entry.fields))

    async def retry_later(self, entry: Entry, task: Task, error: str) -> float | None:
        """Keep a failed attempt's entry pending, reclaimable by any worker after a
        jittered exponential backoff; returns that delay, None if the lease was lost."""
        delay = backoff(task.attempt, self.cfg.retry_base, self.cfg.retry_max)
        ok = await self.write(
            lambda: self.streams.retry_later(
                entry.spec,
                self.name,
                entry.entry_id,
                task.id,
                error,
                task.attempt,
                int(delay * 1000),
                int(self.cfg.claim_idle * 1000),
            )
        )
        if not ok:
            return None
        self.counts["retried"] += 1
        return min(delay, self.cfg.claim_idle)  # a longer backoff is capped by reclaim

    async def release(self, items: Sequence[tuple[Entry, int]]) -> dict[str, int]:
        """Release entries for immediate reclaim without spending an attempt, each with
        its limit (its task's max_attempts when the agent had it, so that the release
        counts, else 0). Per entry id: 1 released, 0 not ours, -n exhausted."""
        by_spec: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for entry, limit in items:
            by_spec[entry.spec].append((entry.entry_id, limit))
        out: dict[str, int] = {}
        idle_ms = int(self.cfg.claim_idle * 1000)
        for spec, pairs in by_spec.items():
            op = functools.partial(self.streams.release, spec, self.name, pairs, idle_ms)
            for (entry_id, _), result in zip(pairs, await self.write(op), strict=True):
                out[entry_id] = result
                if result == 1:
                    self.counts["released"] += 1
        return out
