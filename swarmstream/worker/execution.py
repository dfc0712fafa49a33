"""Executing one delivered entry: decode, guard, run the handler, decide the outcome.

Nothing here reads from the stream; completions are handed back to the worker,
which batches them. Dead letters and retries are written here, because they are
rare and each must happen before the worker forgets the entry.

Whatever an entry holds and whatever a handler returns or raises, ``run`` ends in
one of: a completion to record (a finding), a scheduled retry, or a dead letter
(with its reason and the entry's original bytes). The worker releases what is left
when it stops. Writes that cannot reach Redis are retried with backoff until they
succeed or the worker gives up at the end of its grace period; they are fenced, so
a write whose lease was lost meanwhile is refused by Redis, never doubled.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from swarmstream import codec, usage
from swarmstream.errors import HandlerError, HandlerTimeout, MalformedEntry
from swarmstream.handlers.base import ContextLike, Handler
from swarmstream.models import Finding, Result, Status, Task
from swarmstream.settings import Settings
from swarmstream.transport.connection import TRANSIENT
from swarmstream.transport.streams import DUPLICATE, RECORDED, Completion, Entry, Streams
from swarmstream.usage import PriceTable, Usage
from swarmstream.worker.hooks import Hooks, Kind
from swarmstream.worker.ledger import Ledger, Owned
from swarmstream.worker.shared_redis import SharedRedis, serving

log = logging.getLogger(__name__)
T = TypeVar("T")
_OK = Status.OK.value
#: backoff of a write that cannot reach Redis: base and cap (seconds), jittered
WRITE_BASE, WRITE_CAP = 0.05, 5.0

__all__ = ["TRANSIENT", "ContextProvider", "Execution", "Outcome", "describe", "retrying"]


class ContextProvider(Protocol):
    """Lends a parent shard's context to the tasks it spawned."""

    async def borrow(self, shard: str) -> ContextLike | None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an execution that left nothing to record ended (a failure was retried or
    dead-lettered already). ``counted`` is False for entries that were not tasks."""

    counted: bool = True
    #: a retry was scheduled: the entry stays in this worker's pending list, on
    #: purpose, until some worker reclaims it after the backoff (never released)
    retrying: bool = False


#: the outcomes without a finding to record, shared (the hot path allocates nothing)
SETTLED = Outcome()
NOT_A_TASK = Outcome(counted=False)
RETRYING = Outcome(retrying=True)


def final_finding(
    entry: Entry,
    task: Task | None,
    status: Status,
    reason: str,
    error: str | None,
    worker: str,
    started: float | None = None,
    spent: Usage | None = None,
) -> Finding | None:
    """The finding that goes with a dead letter (None when the task id is unknown);
    ``spent`` is what its last attempt spent."""
    if task is None:
        return None
    now = time.time()
    return Finding(
        task_id=task.id,
        spec=entry.spec,
        status=status,
        content="",
        shard=task.shard,
        pass_no=task.pass_no,
        worker=worker,
        attempt=entry.deliveries,
        started=started or now,
        finished=now,
        error=codec.safe_text(f"{reason}: {error}" if error else reason),
        created=task.created,
        usage=spent.to_dict() if spent is not None else None,
    )


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, safe to write anywhere (a broken
    ``__str__`` or a lone surrogate in the message cannot break it)."""
    try:
        text = str(exc)
    except Exception:
        text = repr(exc) if type(exc).__repr__ is not BaseException.__repr__ else ""
    if isinstance(exc, HandlerTimeout):
        return codec.safe_text(text)
    name = type(exc).__name__
    return codec.safe_text(f"{name}: {text}" if text else name)


async def retrying(
    op: Callable[[], Awaitable[T]], give_up: Callable[[], bool], what: str = "write"
) -> T:
    """Run a Redis write until it succeeds, with capped, jittered backoff while Redis
    cannot be reached; the last error is raised once ``give_up()`` is true."""
    failures = 0
    while True:
        try:
            return await op()
        except TRANSIENT as exc:
            failures += 1
            if give_up():
                raise
            delay = min(WRITE_CAP, WRITE_BASE * 2 ** min(failures, 10)) * random.uniform(0.5, 1)
            if failures == 1 or failures % 10 == 0:
                log.warning("%s: Redis unavailable (%s); retrying (%d)", what, exc, failures)
            await asyncio.sleep(delay)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, times 0.5-1.0."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)) * random.uniform(0.5, 1.0))


class Execution:
    """Runs deliveries through a handler on behalf of one worker."""

    def __init__(
        self,
        handler: Handler,
        streams: Streams,
        worker: str,
        settings: Settings,
        context: ContextProvider | None,
        hooks: Hooks,
        give_up: Callable[[], bool] = lambda: False,
    ) -> None:
        self.handler = handler
        self.streams = streams
        self.worker = worker
        self.cfg = settings.worker
        self.context = context
        self.hooks = hooks
        self.give_up = give_up
        self.prices = PriceTable.from_mapping(settings.prices)
        self._shared: SharedRedis | None = None

    @property
    def shared_redis(self) -> SharedRedis:
        """What ``worker_redis()`` gives this worker's handlers (built on first use)."""
        if self._shared is None:
            self._shared = SharedRedis(self.streams.link)
        return self._shared

    def _spent(self, reported: Any, meter: usage.Meter) -> Usage | None:
        """What an attempt spent: the usage its handler returned, else what it
        recorded with ``usage.spend()``; priced from the table when it has no cost."""
        spent = usage.normalize(reported) if reported is not None else None
        if spent is None:
            spent = meter.spent
        return self.prices.apply(spent) if spent is not None else None

    async def run(self, owned: Owned) -> Completion | Outcome:
        """Execute one owned entry. Never raises for bad input or a failing handler
        (only CancelledError, and a connection error once the worker gives up).

        Returns the Completion to record (batched by the worker), or an Outcome when
        the entry was settled here (retry scheduled, dead-lettered)."""
        entry = owned.entry
        try:
            task, wire = codec.decode_task(
                entry.spec, entry.fields, self.cfg.max_entry_bytes, entry.deliveries
            )
        except MalformedEntry as exc:
            await self._bury_malformed(entry, exc.reason, exc.task_id)
            return NOT_A_TASK
        except Exception as exc:  # the decoder's contract is MalformedEntry: be safe
            await self._bury_malformed(entry, f"undecodable entry ({describe(exc)})", None)
            return NOT_A_TASK
        owned.note(task)
        if entry.deliveries > task.max_attempts:
            last = await self._write(lambda: self.streams.last_error(entry.spec, task.id))
            error = (last or {}).get("error") or "the worker running it stopped or was killed"
            reason = f"delivered {entry.deliveries} times, max_attempts is {task.max_attempts}"
            await self.bury(entry, reason, str(error), task, Status.DEAD, wire)
            return SETTLED
        owned.started = True
        started = time.time()
        with usage.metering() as meter:
            try:
                result = await self._invoke(task)
                spent = self._spent(result.usage, meter)
                finished = time.time()
                body = codec.finding_body(
                    task,
                    status=_OK,
                    content=result.content,
                    worker=self.worker,
                    sources=result.sources,
                    usage=spent.to_dict() if spent is not None else None,
                    data=result.data,
                    started=started,
                    finished=finished,
                    wire=wire,
                )
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # whatever the handler raised or returned: data
                spent = self._spent(None, meter)
                return await self._failed(entry, task, wire, started, describe(exc), spent)
        return Completion(
            entry.entry_id,
            task.id,
            task.shard or "",
            _OK,
            body,
            task.attempt > 1,
            spent,
            finished - started,
            task.attempt,
        )

    async def _invoke(self, task: Task) -> Result:
        context = None
        if self.handler.needs_context and task.shard and self.context is not None:
            context = await self.context.borrow(task.shard)
        timeout = task.timeout or self.cfg.default_timeout
        with serving(self.shared_redis):  # for swarmstream.worker_redis()
            if timeout is None:
                result = await self.handler(task, context)
            else:
                try:
                    async with asyncio.timeout(timeout):
                        result = await self.handler(task, context)
                except TimeoutError:
                    raise HandlerTimeout(f"timed out after {timeout:g}s") from None
        if not isinstance(result, Result):
            raise HandlerError(f"handler returned {type(result).__name__}, not a Result")
        return result

    async def _write(self, op: Callable[[], Awaitable[T]]) -> T:
        return await retrying(op, self.give_up)

    async def _failed(
        self,
        entry: Entry,
        task: Task,
        wire: str,
        started: float,
        error: str,
        spent: Usage | None = None,
    ) -> Outcome:
        log.info(
            "task %s attempt %d/%d failed: %s", task.id, task.attempt, task.max_attempts, error
        )
        finished = time.time()
        if task.attempt < task.max_attempts:
            delay = backoff(task.attempt, self.cfg.retry_base, self.cfg.retry_max)
            record = {
                "attempt": task.attempt,
                "worker": self.worker,
                "started": started,
                "finished": finished,
                "outcome": "retried",
                "error": error,
                "usage": spent.to_dict() if spent is not None else None,
            }
            ok = await self._write(
                lambda: self.streams.retry_later(
                    entry.spec,
                    self.worker,
                    entry.entry_id,
                    task.id,
                    error,
                    task.attempt,
                    int(delay * 1000),
                    int(self.cfg.claim_idle * 1000),
                    record=record,
                    usage=spent,
                    shard=task.shard or "",
                )
            )
            kind = Kind.RETRIED if ok else Kind.LOST
            self.hooks.outcome(kind, entry.spec, task.id, task.attempt, finished - started, spent)
            return RETRYING if ok else SETTLED
        reason = f"failed on all {task.max_attempts} attempts"
        await self.bury(entry, reason, error, task, Status.FAILED, wire, started, spent)
        return SETTLED

    async def _bury_malformed(self, entry: Entry, reason: str, task_id: str | None) -> None:
        reason = codec.safe_text(f"malformed: {reason}")
        task = None
        if task_id is not None:
            # what is known of a malformed task: its id; created 0 means unknown
            task = Task(entry.spec, "", task_id, attempt=entry.deliveries, created=0.0)
        await self.bury(entry, reason, None, task, Status.DEAD, codec.wire_of(entry.fields))

    async def bury(
        self,
        entry: Entry,
        reason: str,
        error: str | None,
        task: Task | None,
        status: Status = Status.DEAD,
        wire: str = codec.MSGPACK,
        started: float | None = None,
        spent: Usage | None = None,
    ) -> None:
        """Dead-letter an entry, with the task's final finding when its id is known
        (``spent``: what its last attempt spent, added to the totals)."""
        finding = final_finding(entry, task, status, reason, error, self.worker, started, spent)
        why = f"{reason} ({error})" if error else reason
        log.warning("dead-lettering %s/%s: %s", entry.spec, entry.entry_id, why)
        why, err = codec.safe_text(reason), codec.safe_text(error) if error else None
        ok = await self._write(
            lambda: self.streams.bury(
                entry.spec, self.worker, entry, why, err, finding, wire, spent
            )
        )
        kind = Kind.FAILED if status is Status.FAILED else Kind.DEAD
        duration = finding.finished - started if finding and started else None
        self.hooks.outcome(
            kind if ok else Kind.LOST,
            entry.spec,
            task.id if task else None,
            entry.deliveries,
            duration,
            spent,
        )

    def account(
        self, spec: str, items: Sequence[Completion], results: Sequence[int], ledger: Ledger
    ) -> None:
        """Book the results of a complete() batch and forget the entries."""
        outcome = self.hooks.outcome
        for item, result in zip(items, results, strict=True):
            ledger.forget((spec, item.entry_id))
            kind = Kind.DONE if result == RECORDED else Kind.DUPLICATE
            if result not in (RECORDED, DUPLICATE):
                kind = Kind.LOST
                log.warning(
                    "finding for %s discarded: another worker owns the task now",
                    item.task_id,
                )
            outcome(kind, spec, item.task_id, item.attempt, item.duration, item.usage)
