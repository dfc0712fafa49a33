"""What a worker holds: the entries it owns in its groups' pending lists, and the
ones it left there on purpose.

An owned entry is renewed only while something is behind it: its handler is
running, its finding waits to be written, or it waits in the read-ahead queue.
Everything else a worker lets go of is forgotten at once, so no lease is ever
renewed with no job behind it.

Deferred entries are still in this worker's pending list, but are not its to run:
a retry waiting for its backoff, or an entry whose outcome could not be written.
Any worker's XAUTOCLAIM takes them once they are due. A worker that lost a reply
(see ``Ledger.strays``) must not take them back by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from swarmstream.models import DEFAULT_MAX_ATTEMPTS, Task
from swarmstream.transport.streams import Entry

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (spec, entry id)


@dataclass(slots=True)
class Owned:
    """An entry this worker owns in a group's pending list."""

    entry: Entry
    job: asyncio.Task[None] | None = None
    task_id: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    started: bool = False  # its handler started: a release then counts
    writing: bool = False  # its finding is queued or being written
    queued: bool = False  # read ahead: waits in the worker's queue for a slot

    @property
    def key(self) -> Key:
        return self.entry.spec, self.entry.entry_id

    def note(self, task: Task) -> None:
        """The entry decoded into ``task``."""
        self.task_id = task.id
        self.max_attempts = task.max_attempts

    @property
    def alive(self) -> bool:
        """Something is behind the entry: a running handler, a finding to write, or
        a place in the worker's read-ahead queue."""
        return self.writing or self.queued or (self.job is not None and not self.job.done())


class Ledger:
    """Owned and deferred entries of one worker."""

    def __init__(self) -> None:
        self.owned: dict[Key, Owned] = {}
        self.deferred: set[Key] = set()

    def __len__(self) -> int:
        return len(self.owned)

    def __contains__(self, key: Key) -> bool:
        return key in self.owned

    def __iter__(self) -> Iterator[Owned]:
        return iter(list(self.owned.values()))

    def add(self, entry: Entry) -> Owned | None:
        """Own a delivered entry; None if it is owned already (a second delivery of
        an entry this worker is running)."""
        key = (entry.spec, entry.entry_id)
        if key in self.owned:
            return None
        self.deferred.discard(key)
        owned = self.owned[key] = Owned(entry)
        return owned

    def get(self, key: Key) -> Owned | None:
        return self.owned.get(key)

    def forget(self, key: Key) -> Owned | None:
        """Stop owning an entry (settled, lost, or left for others)."""
        return self.owned.pop(key, None)

    def defer(self, key: Key) -> Owned | None:
        """Forget an entry that stays in this worker's pending list on purpose."""
        self.deferred.add(key)
        return self.owned.pop(key, None)

    def renewable(self) -> dict[str, list[str]]:
        """Entry ids to renew, by spec: those with something behind them. An entry
        with nothing behind it (a job that died without settling it) is forgotten
        here and logged: its lease runs out and another worker reclaims it."""
        by_spec: dict[str, list[str]] = defaultdict(list)
        for key, owned in list(self.owned.items()):
            if owned.alive:
                by_spec[key[0]].append(key[1])
            elif owned.job is not None:
                log.error("entry %s/%s has no job behind it; left for reclaim", *key)
                self.defer(key)
        return by_spec

    def running(self) -> Iterable[asyncio.Task[None]]:
        return [o.job for o in self.owned.values() if o.job is not None and not o.job.done()]

    def strays(self, spec: str, pending: list[tuple[str, int]], complete: bool) -> list[str]:
        """Entries of ``spec`` in this worker's pending list (``pending``, as XPENDING
        lists them) that it neither owns nor deferred: delivered to it by a read whose
        reply was lost. With ``complete`` (the listing was not cut short), deferred
        entries no longer pending are dropped from the deferred set."""
        listed = {entry_id for entry_id, _ in pending}
        if complete:
            self.deferred = {k for k in self.deferred if k[0] != spec or k[1] in listed}
        return [
            entry_id
            for entry_id, _ in pending
            if (spec, entry_id) not in self.owned and (spec, entry_id) not in self.deferred
        ]
