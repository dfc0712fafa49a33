"""Building an asyncio Redis client from RedisSettings (the direct command path that
uses it is ``transport.direct``).

Every client swarmstream builds carries a ``SwarmRetry``: redis-py's retry policy
(reconnect with exponential backoff on connection errors and timeouts) plus two
things of ours. Authentication errors are never retried (a wrong password fails
at once, as ``AuthenticationFailed``), and every connection failure is counted in
the client's ``Health``, so a worker can tell that a reply may have been lost
(the server ran the command, the client never saw the answer) and look for
entries the group delivered to it that it does not hold.

Time limits: commands sent through redis-py's API have ``socket_timeout``; the
direct path (``transport.direct``: the hot commands and every blocking read) applies
its own, from the same ``Health``.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    NoPermissionError,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swarmstream.codec import text as _text
from swarmstream.errors import (
    AuthenticationFailed,
    ConfigError,
    ConnectionFailed,
    RedisVersionError,
    SwarmstreamError,
)
from swarmstream.settings import RedisSettings
from swarmstream.transport.errors import translate

log = logging.getLogger(__name__)
T = TypeVar("T")

MIN_VERSION = (6, 2)
#: TCP keepalive: first probe after this many idle seconds, then one per interval;
#: the connection is declared dead after COUNT unanswered probes
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3
KEEPALIVE_DETECT = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT
#: errors that mean "Redis is not reachable right now": worth waiting and retrying
TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
    ClusterError,  # a cluster mid-failover: no node for a slot yet, "TTL exhausted"
    ClusterDownError,
    SlotNotCoveredError,
    TryAgainError,
    MasterDownError,
)


def keepalive_options() -> dict[int, int]:
    """TCP keepalive tuning, for the options this platform has (Linux has all)."""
    wanted = {
        "TCP_KEEPIDLE": KEEPALIVE_IDLE,
        "TCP_KEEPINTVL": KEEPALIVE_INTERVAL,
        "TCP_KEEPCNT": KEEPALIVE_COUNT,
    }
    return {getattr(socket, n): v for n, v in wanted.items() if hasattr(socket, n)}


def translated(settings: RedisSettings, exc: RedisError) -> SwarmstreamError:
    """swarmstream's error for a redis-py error (see ``transport.errors.translate``)."""
    return translate(exc, settings) or AuthenticationFailed(str(exc))


@dataclass(slots=True)
class Health:
    """Shared by every connection of one client."""

    settings: RedisSettings
    #: connection failures so far (each may have lost the reply of a command the
    #: server did run): a worker compares it before and after its reads
    failures: int = 0

    @property
    def command_limit(self) -> float | None:
        """Time limit of one non-blocking command on the direct path (None: none)."""
        return self.settings.socket_timeout or None

    def blocking_limit(self, block_ms: int) -> float | None:
        """Time limit of a blocking read: its block time plus the command limit."""
        limit = self.command_limit
        return None if limit is None else block_ms / 1000 + limit


#: set while a SwarmRetry runs a call in this task (nested calls don't retry)
RETRYING: contextvars.ContextVar[bool] = contextvars.ContextVar("_RETRYING", default=False)


class SwarmRetry(Retry):
    """redis-py's retry policy, counting failures and never retrying bad credentials.

    redis-py deep-copies the retry object into every connection; this one is shared
    on purpose (the count is the client's), so copying returns it unchanged."""

    def __init__(self, health: Health) -> None:
        super().__init__(ExponentialBackoff(cap=2.0, base=0.05), health.settings.retries)
        self.health = health

    def __deepcopy__(self, memo: dict[int, Any]) -> SwarmRetry:
        return self

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> T:
        settings = self.health.settings

        async def checked() -> T:
            try:
                return await do()
            except (AuthenticationError, AuthorizationError) as exc:
                raise translated(settings, exc) from None  # not a RedisError: not retried

        if RETRYING.get():
            # redis-py nests retries: a command's retry wraps the connect's, and a
            # Sentinel connection adds a third around the primary's lookup. Only the
            # outermost retries, or the backoffs multiply (a Sentinel failover took
            # 19 s instead of 4).
            return await checked()
        token = RETRYING.set(True)
        try:
            return await self._outermost(checked, fail, *args, **kwargs)
        finally:
            RETRYING.reset(token)

    async def _outermost(
        self, checked: Callable[[], Awaitable[T]], fail: Callable[..., Any], *args: Any, **kw: Any
    ) -> T:
        async def counted(error: Exception, *rest: Any) -> Any:
            self.health.failures += 1
            result = fail(error, *rest)
            if inspect.isawaitable(result):
                result = await result
            return result

        return await super().call_with_retry(checked, counted, *args, **kw)


def connect(settings: RedisSettings, client_name: str | None = None) -> Redis:
    """A client for ``settings.url`` (redis://, rediss://, unix://), not yet connected.

    Commands are retried with exponential backoff when a connection drops, so a
    short Redis restart or a killed connection costs latency, not errors.
    """
    try:
        client: Redis = Redis.from_url(
            settings.url,
            decode_responses=False,
            socket_timeout=settings.socket_timeout or None,
            socket_connect_timeout=settings.connect_timeout,
            socket_keepalive=True,
            socket_keepalive_options=keepalive_options(),
            health_check_interval=settings.health_check_interval,
            client_name=client_name,
            retry=SwarmRetry(Health(settings)),
            retry_on_error=[RedisConnectionError, RedisTimeoutError, socket.timeout],
        )
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {settings.redacted_url}: {exc}") from None
    return client


def health_of(client: Redis) -> Health | None:
    """The Health of a client built by ``connect`` (None for any other client)."""
    retry = client.get_connection_kwargs().get("retry")  # type: ignore[no-untyped-call]
    return retry.health if isinstance(retry, SwarmRetry) else None


def failures(client: Redis) -> int:
    """Connection failures of a client so far (0 for a client not built by ``connect``)."""
    health = health_of(client)
    return health.failures if health is not None else 0


async def server_version(client: Redis, settings: RedisSettings) -> tuple[int, ...]:
    """Ping the server and check it is at least Redis 6.2; returns its version."""
    try:
        info = await client.info("server")
    except NoPermissionError:
        try:
            await client.ping()  # an ACL user without INFO: assume a supported server
        except NoPermissionError as exc:
            raise translated(settings, exc) from None
        except RedisError as exc:
            raise unreachable(settings, exc) from None
        return MIN_VERSION
    except (AuthenticationError, AuthorizationError) as exc:
        raise translated(settings, exc) from None
    except RedisError as exc:
        raise unreachable(settings, exc) from None
    raw = str(info.get("redis_version", "0"))
    version = tuple(int(p) for p in raw.split(".")[:3] if p.isdigit())
    if version < MIN_VERSION:
        raise RedisVersionError(f"Redis {raw} at {settings.redacted_url} is too old; need 6.2+")
    return version


def unreachable(settings: RedisSettings, exc: BaseException) -> ConnectionFailed:
    return ConnectionFailed(
        f"cannot reach Redis at {settings.redacted_url}: {str(exc).rstrip('.')}. "
        "Start one with 'swarmstream up' or set --redis-url / SWARMSTREAM_REDIS_URL."
    )


def str_hash(reply: Any) -> dict[str, str]:
    """An HGETALL reply as a str-keyed dict ({} for an error reply or no hash)."""
    if isinstance(reply, Exception) or not isinstance(reply, dict):
        return {}
    return {_text(a): _text(b) for a, b in reply.items()}


def fields_of(flat: Sequence[bytes] | None) -> dict[bytes, bytes]:
    """A stream entry's ``[field, value, ...]`` as a dict ({} for a deleted entry)."""
    return dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}


def stream_entries(reply: Any) -> Iterator[tuple[bytes, str, dict[bytes, bytes]]]:
    """(stream key, entry id, fields) of a raw XREAD / XREADGROUP reply, as ``call``
    returns it: RESP3 ``{stream: entries}`` or RESP2 ``[[stream, entries], ...]``."""
    for key, entries in reply.items() if isinstance(reply, dict) else reply or ():
        for entry_id, flat in entries:
            yield key, entry_id.decode(), fields_of(flat)
