"""The direct command path: the hot commands and every blocking read.

The hot paths (a worker's XREADGROUP and its completion script, a waiter's XREAD,
a submit) and every blocking read go through ``pipeline`` instead of
``client.execute_command``. It skips redis-py's per-command layers (response
callbacks, observability hooks, the timer task around each write) and, on the
common path, two more:

- **The pool's checkout.** Each client keeps a few of its connections out of
  redis-py's pool, taken and given back without the pool's lock, its pid checks and
  its probe read. They stay in the pool's books (checked out), so closing the
  client closes them too. Measured on the 2-core VM of ``benchmarks/latency.py``:
  about 45 µs per command.
- **The retry policy's wrapper.** The first try runs bare, as the policy's first
  try (nested retries, a reconnect's, stay off, as under the policy). If it fails,
  the failure is handed to the client's retry policy as if its own first try had
  failed: counted, the connection dropped, backed off and retried, exactly as
  before. About 20 µs per command.

Time limits: ``socket_timeout`` for an ordinary command, the block time plus
``socket_timeout`` for a blocking read. A limit that expires drops the connection
and counts as a connection failure, so the command is retried on a new one.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swarmstream.transport.connection import RETRYING, Health, health_of

_hiredis_pack: Any
try:  # hiredis's C packer: ~0.6 µs a command, against ~5 µs for redis-py's asyncio one
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - redis[hiredis] is a dependency
    _hiredis_pack = None

#: connections a client keeps out of redis-py's pool for the direct path (one per
#: concurrent hot command: a worker's blocking read, its completion, a renewal...)
KEEP = 4


def pack(conn: Any, commands: Sequence[Sequence[Any]]) -> Any:
    """The commands as RESP bytes (or redis-py's list of chunks without hiredis)."""
    if _hiredis_pack is None:
        return conn.pack_commands(commands)
    return b"".join(_hiredis_pack(tuple(c)) for c in commands)


class Lane:
    """A client's direct-path state: its Health and the connections it keeps."""

    __slots__ = ("health", "idle", "pid", "pool")

    def __init__(self, client: Redis) -> None:
        self.pool: Any = client.connection_pool
        self.health: Health | None = health_of(client)
        self.idle: list[Any] = []
        self.pid = os.getpid()

    def limit(self, block_ms: int | None) -> float | None:
        health = self.health
        if health is None:
            return None
        return health.command_limit if block_ms is None else health.blocking_limit(block_ms)

    async def take(self) -> Any:
        """A connection: a kept one if any is free, else a new checkout of the pool."""
        if self.pid != os.getpid():  # a forked child: the parent's sockets are not its own
            self.idle, self.pid = [], os.getpid()
        if self.idle:
            return self.idle.pop()
        return await self.pool.get_connection()

    async def give_back(self, conn: Any) -> None:
        """Keep it for the next command (up to KEEP), or return it to the pool."""
        if len(self.idle) < KEEP and self.pid == os.getpid():
            self.idle.append(conn)
        else:
            await self.pool.release(conn)


_lanes: weakref.WeakKeyDictionary[Redis, Lane] = weakref.WeakKeyDictionary()


def lane(client: Redis) -> Lane:
    """The direct-path state of ``client`` (made on first use)."""
    found = _lanes.get(client)
    if found is None:
        found = _lanes[client] = Lane(client)
    return found


async def call(client: Redis, *args: Any, block_ms: int | None = None) -> Any:
    """Run one command on the direct path and return the reply as RESP gives it. A
    blocking command gives its ``block_ms``, so that its time limit allows for it.
    An error reply is raised."""
    reply = (await pipeline(client, [args], block_ms=block_ms))[0]
    if isinstance(reply, ResponseError):
        raise reply
    return reply


async def pipeline(
    client: Redis, commands: Sequence[Sequence[Any]], *, block_ms: int | None = None
) -> list[Any]:
    """Several commands in one write on one connection; their replies, in order.
    An error reply is returned in its place (a ResponseError), not raised.

    A connection failure or an expired time limit drops the connection, and the
    commands are sent again on a new one, as the client's retry policy says."""
    state = lane(client)
    limit = state.limit(block_ms)
    conn = await state.take()
    saved = conn.socket_timeout
    kept = False
    try:
        conn.socket_timeout = None  # our own limit, not redis-py's timer per write
        first: Exception | None = None
        token = RETRYING.set(True)  # the policy's first try: nested retries stay off
        try:
            replies = await attempt(conn, commands, limit)
        except Exception as exc:
            first = exc
        finally:
            RETRYING.reset(token)
        if first is not None:
            replies = await _retried(conn, commands, limit, first)
        kept = True
        return replies
    except BaseException:
        # a cancelled or failed exchange leaves the connection's state unknown
        await conn.disconnect(nowait=True)
        raise
    finally:
        conn.socket_timeout = saved
        if kept:
            await state.give_back(conn)
        else:
            await state.pool.release(conn)


async def attempt(conn: Any, commands: Sequence[Sequence[Any]], limit: float | None) -> list[Any]:
    """One try (``exchange``), within the time limit (None: none); an expired limit
    drops the connection and raises redis-py's TimeoutError."""
    if limit is None:
        return await exchange(conn, commands)
    try:
        async with asyncio.timeout(limit):
            return await exchange(conn, commands)
    except TimeoutError:
        await conn.disconnect(nowait=True)
        raise RedisTimeoutError(f"no reply from Redis in {limit:g}s") from None


async def exchange(conn: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send the commands in one write and read their replies (an error reply in its
    place)."""
    await conn.send_packed_command(pack(conn, commands))
    out = []
    for _ in commands:
        try:
            out.append(await conn.read_response())
        except ResponseError as exc:
            out.append(exc)
    return out


async def _retried(
    conn: Any, commands: Sequence[Sequence[Any]], limit: float | None, first: Exception
) -> list[Any]:
    """Hand a failed first try to the connection's retry policy, as its own first
    try: it counts the failure (or raises an error it does not retry, translated),
    drops the connection, backs off and tries again."""
    replayed = False

    async def again() -> list[Any]:
        nonlocal replayed
        if not replayed:
            replayed = True
            raise first
        return await attempt(conn, commands, limit)

    async def failed(error: BaseException) -> None:
        await conn.disconnect()

    result: list[Any] = await conn.retry.call_with_retry(again, failed)
    return result
