"""Domain objects: frozen dataclasses and enums, free of Redis."""

from __future__ import annotations

import enum
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

#: Default number of deliveries before a task is dead-lettered.
DEFAULT_MAX_ATTEMPTS = 3


def new_task_id() -> str:
    """A unique, roughly time-ordered task id (48-bit ms clock + 64 random bits)."""
    return f"{int(time.time() * 1000):012x}{os.urandom(8).hex()}"


class Status(enum.StrEnum):
    """Final status of a task, carried by its one finding."""

    OK = "ok"
    FAILED = "failed"  # the handler failed on every attempt
    DEAD = "dead"  # dead-lettered without a successful run (crash loop, malformed)


class WorkerState(enum.StrEnum):
    """Lifecycle of a worker, published with its heartbeat."""

    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    PAUSED = "paused"  # every spec it serves is paused by its budget; nothing in flight
    DRAINING = "draining"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work posted to a specialization's stream."""

    spec: str
    text: str
    id: str = field(default_factory=new_task_id)
    data: Any = None
    shard: str | None = None
    pass_no: int = 0
    attempt: int = 1
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: float | None = None
    created: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A task as handed to this worker: the stream entry that carries it."""

    task: Task
    entry_id: str
    deliveries: int


@dataclass(frozen=True, slots=True)
class Result:
    """What a handler returns: the content of a finding and its citations."""

    content: str
    sources: tuple[str, ...] = ()
    usage: dict[str, Any] | None = None
    data: Any = None


@dataclass(frozen=True, slots=True)
class Finding:
    """The one outcome of a task, stored in the spec's findings stream."""

    task_id: str
    spec: str
    status: Status
    content: str = ""
    shard: str | None = None
    pass_no: int = 0
    worker: str = ""
    sources: tuple[str, ...] = ()
    usage: dict[str, Any] | None = None
    data: Any = None
    attempt: int = 1
    started: float = 0.0
    finished: float = 0.0
    error: str | None = None
    entry_id: str | None = None
    created: float = 0.0  # when the task was created: finished - created is end to end
    #: the attempts before this one that did not end the task (oldest first): each
    #: a JSON object with attempt, worker, started, finished, error, usage, outcome
    attempts: tuple[dict[str, Any], ...] = ()

    @property
    def duration_ms(self) -> float:
        return max(0.0, (self.finished - self.started) * 1000.0)

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A task (or undecodable entry) moved to the dead-letter stream, with why."""

    entry_id: str
    spec: str
    reason: str
    task_id: str | None
    error: str | None
    attempts: int
    worker: str
    ts: float
    origin_id: str
    fields: dict[str, bytes]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker's published state, as the monitor and status see it."""

    name: str
    host: str
    pid: int
    specs: tuple[str, ...]
    state: WorkerState
    concurrency: int
    current: tuple[str, ...]
    busy_since: float | None
    done: int
    failed: int
    started: float
    heartbeat: float


def worker_name(prefix: str | None = None) -> str:
    """A consumer name unique to this process: ``host-pid-random``."""
    import socket

    base = prefix or socket.gethostname().split(".")[0]
    return f"{base}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
