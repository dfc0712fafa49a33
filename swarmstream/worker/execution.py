"""Executing one delivered entry: decode, guard, run the handler, decide the outcome.

Nothing here reads from the stream; completions are handed back to the worker,
which batches them. Dead letters and retries are written here, because they are
rare and each must happen before the worker forgets the entry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swarmstream import codec
from swarmstream.errors import HandlerTimeout, MalformedEntry
from swarmstream.handlers.base import ContextLike, Handler
from swarmstream.models import Delivery, Finding, Result, Status, Task
from swarmstream.settings import Settings
from swarmstream.transport.streams import DUPLICATE, RECORDED, Completion, Entry, Streams

log = logging.getLogger(__name__)
T = TypeVar("T")
_OK = Status.OK.value
TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


class ContextProvider(Protocol):
    """Lends a parent shard's context to the tasks it spawned."""

    async def borrow(self, shard: str) -> ContextLike | None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an execution that left nothing to record ended (a failure was retried or
    dead-lettered already). ``counted`` is False for entries that were not tasks."""

    counted: bool = True


#: the two outcomes without a finding to record, shared (the hot path allocates nothing)
SETTLED = Outcome()
NOT_A_TASK = Outcome(counted=False)


async def retrying(op: Callable[[], Awaitable[T]], attempts: int = 10) -> T:
    """Run a Redis write, retrying transient failures with capped backoff."""
    for i in range(attempts):
        try:
            return await op()
        except TRANSIENT:
            if i == attempts - 1:
                raise
            await asyncio.sleep(min(2.0, 0.05 * 2**i))
    raise AssertionError("unreachable")


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
        counts: MutableMapping[str, int],
    ) -> None:
        self.handler = handler
        self.streams = streams
        self.worker = worker
        self.cfg = settings.worker
        self.context = context
        self.counts = counts

    async def run(self, entry: Entry, note: Callable[[Task], None]) -> Completion | Outcome:
        """Execute one entry. Never raises for bad input or a failing handler.

        Returns the Completion to record (batched by the worker), or an Outcome when
        the entry was settled here (retry scheduled, dead-lettered)."""
        try:
            task, wire = codec.decode_task(
                entry.spec, entry.fields, self.cfg.max_entry_bytes, entry.deliveries
            )
        except MalformedEntry as exc:
            wire = codec.wire_of(entry.fields)
            reason = f"malformed: {exc.reason}"
            await self._bury(entry, reason, None, exc.task_id, None, Status.DEAD, wire)
            return NOT_A_TASK
        note(task)
        if entry.deliveries > task.max_attempts:
            last = await retrying(lambda: self.streams.last_error(entry.spec, task.id))
            error = (last or {}).get("error") or "the worker running it stopped or was killed"
            reason = f"delivered {entry.deliveries} times, max_attempts is {task.max_attempts}"
            delivery = Delivery(task, entry.entry_id, entry.deliveries)
            await self._bury(entry, reason, error, task.id, delivery, Status.DEAD, wire)
            return SETTLED
        started = time.time()
        try:
            result = await self._invoke(task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the handler's failure is data, not a crash
            error = str(exc) if isinstance(exc, HandlerTimeout) else f"{type(exc).__name__}: {exc}"
            delivery = Delivery(task, entry.entry_id, entry.deliveries)
            await self._failed(entry, delivery, wire, started, error)
            return SETTLED
        body = codec.finding_body(
            task,
            status=_OK,
            content=result.content,
            worker=self.worker,
            sources=result.sources,
            usage=result.usage,
            data=result.data,
            started=started,
            finished=time.time(),
            wire=wire,
        )
        return Completion(entry.entry_id, task.id, task.shard or "", _OK, body, task.attempt > 1)

    async def _invoke(self, task: Task) -> Result:
        context = None
        if self.handler.needs_context and task.shard and self.context is not None:
            context = await self.context.borrow(task.shard)
        timeout = task.timeout or self.cfg.default_timeout
        if timeout is None:
            return await self.handler(task, context)
        try:
            async with asyncio.timeout(timeout):
                return await self.handler(task, context)
        except TimeoutError:
            raise HandlerTimeout(f"timed out after {timeout:g}s") from None

    async def _failed(
        self, entry: Entry, delivery: Delivery, wire: str, started: float, error: str
    ) -> None:
        task = delivery.task
        log.info(
            "task %s attempt %d/%d failed: %s", task.id, task.attempt, task.max_attempts, error
        )
        if task.attempt < task.max_attempts:
            delay = backoff(task.attempt, self.cfg.retry_base, self.cfg.retry_max)
            ok = await retrying(
                lambda: self.streams.retry_later(
                    entry.spec,
                    self.worker,
                    entry.entry_id,
                    task.id,
                    error,
                    task.attempt,
                    int(delay * 1000),
                    int(self.cfg.claim_idle * 1000),
                )
            )
            self.counts["retried" if ok else "lost"] += 1
            return
        reason = f"failed on all {task.max_attempts} attempts"
        await self._bury(entry, reason, error, task.id, delivery, Status.FAILED, wire, started)

    async def _bury(
        self,
        entry: Entry,
        reason: str,
        error: str | None,
        task_id: str | None,
        delivery: Delivery | None,
        status: Status = Status.DEAD,
        wire: str = codec.MSGPACK,
        started: float | None = None,
    ) -> None:
        now = time.time()
        finding = None
        if task_id is not None:
            task = delivery.task if delivery else None
            finding = Finding(
                task_id=task_id,
                spec=entry.spec,
                status=status,
                content="",
                shard=task.shard if task else None,
                pass_no=task.pass_no if task else 0,
                worker=self.worker,
                attempt=entry.deliveries,
                started=started or now,
                finished=now,
                error=f"{reason}: {error}" if error else reason,
            )
        log.warning("dead-lettering %s/%s: %s (%s)", entry.spec, entry.entry_id, reason, error)
        ok = await retrying(
            lambda: self.streams.bury(entry.spec, self.worker, entry, reason, error, finding, wire)
        )
        key = "failed" if status is Status.FAILED else "dead"
        self.counts[key if ok else "lost"] += 1

    def account(
        self,
        spec: str,
        items: Sequence[Completion],
        results: Sequence[int],
        owned: MutableMapping[tuple[str, str], Any],
    ) -> None:
        """Book the results of a complete() batch and forget the entries."""
        for item, result in zip(items, results, strict=True):
            owned.pop((spec, item.entry_id), None)
            if result == RECORDED:
                self.counts["done"] += 1
            elif result == DUPLICATE:
                self.counts["duplicate"] += 1
            else:
                self.counts["lost"] += 1
                log.warning(
                    "finding for %s discarded: another worker owns the task now",
                    item.task_id,
                )
