"""What an agent session holds: the tasks it claimed, when each goes back, and why a
task it no longer holds left it (so that a late report gets a clear answer)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from swarmstream.errors import LeaseLost, TaskNotFound
from swarmstream.models import Task
from swarmstream.transport.streams import Entry

#: why-not-held notes kept for tasks that left the session
GONE_NOTES = 1000


@dataclass(slots=True)
class Held:
    """A task the session holds: its entry, and when it is given back."""

    entry: Entry
    task: Task
    wire: str
    claimed: float  # wall clock: the finding's ``started``
    hold: float  # seconds of silence after which the task is released
    touched: float  # monotonic time of the session's last tool call
    due: float | None  # monotonic end of the task's timeout, if it has one

    @property
    def expires(self) -> float:
        return self.touched + self.hold

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "task_id": self.task.id,
            "spec": self.task.spec,
            "shard": self.task.shard,
            "attempt": self.task.attempt,
            "max_attempts": self.task.max_attempts,
            "released_if_silent_for_s": round(self.hold, 3),
            "silent_release_in_s": round(max(0.0, self.expires - now), 3),
            "timeout_in_s": None if self.due is None else round(max(0.0, self.due - now), 3),
        }


class Ledger:
    """Held tasks by task id, the session's activity, and notes on tasks let go.

    ``deferred`` entries are still in the session's pending list on purpose:
    retries waiting for their backoff (any worker's reclaim takes them when due)."""

    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        self.deferred: set[tuple[str, str]] = set()
        self.busy = 0  # tool calls in flight: the session is not silent meanwhile
        self.busy_since: float | None = None  # wall clock, for the heartbeat
        self._gone: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self.held)

    def __iter__(self) -> Iterator[Held]:
        return iter(list(self.held.values()))

    def holds(self, held: Held) -> bool:
        """True while ``held`` is still the held task of its id (nothing settled it)."""
        return self.held.get(held.task.id) is held

    # -- activity ------------------------------------------------------------

    def enter(self) -> None:
        """A tool call starts: the session is alive."""
        self.busy += 1
        self.touch()

    def leave(self) -> None:
        self.busy -= 1
        self.touch()

    def touch(self) -> None:
        now = time.monotonic()
        for held in self.held.values():
            held.touched = now

    def to_json(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [h.to_json(now) for h in self.held.values()]

    # -- holding ---------------------------------------------------------------

    def add(self, held: Held) -> None:
        self.held[held.task.id] = held
        self._gone.pop(held.task.id, None)
        self.deferred.discard((held.entry.spec, held.entry.entry_id))
        self.busy_since = self.busy_since or time.time()

    def take(self, task_id: str) -> Held:
        """Stop holding a task to settle it; TaskNotFound or LeaseLost says why not."""
        held = self.held.pop(task_id, None)
        if held is not None:
            self._idle_check()
            return held
        why = self._gone.get(task_id)
        if why is not None:
            raise LeaseLost(f"task {task_id} is no longer held by this session: {why}")
        raise TaskNotFound(
            f"task {task_id} is not held by this session (claim a task first; "
            "the ping tool lists the tasks you hold)"
        )

    def drop(self, held: Held) -> None:
        """Stop holding a task that is still held (upkeep lets it go)."""
        del self.held[held.task.id]
        self._idle_check()

    def keep(self, held: Held) -> None:
        """Hold a task again after a settling write could not be made."""
        self.held[held.task.id] = held
        self.busy_since = self.busy_since or time.time()

    def forget(self, held: Held, why: str) -> None:
        """Note why a task is no longer held (the answer to a late call about it)."""
        self._gone[held.task.id] = why
        while len(self._gone) > GONE_NOTES:
            self._gone.popitem(last=False)

    def clear(self) -> list[Held]:
        """Stop holding everything; returns what was held."""
        out = list(self.held.values())
        self.held.clear()
        self._idle_check()
        return out

    def _idle_check(self) -> None:
        if not self.held:
            self.busy_since = None
