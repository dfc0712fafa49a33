"""The fault-injecting proxy (swarmstream.netproxy) against a real redis-server, and
its RESP frame scanner (swarmstream.resp) under Hypothesis."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio
from helpers import await_until, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from swarmstream.netproxy import FaultProxy
from swarmstream.resp import RespError, RespScanner

# -- the scanner -------------------------------------------------------------------

_line_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=8).map(
    str.encode
)


def _bulk(kind: bytes, payload: bytes) -> bytes:
    return kind + b"%d\r\n" % len(payload) + payload + b"\r\n"


_leaves = st.one_of(
    _line_text.map(lambda s: b"+" + s + b"\r\n"),
    _line_text.map(lambda s: b"-ERR " + s + b"\r\n"),
    st.integers().map(lambda i: b":%d\r\n" % i),
    st.integers().map(lambda i: b"(%d\r\n" % (i * 10**30)),
    st.floats(allow_nan=False).map(lambda f: b",%r\r\n" % f),
    st.sampled_from([b"$-1\r\n", b"*-1\r\n", b"_\r\n", b"#t\r\n", b"#f\r\n", b"*0\r\n", b"%0\r\n"]),
    st.binary(max_size=20).map(lambda b: _bulk(b"$", b)),  # CR, LF and "*3\r\n" inside
    st.binary(max_size=20).map(lambda b: _bulk(b"!", b)),
    st.binary(max_size=20).map(lambda b: _bulk(b"=", b"txt:" + b)),
)


def _aggregates(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    items = st.lists(children, max_size=4)
    pairs = st.lists(st.tuples(children, children), max_size=3)
    return st.one_of(
        st.tuples(st.sampled_from([b"*", b"~", b">"]), items).map(
            lambda a: a[0] + b"%d\r\n" % len(a[1]) + b"".join(a[1])
        ),
        pairs.map(lambda ps: b"%%%d\r\n" % len(ps) + b"".join(k + v for k, v in ps)),
        st.tuples(pairs, children).map(  # an attribute, then the value it describes
            lambda a: b"|%d\r\n" % len(a[0]) + b"".join(k + v for k, v in a[0]) + a[1]
        ),
    )


_values = st.recursive(_leaves, _aggregates, max_leaves=25)


def _scan(chunks: list[bytes]) -> tuple[list[int], RespScanner]:
    scanner, ends, offset = RespScanner(), [], 0
    for chunk in chunks:
        ends += [offset + end for end in scanner.feed(chunk)]
        offset += len(chunk)
    return ends, scanner


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(_values, min_size=1, max_size=6), data=st.data())
def test_scanner_finds_every_frame_however_the_stream_is_cut(
    frames: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(frames)
    bounds = [sum(map(len, frames[: i + 1])) for i in range(len(frames))]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    ends, scanner = _scan(chunks)
    assert ends == bounds
    assert scanner.at_boundary
    ends, scanner = _scan([stream[i : i + 1] for i in range(len(stream))])
    assert ends == bounds
    ends, scanner = _scan([stream[:-1]])
    assert ends == bounds[:-1]
    assert not scanner.at_boundary


def test_scanner_examples_and_errors() -> None:
    # a top-level attribute and a nested one belong to the frame of their value
    assert RespScanner().feed(b"|1\r\n+k\r\n:1\r\n+OK\r\n:5\r\n") == [17, 21]
    assert RespScanner().feed(b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n*-1\r\n") == [24, 29]
    assert RespScanner().feed(b"|0\r\n$3\r\na\r\n\r\n") == [13]
    for bad in (b"?\r\n", b"$x\r\n", b"+no cr\n", b"\r\n"):
        with pytest.raises(RespError):
            RespScanner().feed(bad)


# -- the proxy ---------------------------------------------------------------------


@pytest.fixture
def upstream(redis_url: str) -> tuple[str, int]:
    parts = urlsplit(redis_url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


@pytest.fixture
def key(namespace: str) -> str:
    return f"{namespace}:{uuid.uuid4().hex[:8]}"


def _client(proxy: FaultProxy, **kwargs: Any) -> redis.Redis:
    """A client that does not retry, so a lost reply shows."""
    return redis.Redis.from_url(proxy.url_for(0), retry=Retry(NoBackoff(), 0), **kwargs)


@pytest.fixture
def sock_to() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for s in opened:
        s.close()


def _connect(proxy: FaultProxy, opened: list[socket.socket]) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    opened.append(s)
    return s


def _recv_exactly(s: socket.socket, n: int, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    buf = b""
    while len(buf) < n:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {buf!r}")
        buf += chunk
    return buf


def _silent(s: socket.socket, within: float = 0.3) -> bool:
    """True when nothing arrives within ``within`` seconds (the connection open)."""
    s.settimeout(within)
    try:
        s.recv(1)
    except TimeoutError:
        return True
    return False


def test_delay_adds_twice_the_delay_to_a_round_trip(upstream: tuple[str, int]) -> None:
    with FaultProxy(*upstream, delay=0.05) as proxy:
        r = _client(proxy)
        r.ping()  # connected
        start = time.perf_counter()
        assert r.ping()
        assert time.perf_counter() - start >= 0.1
        proxy.delay = 0.0
        r.close()
    assert proxy.stats.connections == 1
    assert proxy.stats.turns >= 2


def test_delay_does_not_serialize_pipelined_traffic(
    upstream: tuple[str, int], sock_to: list[socket.socket]
) -> None:
    with FaultProxy(*upstream, delay=0.02) as proxy:
        s = _connect(proxy, sock_to)
        start = time.perf_counter()
        s.sendall(b"*1\r\n$4\r\nPING\r\n" * 200)
        assert _recv_exactly(s, 7 * 200) == b"+PONG\r\n" * 200
        elapsed = time.perf_counter() - start
    assert 0.04 <= elapsed < 2.0
    assert proxy.stats.replies_forwarded == 200
    assert proxy.stats.bytes_down == 1400


def test_handshake_replies_are_never_dropped(
    upstream: tuple[str, int], sock_to: list[socket.socket]
) -> None:
    with FaultProxy(*upstream, drop_replies=1.0) as proxy:
        s = _connect(proxy, sock_to)
        for _ in range(6):
            s.sendall(b"PING\r\n")
            assert _recv_exactly(s, 7) == b"+PONG\r\n"
        s.sendall(b"PING\r\n")
        with pytest.raises(ConnectionError):
            _recv_exactly(s, 7)
        # redis-py 8 connects with up to 6 commands (HELLO 3, CLIENT MAINT_NOTIFICATIONS,
        # CLIENT SETNAME, 2 CLIENT SETINFO, SELECT): none of their replies is dropped
        r = _client(proxy, client_name="handshake", db=1)
        r.connection_pool.release(r.connection_pool.get_connection())
        r.close()
    assert proxy.stats.replies_dropped == 1
    assert proxy.stats.resets == 1


def test_reset_mode_loses_the_reply_of_an_executed_command(
    upstream: tuple[str, int], raw: redis.Redis, key: str
) -> None:
    with FaultProxy(*upstream, drop_mode="reset") as proxy:
        r = _client(proxy)
        r.ping()
        proxy.handshake_replies = 0
        proxy.drop_replies = 1.0
        with pytest.raises(redis.ConnectionError):
            r.incr(key)
        assert raw.get(key) == b"1"  # the server did execute it
        wait_until(lambda: proxy.active == 0, 5, "both connections closed")
        proxy.drop_replies = 0.0
        assert r.incr(key) == 2  # a new connection
        r.close()
    assert (proxy.stats.replies_dropped, proxy.stats.resets) == (1, 1)


def test_swallow_mode_keeps_the_connection_and_the_client_times_out(
    upstream: tuple[str, int], raw: redis.Redis, key: str, sock_to: list[socket.socket]
) -> None:
    with FaultProxy(*upstream, drop_mode="swallow", handshake_replies=0) as proxy:
        r = _client(proxy, socket_timeout=0.3)
        r.ping()
        s = _connect(proxy, sock_to)
        proxy.drop_replies = 1.0
        with pytest.raises(redis.TimeoutError):
            r.incr(key)
        assert raw.get(key) == b"1"
        s.sendall(b"INCR " + key.encode() + b"\r\n")
        wait_until(lambda: raw.get(key) == b"2", 5, "the second INCR executed")
        wait_until(lambda: proxy.stats.replies_dropped == 2, 5, "its reply dropped")
        assert _silent(s, 0.1)
        proxy.drop_replies = 0.0
        s.sendall(b"PING\r\n")
        assert _recv_exactly(s, 7) == b"+PONG\r\n"  # the same connection, still open
        r.close()
    assert proxy.stats.replies_dropped == 2
    assert proxy.stats.resets == 0


def test_drops_are_reproducible_with_a_seed(
    upstream: tuple[str, int], sock_to: list[socket.socket]
) -> None:
    def survivors(seed: int) -> bytes:
        with FaultProxy(*upstream, drop_mode="swallow", drop_replies=0.5, seed=seed) as proxy:
            s = _connect(proxy, sock_to)
            s.sendall(b"".join(b"ECHO %02d\r\n" % i for i in range(40)))
            wait_until(lambda: proxy.stats.replies_forwarded + proxy.stats.replies_dropped == 40)
            kept = _recv_exactly(s, 8 * proxy.stats.replies_forwarded)
            assert _silent(s, 0.05)
            return kept

    first = survivors(7)
    assert 4 * 8 < len(first) < 36 * 8
    assert survivors(7) == first
    assert survivors(8) != first


def test_freeze_holds_traffic_until_thaw(
    upstream: tuple[str, int], sock_to: list[socket.socket]
) -> None:
    with FaultProxy(*upstream) as proxy:
        s = _connect(proxy, sock_to)
        s.sendall(b"PING\r\n")
        assert _recv_exactly(s, 7) == b"+PONG\r\n"
        proxy.freeze()
        assert proxy.frozen
        s.sendall(b"ECHO frozen\r\n")
        wait_until(lambda: proxy.stats.bytes_up == 19, 5, "the command reached the proxy")
        assert _silent(s)
        assert proxy.stats.bytes_down == 7  # it did not reach the server either
        proxy.thaw()
        assert _recv_exactly(s, 12) == b"$6\r\nfrozen\r\n"


def test_reset_all_closes_every_connection(
    upstream: tuple[str, int], sock_to: list[socket.socket]
) -> None:
    with FaultProxy(*upstream) as proxy:
        r = _client(proxy)
        r.ping()
        s = _connect(proxy, sock_to)
        wait_until(lambda: proxy.active == 2, 5, "two connections")
        assert proxy.reset_all() == 2
        with pytest.raises(ConnectionError):
            _recv_exactly(s, 1)
        wait_until(lambda: proxy.active == 0, 5, "no live connection")
        assert r.ping()  # redis-py notices the dead connection and opens another
        assert proxy.stats.connections == 3
        r.close()
    assert proxy.stats.resets == 2


async def test_async_proxy_in_the_running_loop(
    upstream: tuple[str, int], raw: redis.Redis, key: str
) -> None:
    async with FaultProxy(*upstream, delay=0.01, seed=1) as proxy:
        r = redis.asyncio.Redis.from_url(proxy.url_for(0), retry=AsyncRetry(NoBackoff(), 0))
        assert await r.incr(key) == 1
        proxy.drop_replies, proxy.handshake_replies = 1.0, 0
        with pytest.raises(redis.ConnectionError):
            await r.incr(key)
        proxy.drop_replies = 0.0
        assert await r.incr(key) == 3
        proxy.freeze()
        proxy.thaw()
        idle = redis.asyncio.Redis.from_url(proxy.url_for(0), retry=AsyncRetry(NoBackoff(), 0))
        await idle.ping()

        async def two() -> bool:
            return proxy.active == 2

        await await_until(two, 5, "two live connections")
    # closing the proxy closed the live connections: the clients see it
    with pytest.raises(redis.ConnectionError):
        await idle.ping()
    await r.aclose()
    await idle.aclose()
    assert raw.get(key) == b"3"


def test_settings_are_validated(upstream: tuple[str, int]) -> None:
    with pytest.raises(ValueError):
        FaultProxy(*upstream, drop_replies=1.5)
    proxy = FaultProxy(*upstream)
    with pytest.raises(ValueError):
        proxy.delay = -1
    with pytest.raises(ValueError):
        proxy.drop_mode = "lose"  # type: ignore[assignment]
    with pytest.raises(RuntimeError):
        proxy.freeze()  # not running
