"""The direct command path: kept connections, the retry policy's replay, cancels,
time limits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from swarmstream.netproxy import FaultProxy
from swarmstream.settings import Settings
from swarmstream.transport import direct
from swarmstream.transport.connection import connect, health_of


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Any]:
    """A client built as swarmstream builds them, with a name of its own."""
    c = connect(settings.redis, client_name=f"direct-{uuid.uuid4().hex[:8]}")
    yield c
    await c.aclose()


def ours(raw: redis.Redis, client: Any) -> list[dict[str, Any]]:
    """The server's view of the connections ``client`` holds."""
    name = client.get_connection_kwargs()["client_name"]
    return [c for c in raw.client_list() if c.get("name") == name]


async def until(check: Any, what: str, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


async def test_sequential_commands_reuse_one_kept_connection(client: Any, raw: redis.Redis) -> None:
    for _ in range(50):
        assert await direct.call(client, "PING") in (b"PONG", True)
    assert len(ours(raw, client)) == 1
    # the kept connection stays in the pool's books: closing the client closes it
    await client.aclose()
    await until(lambda: not ours(raw, client), "the kept connection closed")


async def test_concurrent_commands_keep_at_most_keep_connections(
    client: Any, raw: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:never"
    blocked = [
        asyncio.ensure_future(
            direct.call(client, "BLPOP", key, 0.3, block_ms=300)  # 10 connections at once
        )
        for _ in range(10)
    ]
    await until(lambda: len(ours(raw, client)) == 10, "10 connections blocked")
    assert await asyncio.gather(*blocked) == [None] * 10
    lane = direct.lane(client)
    assert len(lane.idle) == direct.KEEP
    assert len(lane.pool._available_connections) == 10 - direct.KEEP  # given back
    for _ in range(20):  # sequential again: the kept ones serve, nothing new opens
        await direct.call(client, "PING")
    assert len(ours(raw, client)) == 10


async def test_a_killed_kept_connection_is_retried_and_counted(
    client: Any, raw: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:n"
    assert await direct.call(client, "INCR", key) == 1
    health = health_of(client)
    assert health is not None
    before = health.failures
    [conn] = ours(raw, client)
    raw.client_kill_filter(_id=conn["id"])
    # the first try on the dead connection fails; the retry policy reconnects
    assert await direct.call(client, "INCR", key) == 2
    assert health.failures == before + 1
    [again] = ours(raw, client)
    assert again["id"] != conn["id"]


async def test_a_cancelled_read_never_hands_its_late_reply_to_the_next_command(
    client: Any, raw: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:stream"
    raw.xadd(key, {"a": "0"})
    read = asyncio.ensure_future(
        direct.call(client, "XREAD", "BLOCK", 5000, "STREAMS", key, "$", block_ms=5000)
    )
    await until(lambda: any(c.get("cmd") == "xread" for c in ours(raw, client)), "the read blocked")
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    raw.xadd(key, {"a": "1"})  # a reply the cancelled read's connection would carry
    assert await direct.call(client, "GET", f"{namespace}:missing") is None
    assert await direct.call(client, "PING") in (b"PONG", True)
    assert direct.lane(client).idle  # the next commands' connection is kept


async def test_an_error_reply_is_raised_and_the_connection_kept(
    client: Any, raw: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:s"
    raw.set(key, "text")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        await direct.call(client, "LPUSH", key, "x")
    replies = await direct.pipeline(client, [("GET", key), ("LPUSH", key, "x")])
    assert replies[0] == b"text"
    assert isinstance(replies[1], redis.exceptions.ResponseError)
    assert len(ours(raw, client)) == 1


async def test_a_link_gone_silent_costs_each_try_the_time_limit(
    settings: Settings, redis_url: str
) -> None:
    upstream = urlsplit(redis_url)
    with FaultProxy(upstream.hostname or "127.0.0.1", upstream.port or 6379) as proxy:
        via = replace(settings.redis, url=proxy.url_for(), socket_timeout=0.3, retries=1)
        c = connect(via)
        try:
            await direct.call(c, "PING")  # connected, handshake done
            proxy.freeze()  # a middlebox swallows every packet, both ways
            started = time.monotonic()
            with pytest.raises(
                redis.exceptions.TimeoutError, match=r"no reply from Redis in 0\.3s"
            ):
                await asyncio.wait_for(direct.call(c, "PING"), 10)  # a broken limit: 10 s
            took = time.monotonic() - started
            health = health_of(c)
            assert health is not None and health.failures == 2  # the try and its one retry
            assert 0.6 <= took < 3.0, took  # 2 x 0.3 s and a backoff
        finally:
            proxy.thaw()
            await c.aclose()


async def test_a_blocking_read_gets_its_block_time_on_top_of_the_limit(
    settings: Settings, namespace: str
) -> None:
    c = connect(replace(settings.redis, socket_timeout=0.2))
    try:
        started = time.monotonic()
        reply = await direct.call(
            c, "BLPOP", f"{namespace}:never", 0.6, block_ms=600
        )  # 0.6 s > the 0.2 s limit: the read's own block time is allowed for
        assert reply is None
        assert time.monotonic() - started >= 0.55
        health = health_of(c)
        assert health is not None and health.failures == 0
    finally:
        await c.aclose()
