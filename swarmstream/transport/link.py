"""How commands reach Redis: one adapter per topology, behind one interface.

A ``Link`` owns the redis-py client of a topology and the direct command path
(``call``/``pipeline``/``batch``, see ``connection``) that the hot and the blocking
commands take:

- ``Link`` itself serves one server, and a Sentinel-managed primary: redis-py's
  Sentinel pool resolves the primary on every (re)connect, so a failover costs a
  reconnect, like a restart.
- ``ClusterLink`` serves Redis Cluster: every command goes to the primary that owns
  its key's slot, MOVED refreshes the slot map, ASK is followed with ASKING on the
  same connection, TRYAGAIN and CLUSTERDOWN are waited out, and a dropped connection
  is retried on the slot's (maybe new) primary.

Every multi-key command swarmstream sends stays in one slot (the ``{spec}`` and
``{shard}`` hash tags); ``slot_groups`` tells which keys one command may take
together (all of them on one server; one hash slot on a cluster).

Durability: with ``durable_replicas`` N > 0, ``pipeline(..., durable=True)`` ends its
write with ``WAIT N timeout`` on the same connection, so that the writes are on N
replicas before the call returns (``NotDurable`` otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swarmstream.errors import ConnectionFailed, NotDurable
from swarmstream.settings import RedisSettings
from swarmstream.transport import connection, direct
from swarmstream.transport.connection import Health, SwarmRetry, health_of
from swarmstream.urls import RedisUrl, Topology, parse

T = TypeVar("T")

#: redirections (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) one cluster call follows at most
REDIRECTS = 16


class Link:
    """One Redis server, or the primary that Sentinel names (the base adapter)."""

    topology = Topology.STANDALONE

    def __init__(self, client: Any, settings: RedisSettings, closers: Sequence[Any] = ()) -> None:
        self.client: Any = client  # Redis or RedisCluster: the same command API
        self.settings = settings
        health = health_of(client) if isinstance(client, Redis) else None
        self.health = health or Health(settings)
        self._closers = list(closers)

    @property
    def failures(self) -> int:
        """Connection failures so far (each may have lost a reply)."""
        return self.health.failures

    def slot_groups(self, keys: Sequence[str]) -> list[list[str]]:
        """``keys`` split into groups that one multi-key command may take together."""
        return [list(keys)] if keys else []

    async def call(self, *args: Any, key: str, block_ms: int | None = None) -> Any:
        """One command on the direct path (``key`` routes it); an error reply raises."""
        reply = (await self.pipeline([args], key=key, block_ms=block_ms))[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def pipeline(
        self,
        commands: Sequence[Sequence[Any]],
        *,
        key: str,
        block_ms: int | None = None,
        durable: bool = False,
    ) -> list[Any]:
        """Commands whose keys share ``key``'s slot, in one write on one connection;
        their replies in order (an error reply in its place). ``durable`` ends the
        write with WAIT when ``durable_replicas`` asks for it."""
        wait = self._wait_command() if durable else None
        sent = [*commands, wait] if wait else commands
        replies = await direct.pipeline(self.client, sent, block_ms=block_ms)
        return self._checked(replies, wait)

    async def transaction(self, commands: Sequence[Sequence[Any]], *, key: str) -> list[Any]:
        """Commands of one slot run atomically (MULTI/EXEC) on the direct path; the
        EXEC reply. Works the same on every topology (redis-py's cluster client has
        no transactions before 6.2)."""
        replies = await self.pipeline([("MULTI",), *commands, ("EXEC",)], key=key)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        result = replies[-1]
        if result is None:
            raise ConnectionFailed("a MULTI/EXEC was aborted by the server")
        for reply in result:
            if isinstance(reply, ResponseError):
                raise reply  # a command failed inside the transaction (WRONGTYPE...)
        return list(result)

    async def batch(
        self, commands: Sequence[tuple[str, Sequence[Any]]], *, durable: bool = False
    ) -> list[Any]:
        """(key, command) pairs of any slots: grouped by slot, one ``pipeline`` per
        group (concurrently); replies in the order given."""
        if not commands:
            return []
        groups: dict[int, list[int]] = {}
        for i, (key, _) in enumerate(commands):
            groups.setdefault(self.slot_of(key), []).append(i)
        out: list[Any] = [None] * len(commands)

        async def run(indexes: list[int]) -> None:
            replies = await self.pipeline(
                [commands[i][1] for i in indexes], key=commands[indexes[0]][0], durable=durable
            )
            for i, reply in zip(indexes, replies, strict=True):
                out[i] = reply

        await asyncio.gather(*(run(ix) for ix in groups.values()))
        return out

    def slot_of(self, key: str) -> int:
        """The group a key belongs to (0 for every key of one server)."""
        return 0

    async def load_script(self, source: str | bytes | memoryview) -> None:
        """Load a Lua script where EVALSHA will look for it (every primary)."""
        await self.client.script_load(source)

    async def version(self) -> tuple[int, ...]:
        """Ping and check the server (or the cluster's nodes): Redis 6.2+."""
        return await connection.server_version(self.client, self.settings)

    async def aclose(self) -> None:
        await self.client.aclose()
        for closer in self._closers:
            await closer.aclose()

    def _wait_command(self) -> tuple[Any, ...] | None:
        n = self.settings.durable_replicas
        return ("WAIT", n, int(self.settings.durable_timeout * 1000)) if n > 0 else None

    def _checked(self, replies: list[Any], wait: tuple[Any, ...] | None) -> list[Any]:
        if wait is None:
            return replies
        acked = replies.pop()
        if isinstance(acked, ResponseError) or int(acked) < wait[1]:
            raise NotDurable(
                f"the write reached the primary but {acked} of {wait[1]} replicas "
                f"acknowledged it within {self.settings.durable_timeout:g}s "
                "(durable_replicas); a failover now could lose it",
                replies,
            )
        return replies


async def first_replies(
    groups: Sequence[list[str]], read: Callable[[list[str]], Awaitable[T]]
) -> list[T]:
    """Run a blocking, non-destructive read (XREAD) per group of keys and return
    as soon as one has answered: the replies of those done by then. The others are
    cancelled, which loses nothing (their cursors did not move)."""
    if len(groups) == 1:
        return [await read(groups[0])]
    tasks = [asyncio.ensure_future(read(g)) for g in groups]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return [t.result() for t in tasks if t in done]


class SentinelLink(Link):
    """The primary that Sentinel names; follows a failover on reconnect."""

    topology = Topology.SENTINEL


class ClusterLink(Link):
    """Redis Cluster: each command goes to the primary of its key's slot."""

    topology = Topology.CLUSTER

    def __init__(self, client: RedisCluster, settings: RedisSettings) -> None:
        super().__init__(client, settings)
        self._refreshing: asyncio.Lock = asyncio.Lock()
        self._refreshed = 0.0

    def slot_of(self, key: str) -> int:
        return int(self.client.keyslot(key))

    def slot_groups(self, keys: Sequence[str]) -> list[list[str]]:
        groups: dict[int, list[str]] = {}
        for k in keys:
            groups.setdefault(self.slot_of(k), []).append(k)
        return list(groups.values())

    async def version(self) -> tuple[int, ...]:
        try:
            await self.client.initialize()
        except Exception as exc:
            raise connection.unreachable(self.settings, exc) from None
        return await super().version()

    async def pipeline(
        self,
        commands: Sequence[Sequence[Any]],
        *,
        key: str,
        block_ms: int | None = None,
        durable: bool = False,
    ) -> list[Any]:
        wait = self._wait_command() if durable else None
        out: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        ask: ClusterNode | None = None
        tries = failures = 0
        while True:
            tries += 1
            node = ask or self.client.get_node_from_key(key)
            sent: list[Sequence[Any]] = [("ASKING",)] if ask else []
            sent += [commands[i] for i in todo]
            if wait:
                sent.append(wait)
            try:
                replies = await self._exchange(node, sent, block_ms)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                failures += 1
                self.health.failures += 1
                if failures > self.settings.retries:
                    raise  # transient: the caller's own backoff takes over
                ask = None
                await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                await self._refresh()
                continue
            if ask:
                replies = replies[1:]
            acked = replies.pop() if wait else None
            again: list[int] = []
            redirect: ResponseError | None = None
            for i, reply in zip(todo, replies, strict=True):
                if isinstance(reply, MovedError | AskError | TryAgainError | ClusterDownError):
                    redirect = reply
                    again.append(i)
                else:
                    out[i] = reply
            if wait and acked is not None and again != todo:
                try:
                    self._checked([acked], wait)
                except NotDurable as exc:
                    exc.replies = out
                    raise
            if redirect is None:
                return out
            if tries > REDIRECTS:
                raise ConnectionFailed(f"Redis Cluster kept redirecting: {redirect}")
            todo, ask = again, await self._follow(redirect)

    async def _follow(self, redirect: ResponseError) -> ClusterNode | None:
        """Act on a redirection; the node to send ASKING to, for an ASK."""
        if isinstance(redirect, AskError):
            return await self._node(redirect.host, redirect.port)
        if not isinstance(redirect, MovedError):
            # TRYAGAIN (keys of a slot mid-migration) or CLUSTERDOWN (a failover)
            await asyncio.sleep(0.05 if isinstance(redirect, TryAgainError) else 0.25)
        await self._refresh()
        return None

    async def _exchange(
        self, node: ClusterNode, commands: Sequence[Sequence[Any]], block_ms: int | None
    ) -> list[Any]:
        limit = (
            self.health.command_limit if block_ms is None else self.health.blocking_limit(block_ms)
        )
        conn: Any = node.acquire_connection()
        try:
            conn.socket_timeout = None  # our own limit, not redis-py's timer per write
            return await direct.attempt(conn, commands, limit)
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        finally:
            conn.socket_timeout = self.settings.socket_timeout or None
            release = getattr(node, "release", None)
            if release is not None:
                release(conn)
            else:  # redis-py 6.0
                node._free.append(conn)

    async def _node(self, host: str, port: int) -> ClusterNode | None:
        node = self.client.get_node(host=host, port=port)
        if node is None:
            await self._refresh(force=True)
            node = self.client.get_node(host=host, port=port)
        return node  # type: ignore[no-any-return]

    async def _refresh(self, force: bool = False) -> None:
        """Read the slot map again (once for a burst of redirections)."""
        asked = time.monotonic()
        async with self._refreshing:
            if not force and self._refreshed >= asked:
                return  # another task refreshed it while this one waited
            with contextlib.suppress(Exception):  # the next try reports what is wrong
                await self.client.nodes_manager.initialize()
            self._refreshed = time.monotonic()


def make_link(settings: RedisSettings, client_name: str | None = None) -> Link:
    """The Link that ``settings.url`` names, without any I/O: a redis:// URL gives a
    standalone Link, which ``detect`` turns into a ClusterLink for a cluster node."""
    url = parse(settings.url)
    if url.topology is Topology.SENTINEL:
        return _sentinel(url, settings, client_name)
    if url.topology is Topology.CLUSTER:
        return ClusterLink(_cluster(url, settings, client_name), settings)
    return Link(connection.connect(settings, client_name=client_name), settings)


async def detect(link: Link, client_name: str | None = None) -> Link:
    """``link``, or a ClusterLink in its place when its redis:// URL points at a
    node of a cluster (INFO cluster says cluster_enabled:1). An unreachable server
    is left to the caller's check."""
    if type(link) is not Link or not parse(link.settings.url).hosts:
        return link
    if not await _cluster_enabled(link.client):
        return link
    await link.aclose()
    url = parse(link.settings.url)
    return ClusterLink(_cluster(url, link.settings, client_name), link.settings)


async def open_link(settings: RedisSettings, client_name: str | None = None) -> Link:
    """``make_link`` then ``detect``."""
    return await detect(make_link(settings, client_name), client_name)


async def _cluster_enabled(client: Redis) -> bool:
    try:
        info = await client.info("cluster")
    except ResponseError:
        return False  # INFO not allowed to this ACL user: assume one server
    except (RedisConnectionError, RedisTimeoutError, OSError):
        return False  # not reachable yet: the caller's wait reports it
    return bool(int(info.get("cluster_enabled", 0)))


def _common(settings: RedisSettings, client_name: str | None) -> dict[str, Any]:
    return {
        "socket_timeout": settings.socket_timeout or None,
        "socket_connect_timeout": settings.connect_timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": connection.keepalive_options(),
        "health_check_interval": settings.health_check_interval,
        "client_name": client_name,
    }


def _cluster(url: RedisUrl, settings: RedisSettings, client_name: str | None) -> RedisCluster:
    nodes = [ClusterNode(host, port) for host, port in url.hosts]
    return RedisCluster(
        startup_nodes=nodes,
        username=url.username,
        password=url.password,
        ssl=url.tls,
        decode_responses=False,
        **_common(settings, client_name),
    )


def _sentinel(url: RedisUrl, settings: RedisSettings, client_name: str | None) -> Link:
    common = _common(settings, None)
    sentinel_auth = {
        "username": url.query.get("sentinel_username"),
        "password": url.query.get("sentinel_password"),
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
        list(url.hosts),
        sentinel_kwargs={**common, **sentinel_auth, "ssl": url.tls},
        decode_responses=False,
    )
    client = sentinel.master_for(
        url.master or "",
        redis_class=Redis,
        username=url.username,
        password=url.password,
        db=url.db,
        ssl=url.tls,
        retry=SwarmRetry(Health(settings)),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
        **{**common, "client_name": client_name},
    )
    return SentinelLink(client, settings, closers=sentinel.sentinels)
