"""Worker hooks: what a worker does, told to whoever listens (metrics, logs, tracing).

A hook is an object with any of the methods of ``WorkerHooks`` (subclass it and
override what you need). The worker calls them through one ``Hooks`` dispatcher,
from its event loop, never from a handler's thread: a hook must return quickly and
must not block (hand slow work to a thread of its own). A hook that raises is logged
once per method and otherwise ignored; it can never stop a worker or lose a task.

Events:

- ``outcome``: an execution ended (``OutcomeEvent``): a finding recorded, a
  duplicate, a retry scheduled, a final failure or dead letter, or a result lost
  because another worker owns the task now;
- ``state``: the worker's state changed (starting, idle, busy, paused, draining,
  stopped);
- ``lease``: lease bookkeeping (``LeaseEvent``): renewals, leases found lost,
  entries reclaimed from dead workers, recovered after a lost reply, released at exit;
- ``reconnect``: the connection to Redis failed and was re-established.

The worker's own counters (``WorkerSummary``, the heartbeat's done and failed) are
kept by ``Tally``, the first hook of every worker.
"""

from __future__ import annotations

import enum
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from swarmstream.models import WorkerState

log = logging.getLogger(__name__)


class Kind(enum.StrEnum):
    """How one execution of a task ended, as the worker saw it."""

    DONE = "done"  # finding recorded
    DUPLICATE = "duplicate"  # the task had a finding already; this one was dropped
    RETRIED = "retried"  # the attempt failed; a retry is scheduled
    FAILED = "failed"  # the last attempt failed: final finding + dead letter
    DEAD = "dead"  # dead-lettered without a run (malformed, too many deliveries)
    LOST = "lost"  # another worker owns the task now: this outcome was discarded


class LeaseKind(enum.StrEnum):
    """Lease bookkeeping events."""

    RENEWED = "renewed"  # leases renewed (count = entries in one renewal round)
    LOST = "lost"  # leases found taken by another worker or acked elsewhere
    RECLAIMED = "reclaimed"  # entries taken over from a dead worker, or retries due
    RECOVERED = "recovered"  # delivered by a read whose reply was lost, found again
    RELEASED = "released"  # handed back at exit for immediate reclaim


@dataclass(frozen=True, slots=True)
class OutcomeEvent:
    """One execution's end."""

    kind: Kind
    spec: str
    task_id: str | None
    attempt: int = 1
    #: seconds the handler ran (None when it did not run)
    duration: float | None = None
    #: what the attempt spent (``swarmstream.usage.Usage``), when known
    usage: Any = None


@dataclass(frozen=True, slots=True)
class LeaseEvent:
    """Lease bookkeeping of one spec."""

    kind: LeaseKind
    spec: str
    count: int = 1


class WorkerHooks:
    """Base class of a worker hook: every method does nothing."""

    def outcome(self, event: OutcomeEvent) -> None:
        """An execution ended."""

    def state(self, old: WorkerState, new: WorkerState) -> None:
        """The worker's state changed."""

    def lease(self, event: LeaseEvent) -> None:
        """Leases were renewed, lost, reclaimed, recovered or released."""

    def reconnect(self) -> None:
        """The connection to Redis failed and was re-established."""


class Tally(WorkerHooks):
    """The worker's own counters, by outcome and lease event."""

    def __init__(self) -> None:
        self.counts: defaultdict[str, int] = defaultdict(int)

    def outcome(self, event: OutcomeEvent) -> None:
        self.counts[event.kind.value] += 1

    def lease(self, event: LeaseEvent) -> None:
        if event.kind is not LeaseKind.RENEWED:
            self.counts[event.kind.value] += event.count

    def reconnect(self) -> None:
        self.counts["reconnects"] += 1


class Hooks:
    """Calls every hook of a worker in turn; a failing hook is logged, then ignored."""

    def __init__(self, hooks: Iterable[WorkerHooks] = ()) -> None:
        self.tally = Tally()
        self.hooks: list[WorkerHooks] = [self.tally, *hooks]
        self._warned: set[tuple[int, str]] = set()

    @property
    def counts(self) -> defaultdict[str, int]:
        return self.tally.counts

    def add(self, hook: WorkerHooks) -> None:
        self.hooks.append(hook)

    def outcome(
        self,
        kind: Kind,
        spec: str,
        task_id: str | None,
        attempt: int = 1,
        duration: float | None = None,
        usage: Any = None,
    ) -> None:
        self._emit("outcome", OutcomeEvent(kind, spec, task_id, attempt, duration, usage))

    def state(self, old: WorkerState, new: WorkerState) -> None:
        if old is not new:
            self._emit("state", old, new)

    def lease(self, kind: LeaseKind, spec: str, count: int = 1) -> None:
        if count > 0:
            self._emit("lease", LeaseEvent(kind, spec, count))

    def reconnect(self) -> None:
        self._emit("reconnect")

    def _emit(self, method: str, *args: Any) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, method)(*args)
            except Exception:
                key = (id(hook), method)
                if key not in self._warned:
                    self._warned.add(key)
                    log.exception("worker hook %r failed in %s (ignored)", hook, method)
