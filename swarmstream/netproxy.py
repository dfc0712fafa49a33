"""A TCP proxy that puts network faults between a Redis client and a Redis server.

For tests that prove a worker survives lost replies, and for benchmarks that place
swarmstream 1, 20, 80 or 250 ms away from Redis on a machine without kernel netem.
Point the client at :meth:`FaultProxy.url_for` instead of the server::

    with FaultProxy("127.0.0.1", 6379, delay=0.020) as proxy:     # own loop, own thread
        r = redis.Redis.from_url(proxy.url_for(0))
    async with FaultProxy(host, port, drop_replies=0.01, seed=7) as proxy:  # this loop
        ...

Faults, all adjustable while it runs (``proxy.drop_replies = 0.5``):

* ``delay``: seconds added to each direction (a round trip grows by twice that).
  Every chunk is stamped on arrival and delivered, in order, at arrival + delay by
  a writer per direction, so delays do not add up and pipelined traffic stays
  pipelined: throughput is not serialized, only shifted.
* ``drop_replies``: the probability that a whole server reply is lost. The reply
  stream is cut into replies by :class:`swarmstream.resp.RespScanner`; the decision
  is taken when a reply's first byte arrives. With ``drop_mode="reset"`` the reply
  is discarded and both connections are then reset (RST): the command ran, the client
  only sees a connection error. With ``"swallow"`` the reply vanishes and the
  connection stays open, so the client must notice through its own timeout. The
  first ``handshake_replies`` replies of each connection are never dropped, so that
  clients still connect under high drop rates: the default, 6, covers redis-py 8's
  handshake (HELLO 3, CLIENT MAINT_NOTIFICATIONS, CLIENT SETNAME, 2 CLIENT SETINFO,
  SELECT); the commands after a shorter handshake are spared too. RESP3 push frames
  are never dropped nor counted.
  With ``seed``, connection number n draws from ``Random(f"{seed}/{n}")``: the same
  traffic drops the same replies.
* :meth:`FaultProxy.freeze` / :meth:`FaultProxy.thaw`: a middlebox that stops passing
  packets in both directions without closing anything; held data flows on thaw.
* :meth:`FaultProxy.reset_all`: resets every live connection.

At most 16 MiB wait in each direction of a connection; beyond that the proxy stops
reading from the sender, as TCP would.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import enum
import random
import socket
import struct
import threading
from collections.abc import Callable
from typing import Literal, TypeVar

from swarmstream.resp import RespError, RespScanner

__all__ = ["DropMode", "FaultProxy", "ProxyStats"]

DropMode = Literal["reset", "swallow"]
_T = TypeVar("_T")
_CHUNK = 1 << 16
_LANE_LIMIT = 16 << 20
_PUSH = ord(">")


@dataclasses.dataclass
class ProxyStats:
    """Counters since the proxy started. Replies are counted when their first byte
    arrives; ``turns`` counts client data arriving after server data (round trips)."""

    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    replies_forwarded: int = 0
    replies_dropped: int = 0
    resets: int = 0  # connections reset by drops and reset_all
    turns: int = 0
    unframed: int = 0  # connections whose reply stream the scanner could not follow


class _Mark(enum.Enum):
    EOF = "eof"
    RESET = "reset"


class _Lane:
    """One direction of a connection: chunks with the time they are due, in order."""

    def __init__(self) -> None:
        self.items: collections.deque[tuple[float, bytes | _Mark]] = collections.deque()
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.size = 0

    def put(self, due: float, item: bytes | _Mark) -> None:
        self.items.append((due, item))
        self.ready.set()
        if isinstance(item, bytes):
            self.size += len(item)
            if self.size > _LANE_LIMIT:
                self.room.clear()

    async def get(self) -> tuple[float, bytes | _Mark]:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()

    def sent(self, n: int) -> None:
        self.size -= n
        if self.size <= _LANE_LIMIT:
            self.room.set()


class _Link:
    """A client connection and its upstream connection."""

    def __init__(
        self,
        index: int,
        seed: int | str | None,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.client_r, self.client_w = client
        self.server_r, self.server_w = server
        self.up, self.down = _Lane(), _Lane()
        self.scanner: RespScanner | None = RespScanner()
        self.rng = random.Random(None if seed is None else f"{seed}/{index}")
        self.replies = 0
        self.dropping = False  # the reply being received is being dropped
        self.last = ""  # the direction data last came from
        self.stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def reset(self) -> bool:
        """Resets both connections at once (RST, unsent data lost); False if done already."""
        if self.stop.done():
            return False
        self.stop.set_result(None)
        for writer in (self.client_w, self.server_w):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        return True

    async def close(self) -> None:
        for writer in (self.client_w, self.server_w):
            writer.close()
        for writer in (self.client_w, self.server_w):
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (OSError, TimeoutError):
                writer.transport.abort()


class FaultProxy:
    """Forwards ``listen_host:listen_port`` (0: any free port) to the upstream Redis,
    injecting delay, lost replies, freezes and resets (see the module docstring).

    A context manager that runs the proxy on its own loop in a daemon thread, or an
    async context manager that runs it on the current loop. Settings may be changed
    from any thread while it runs; ``stats`` is read-only outside the proxy."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        delay: float = 0.0,
        drop_replies: float = 0.0,
        drop_mode: DropMode = "reset",
        seed: int | str | None = None,
        handshake_replies: int = 6,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listen_host = listen_host
        self.delay = delay
        self.drop_replies = drop_replies
        self.drop_mode = drop_mode
        self.handshake_replies = handshake_replies
        self.seed = seed
        self.stats = ProxyStats()
        self._listen_port = listen_port
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: socket.socket | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()  # cleared while frozen
        self._flowing.set()
        self._closing = False
        self._thread: threading.Thread | None = None  # start(): run in a thread of its own
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopping: concurrent.futures.Future[None] = concurrent.futures.Future()

    # -- settings ------------------------------------------------------------------

    @property
    def delay(self) -> float:
        return self._delay

    @delay.setter
    def delay(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"delay must be >= 0, got {value}")
        self._delay = float(value)

    @property
    def drop_replies(self) -> float:
        return self._drop_replies

    @drop_replies.setter
    def drop_replies(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"drop_replies must be within [0, 1], got {value}")
        self._drop_replies = float(value)

    @property
    def drop_mode(self) -> DropMode:
        return self._drop_mode

    @drop_mode.setter
    def drop_mode(self, value: DropMode) -> None:
        if value not in ("reset", "swallow"):
            raise ValueError(f"drop_mode must be 'reset' or 'swallow', got {value!r}")
        self._drop_mode: DropMode = value

    @property
    def port(self) -> int:
        """The port the proxy listens on (once started)."""
        if not self._port:
            raise RuntimeError("the proxy is not running")
        return self._port

    def url_for(self, db: int = 0, scheme: str = "redis") -> str:
        """The URL a client uses to reach the upstream server through the proxy."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{scheme}://{host}:{self.port}/{db}"

    @property
    def active(self) -> int:
        """Live proxied connections."""
        return len(self._links)

    @property
    def frozen(self) -> bool:
        return not self._flowing.is_set()

    # -- control -------------------------------------------------------------------

    def freeze(self) -> None:
        """Stops forwarding in both directions, connections left open; data is held."""
        self._call(self._flowing.clear)

    def thaw(self) -> None:
        """Resumes forwarding; held data is delivered, in order, at once."""
        self._call(self._flowing.set)

    def reset_all(self) -> int:
        """Resets every live connection; returns how many."""
        return self._call(self._reset_all)

    def _reset_all(self) -> int:
        n = sum(link.reset() for link in list(self._links))
        self.stats.resets += n
        return n

    def _call(self, fn: Callable[[], _T]) -> _T:
        """Runs ``fn`` on the proxy's loop, from that loop or from another thread."""
        loop = self._loop
        if loop is None or self._closing:
            raise RuntimeError("the proxy is not running")
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            return fn()

        async def call() -> _T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(10)

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> FaultProxy:
        await self.astart()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def astart(self) -> None:
        """Starts listening on the running loop."""
        if self._loop is not None:
            raise RuntimeError("the proxy was started already")
        self._loop = asyncio.get_running_loop()
        # Accepting in a reader callback, not with asyncio.start_server: on 3.11 a
        # connection accepted while that server closes leaks its socket (an assert).
        family = socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET
        self._listener = socket.create_server((self.listen_host, self._listen_port), family=family)
        self._listener.setblocking(False)
        self._loop.add_reader(self._listener.fileno(), self._accept)
        self._port = self._listener.getsockname()[1]

    async def aclose(self) -> None:
        """Stops listening, resets every connection and waits for their tasks."""
        if self._closing or self._listener is None or self._loop is None:
            return
        self._closing = True
        self._loop.remove_reader(self._listener.fileno())
        self._listener.close()
        for link in list(self._links):
            link.reset()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def start(self) -> None:
        """Starts the proxy on its own event loop in a daemon thread."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name="fault-proxy", daemon=True
        )
        self._thread.start()
        self._started.result(10)

    def close(self) -> None:
        """Stops a proxy started with :meth:`start`."""
        if self._thread is None:
            return
        if not self._stopping.done():
            self._stopping.set_result(None)
        self._thread.join(15)
        self._thread = None

    async def _main(self) -> None:
        try:
            await self.astart()
        except Exception as e:
            self._started.set_exception(e)
            return
        self._started.set_result(None)
        await asyncio.wrap_future(self._stopping)
        await self.aclose()

    # -- forwarding ----------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None and self._loop is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # BlockingIOError: none left
                return
            self.stats.connections += 1
            task = self._loop.create_task(self._serve(conn, self.stats.connections))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket, index: int) -> None:
        client = None
        try:
            client = await asyncio.open_connection(sock=conn, limit=_CHUNK)
            server = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 10)
        except BaseException as e:  # the upstream is unreachable, or the proxy closing
            if client is None:
                conn.close()
            else:
                client[1].transport.abort()
            if isinstance(e, OSError | TimeoutError):
                return
            raise
        link = _Link(index, self.seed, client, server)
        if self._closing:
            link.reset()
            return
        self._links.add(link)
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(self._read(link, up=True)),
            loop.create_task(self._read(link, up=False)),
            loop.create_task(self._write(link, link.up, link.server_w)),
            loop.create_task(self._write(link, link.down, link.client_w)),
        ]
        try:
            await asyncio.wait([*tasks[2:], link.stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._links.discard(link)
            await link.close()

    async def _read(self, link: _Link, up: bool) -> None:
        """Stamps what one side sends and queues it for the other side."""
        reader, lane = (link.client_r, link.up) if up else (link.server_r, link.down)
        loop = asyncio.get_running_loop()
        reset = False
        try:
            while not reset:
                await lane.room.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if up:
                    self.stats.bytes_up += len(data)
                    self.stats.turns += link.last != "up"
                else:
                    self.stats.bytes_down += len(data)
                    data, reset = self._filter(link, data)
                link.last = "up" if up else "down"
                if data:
                    lane.put(loop.time() + self._delay, data)
        except OSError:
            pass
        lane.put(loop.time() + self._delay, _Mark.RESET if reset else _Mark.EOF)

    def _filter(self, link: _Link, data: bytes) -> tuple[bytes, bool]:
        """The part of ``data`` to forward, and whether a dropped reply must reset the
        connection after it (the rest of ``data`` is then discarded)."""
        scanner = link.scanner
        if scanner is None:
            return data, False
        fresh = scanner.at_boundary
        try:
            ends = scanner.feed(data)
        except RespError:
            link.scanner = None
            self.stats.unframed += 1
            return data, False
        if not ends or ends[-1] != len(data):
            ends.append(len(data))
        kept: list[bytes] = []
        pos = 0
        for end in ends:
            if fresh:
                link.dropping = self._drops(link, data[pos])
                if link.dropping and self._drop_mode == "reset":
                    return b"".join(kept), True
            if not link.dropping:
                kept.append(data[pos:end])
            pos, fresh = end, True
        return b"".join(kept), False

    def _drops(self, link: _Link, first: int) -> bool:
        """Decides the fate of a reply whose first byte just arrived."""
        if first == _PUSH:
            return False
        link.replies += 1
        p = self._drop_replies
        drop = link.replies > self.handshake_replies and p > 0 and link.rng.random() < p
        if drop:
            self.stats.replies_dropped += 1
        else:
            self.stats.replies_forwarded += 1
        return drop

    async def _write(self, link: _Link, lane: _Lane, writer: asyncio.StreamWriter) -> None:
        """Delivers a lane's chunks when they are due; returns after EOF or a reset."""
        loop = asyncio.get_running_loop()
        flowing = self._flowing
        try:
            while True:
                due, item = await lane.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await flowing.wait()
                if item is _Mark.RESET:
                    if link.reset():
                        self.stats.resets += 1
                    return
                if writer.is_closing():
                    return
                if item is _Mark.EOF:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                batch = [item]  # chunks already due go out in one write
                now = loop.time()
                while lane.items and lane.items[0][0] <= now:
                    head = lane.items[0][1]
                    if not isinstance(head, bytes):
                        break
                    batch.append(head)
                    lane.items.popleft()
                data = b"".join(batch)
                writer.write(data)
                lane.sent(len(data))
                await writer.drain()
        except OSError:
            return
