"""Redis for handlers: the worker's own connection, auto-pipelined.

A handler that opens its own redis-py client pays that client's overhead on every
command, and one round trip per command. ``worker_redis()`` gives it instead the
``SharedRedis`` of the worker that runs it: commands go over the worker's ``Link``
(the direct path of ``transport.connection``), and those that concurrent handlers
issue in the same event-loop turn are sent together, in one pipeline per hash slot.
While a pipeline is in flight, new commands queue for the next one::

    from swarmstream import worker_redis

    async def handler(task):
        hits = await worker_redis().execute("INCR", f"app:hits:{task.text}")
        return f"seen {hits} times"

Replies are raw, as RESP gives them (bytes, not str). An error reply raises
``redis.exceptions.ResponseError`` for its own caller only. A sync handler (run in
the worker's thread pool) calls ``execute_sync``/``pipeline_sync``.

Not for commands that block a connection or change its state (BLPOP, XREAD BLOCK,
WAIT, MULTI, WATCH, SUBSCRIBE, SELECT...): they would hold up, or break, every other
command of the pipeline; those are refused with ``ValueError``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Sequence
from typing import Any

from redis.exceptions import ResponseError

from swarmstream.transport.link import Link

__all__ = ["SharedRedis", "serving", "worker_redis"]

#: commands that would block the shared connection or change its state
REFUSED = frozenset(
    {
        "AUTH", "BLMOVE", "BLMPOP", "BLPOP", "BRPOP", "BRPOPLPUSH", "BZMPOP",
        "BZPOPMAX", "BZPOPMIN", "CLIENT", "DISCARD", "EXEC", "HELLO", "MONITOR",
        "MULTI", "PSUBSCRIBE", "QUIT", "RESET", "SELECT", "SSUBSCRIBE", "SUBSCRIBE",
        "SYNC", "PSYNC", "UNWATCH", "WAIT", "WAITAOF", "WATCH",
    }
)  # fmt: skip
#: the default time limit of a ``*_sync`` call (seconds)
SYNC_TIMEOUT = 60.0


class SharedRedis:
    """An auto-pipelining client over a worker's ``Link`` (see the module docstring).

    ``pipelines`` and ``commands`` count what was sent: with many concurrent
    handlers, far fewer pipelines than commands."""

    def __init__(self, link: Link, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.link = link
        self.loop = loop or asyncio.get_running_loop()
        #: pipelines sent (one per flush, or one per hash slot of a flush on a cluster)
        self.pipelines = 0
        #: commands sent
        self.commands = 0
        self._one_group = type(link).slot_of is Link.slot_of  # not a cluster
        self._queued: list[tuple[Any, Sequence[Any]]] = []  # (routing key, command)
        #: one per caller: its future, how many commands it queued, whether it wants a list
        self._waiters: list[tuple[asyncio.Future[Any], int, bool]] = []
        self._sender: asyncio.Task[None] | None = None

    async def execute(self, *args: Any, key: Any = None) -> Any:
        """Run one command (``"INCR", "k"``); its reply. ``key`` routes it on a
        cluster (default: its first argument after the name)."""
        return await self._queue([(_route(args, key), args)], False)

    async def pipeline(
        self,
        commands: Sequence[Sequence[Any]],
        *,
        key: Any = None,
        raise_on_error: bool = True,
    ) -> list[Any]:
        """Run several commands, sent together (in order within a hash slot); their
        replies in order. An error reply raises (the first one), like redis-py, or is
        returned in its place with ``raise_on_error=False``. ``key`` routes them all."""
        if not commands:
            return []
        replies: list[Any] = await self._queue([(_route(c, key), c) for c in commands], True)
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
        return replies

    def execute_sync(self, *args: Any, key: Any = None, timeout: float = SYNC_TIMEOUT) -> Any:
        """``execute`` from a thread other than the worker's loop (a sync handler)."""
        return self._from_thread(self.execute(*args, key=key), timeout)

    def pipeline_sync(
        self,
        commands: Sequence[Sequence[Any]],
        *,
        key: Any = None,
        raise_on_error: bool = True,
        timeout: float = SYNC_TIMEOUT,
    ) -> list[Any]:
        """``pipeline`` from a thread other than the worker's loop (a sync handler)."""
        coro = self.pipeline(commands, key=key, raise_on_error=raise_on_error)
        result: list[Any] = self._from_thread(coro, timeout)
        return result

    def _from_thread(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread, as in a sync handler
            running = None
        if running is self.loop:  # waiting here would block the loop that must answer
            coro.close()
            raise RuntimeError("on the worker's event loop: await execute() or pipeline()")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _queue(self, commands: list[tuple[Any, Sequence[Any]]], whole: bool) -> asyncio.Future[Any]:
        for _, command in commands:
            _check(command)
        fut = self.loop.create_future()
        self._queued += commands
        self._waiters.append((fut, len(commands), whole))
        if self._sender is None:  # starts on the next turn: this turn's commands join
            # in a context of its own, not the first caller's (its meter, its vars)
            self._sender = self.loop.create_task(self._send(), context=contextvars.Context())
        return fut

    async def _send(self) -> None:
        try:
            while self._queued:
                commands, self._queued = self._queued, []
                waiters, self._waiters = self._waiters, []
                try:
                    replies = await self._exchange(commands)
                except asyncio.CancelledError:
                    for fut, _, _ in waiters:
                        fut.cancel()
                    raise
                except Exception as exc:  # connection lost...: every caller of the flush
                    for fut, _, _ in waiters:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                _deliver(waiters, replies)
        finally:
            self._sender = None
            if self._queued:  # cancelled (the loop is closing) with commands queued
                for fut, _, _ in self._waiters:
                    fut.cancel()
                self._queued, self._waiters = [], []

    async def _exchange(self, commands: list[tuple[Any, Sequence[Any]]]) -> list[Any]:
        self.commands += len(commands)
        if self._one_group:
            self.pipelines += 1
            return await self.link.pipeline([c for _, c in commands], key=commands[0][0])
        self.pipelines += len({self.link.slot_of(k) for k, _ in commands})
        return await self.link.batch(commands)


def _deliver(waiters: list[tuple[asyncio.Future[Any], int, bool]], replies: list[Any]) -> None:
    """Hand each caller its replies (a caller cancelled meanwhile is skipped)."""
    at = 0
    for fut, n, whole in waiters:
        part = replies[at : at + n]
        at += n
        if fut.done():
            continue
        if whole:
            fut.set_result(part)
        elif isinstance(part[0], ResponseError):
            fut.set_exception(part[0])
        else:
            fut.set_result(part[0])


def _route(command: Sequence[Any], key: Any) -> Any:
    if key is not None:
        return key
    return command[1] if len(command) > 1 else ""


def _check(command: Sequence[Any]) -> None:
    if not command:
        raise ValueError("an empty command")
    name = command[0]
    name = (name.decode() if isinstance(name, bytes) else str(name)).upper()
    if name in REFUSED or (name in ("XREAD", "XREADGROUP") and _blocks(command)):
        raise ValueError(
            f"{name} blocks or changes the worker's shared connection; "
            "use a client of your own for it"
        )


def _blocks(command: Sequence[Any]) -> bool:
    """An XREAD/XREADGROUP with a BLOCK option (before STREAMS and the keys)."""
    for arg in command:
        if isinstance(arg, bytes):
            arg = arg.decode(errors="replace")
        word = arg.upper() if isinstance(arg, str) else ""
        if word == "STREAMS":
            return False
        if word == "BLOCK":
            return True
    return False


_current: contextvars.ContextVar[SharedRedis | None] = contextvars.ContextVar(
    "swarmstream_worker_redis", default=None
)


class serving:  # lower case: used like a function, ``with serving(shared):``
    """Make ``shared`` what ``worker_redis()`` returns until the block ends (the
    worker's execution wraps every handler call in it; cheaper than a generator)."""

    __slots__ = ("_shared", "_token")

    def __init__(self, shared: SharedRedis) -> None:
        self._shared = shared

    def __enter__(self) -> None:
        self._token = _current.set(self._shared)

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


def worker_redis() -> SharedRedis:
    """The auto-pipelining Redis client of the worker running the current handler.

    Raises RuntimeError outside a handler run by a swarmstream worker."""
    shared = _current.get()
    if shared is None:
        raise RuntimeError("worker_redis() works only inside a handler run by a swarmstream worker")
    return shared
