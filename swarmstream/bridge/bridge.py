"""The JSON-lines bus bridge: one file of the seed's bus, connected to a swarm.

``JsonlBridge.run`` reads the file from where it left off (``Tail``), one batch of
complete lines per ``step``:

- a query line becomes a task (``Forwarder``): of ``--spec``, else of the spec its
  ``to`` names; the finding comes back as a response line appended to the file;
- with ``serve``, a worker claims the tasks of those specs and writes them as query
  lines; the response lines that answer them become their findings (``Server``);
- a line that is not a message of the bus is reported (logged, counted) and skipped.

Each step commits the new file position with what the batch changed in one MULTI,
before anything else happens (submitting, waking a waiting handler), so a bridge
killed at any point and restarted neither repeats nor skips a line. Nothing is
written to the file before the bridge has read it to its end once: what a previous
run wrote there is read back first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmstream.bridge import jsonl
from swarmstream.bridge.forward import Forwarder, Owed
from swarmstream.bridge.serve import CORR_PREFIX, Server
from swarmstream.bridge.tail import Line, Tail
from swarmstream.bridge.wake import FolderWatch
from swarmstream.errors import ConfigError
from swarmstream.keys import validate_name
from swarmstream.settings import Settings
from swarmstream.transport.bridge_state import Commit, FilePosition
from swarmstream.transport.connection import TRANSIENT
from swarmstream.transport.startup import wait_for_redis
from swarmstream.transport.transport import Transport
from swarmstream.worker.worker import EphemeralWorker

log = logging.getLogger(__name__)

#: seconds between cleanups of the correlation records of finished tasks
CLEANUP_EVERY = 5.0


def bridge_name(path: Path, kind: str = "jsonl") -> str:
    """The default name of the bridge of a file: its kind and a digest of its real path."""
    digest = hashlib.sha1(os.path.realpath(path).encode(), usedforsecurity=False).hexdigest()
    return f"{kind}-{digest[:12]}"


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    """What to bridge and how (``swarmstream bridge jsonl``'s options)."""

    path: Path
    #: the spec of every query line's task (None: the spec its ``to`` names)
    spec: str | None = None
    #: turn query lines into tasks
    forward: bool = True
    #: specs whose tasks are written as query lines
    serve: tuple[str, ...] = ()
    #: the bridge's name: its keys, and its consumer name (default: from the path)
    name: str | None = None
    #: ``from`` of the query lines the bridge writes
    sender: str = "swarmstream"
    #: seconds between looks at the file when nothing is new
    poll: float = 0.01
    #: also look as soon as inotify says the file's folder changed (Linux)
    inotify: bool = True
    #: longer lines are reported and skipped (never held in memory)
    max_line: int = 1 << 20
    #: on a first start, skip what the file holds already
    from_end: bool = False
    #: lines per step at most
    batch: int = 1000

    def __post_init__(self) -> None:
        if self.spec is not None:
            validate_name("spec", self.spec)
        for spec in self.serve:
            validate_name("spec", spec)
        if self.name is not None:
            validate_name("bridge", self.name)
        if not self.forward and not self.serve:
            raise ConfigError("a bridge needs a direction: forward query lines, or serve a spec")
        if not 0 < self.poll <= 60:
            raise ConfigError("poll must be more than 0 and at most 60 seconds")
        if self.max_line < 64 or self.batch < 1:
            raise ConfigError("max_line must be at least 64 bytes and batch at least 1")


@dataclass(frozen=True, slots=True)
class BridgeSummary:
    """What a bridge did in one run."""

    name: str
    lines: int
    tasks: int
    responses: int
    queries: int
    answers: int
    malformed: int
    ignored: int
    resets: int


class JsonlBridge:
    """Connects a JSON-lines bus file to a swarm, both ways. Run with ``run()``."""

    def __init__(
        self,
        options: BridgeOptions,
        settings: Settings | None = None,
        *,
        transport: Transport | None = None,
    ) -> None:
        self.options = options
        self.settings = transport.settings if transport else settings or Settings()
        self.name = options.name or bridge_name(options.path)
        self.path = options.path
        self.transport = transport
        self._own_transport = transport is None
        self.counts: Counter[str] = Counter()
        #: set once the file has been read to its end after the start
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()  # the file may have changed (or a stop)
        self._committed: FilePosition | None = None
        self.tail: Tail
        self.forward: Forwarder | None = None
        self.server: Server | None = None
        self.worker: EphemeralWorker | None = None

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    def summary(self) -> BridgeSummary:
        c = self.counts
        responded = self.forward.responded if self.forward else 0
        asked = self.server.asked if self.server else 0
        return BridgeSummary(
            self.name,
            c["lines"],
            c["tasks"],
            responded,
            asked,
            c["answers"],
            c["malformed"],
            c["ignored"],
            c["resets"],
        )

    async def run(self) -> BridgeSummary:
        """Bridge until ``stop()``; returns what was done."""
        if self.transport is None:
            found = await wait_for_redis(
                self.settings.redis,
                wait=self.settings.redis.connect_wait,
                stop=self._stop,
                what=f"bridge {self.name}",
            )
            if found is None:
                return self.summary()
            self.transport = await Transport.open(self.settings, f"swarmstream:{self.name}")
        loops: list[asyncio.Task[Any]] = []
        watch = FolderWatch(self.path, self._changed.set)
        try:
            if self._own_transport:
                await self.transport.check()  # also learns a cluster's slot map
            if self.options.inotify:
                watch.start()
            if await self._start(self.transport):
                loops = self._background(self.transport)
                self.ready.set()
                pos = self.tail.position
                log.info(
                    "bridge %s: %s read up to byte %d (generation %d)",
                    self.name,
                    self.path,
                    pos.offset,
                    pos.gen,
                )
            while not self._stop.is_set():
                self._changed.clear()
                if await self.step():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), self.options.poll)
        except TRANSIENT as exc:
            if not self._stop.is_set():
                raise
            log.warning("bridge %s: stopped while Redis was away (%s)", self.name, exc)
        finally:
            watch.close()
            await self._shutdown(loops)
        return self.summary()

    async def _start(self, transport: Transport) -> bool:
        """Load the state, recover what a previous run left, read to the end;
        False if stopped meanwhile."""
        o = self.options
        state = await transport.bridges.load(self.name)
        self._committed = state.position
        self.tail = Tail(self.path, state.position, o.max_line, o.from_end)
        if o.forward:
            self.forward = Forwarder(
                self.name, transport, self.path, o.spec, self.append, self._stop.is_set
            )
            await self.forward.recover(state.pending)
        if o.serve:
            self.server = Server(self.name, transport, o.serve, o.sender, self.append, state.corr)
        while not await self.step():
            if self._stop.is_set():
                return False
        if self.forward is not None:
            await self.forward.probe()
        return True

    def _background(self, transport: Transport) -> list[asyncio.Task[Any]]:
        loops: list[asyncio.Task[Any]] = []
        if self.forward is not None:
            follow = self.forward.follow
            loops.append(asyncio.create_task(self._supervised(lambda: follow(self._stop))))
        if self.server is not None:
            self.worker = EphemeralWorker(
                list(self.options.serve),
                self.server,
                self.settings,
                name=self.name,
                transport=transport,
            )
            loops.append(asyncio.create_task(self.worker.run()))
            loops.append(asyncio.create_task(self._supervised(self._cleanup_loop)))
        return loops

    async def _shutdown(self, loops: list[asyncio.Task[Any]]) -> None:
        self._stop.set()
        if self.worker is not None:
            self.worker.stop(force=True)  # held tasks are released for immediate reclaim
        if loops:
            _, stuck = await asyncio.wait(loops, timeout=self.settings.worker.grace)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
        if self.ready.is_set():
            await self._read_back()
        with contextlib.suppress(AttributeError):
            self.tail.close()
        if self.transport is not None and self._own_transport:
            await self.transport.aclose()
        log.info("bridge %s stopped: %s", self.name, self.summary())

    async def _read_back(self) -> None:
        """Read the file to its end once more before exiting: the lines this run
        appended last are then settled, even if the file is rotated before the next
        run (which would not see them, and would write those responses again)."""
        try:
            async with asyncio.timeout(min(5.0, self.settings.worker.grace)):
                while not await self.step():
                    pass
        except TRANSIENT as exc:  # TimeoutError is an OSError
            log.warning("bridge %s: last read of %s incomplete (%s)", self.name, self.path, exc)

    # -- one step ----------------------------------------------------------

    async def step(self) -> bool:
        """Read a batch of lines, commit it, act on it; True at the end of the file."""
        assert self.transport is not None
        lines, at_end = self.tail.poll(self.options.batch)
        resets = len(self.tail.resets)
        self.tail.resets.clear()
        if not lines and not resets and self.tail.position == self._committed:
            return at_end
        commit = Commit(self.tail.position, Counter(resets=resets))
        owed: list[Owed] = []
        answered: list[str] = []
        for line in lines:
            self._handle(line, commit, owed, answered)
        store = self.transport.bridges
        await self._retrying(lambda: store.commit(self.name, commit))
        self._committed = commit.position
        self.counts.update(commit.counters)
        if owed and self.forward is not None:
            await self.forward.submit(owed)
        if answered and self.server is not None:
            self.server.resolve(answered)
        return at_end

    def _handle(self, line: Line, commit: Commit, owed: list[Owed], answered: list[str]) -> None:
        counters = commit.counters
        counters["lines"] += 1
        if line.data is None:
            self._malformed(line, line.problem or "unreadable", counters)
            return
        try:
            message = jsonl.parse(line.data)
            if isinstance(message, jsonl.Query):
                kind = self._on_query(line, message, commit, owed)
            elif isinstance(message, jsonl.Response):
                kind = self._on_response(message, commit, answered)
            elif message is jsonl.BLANK:
                return
            else:
                kind = "ignored"
        except jsonl.BadLine as exc:
            self._malformed(line, str(exc), counters)
            return
        counters[kind] += 1

    def _on_query(self, line: Line, query: jsonl.Query, commit: Commit, owed: list[Owed]) -> str:
        if query.id is not None and self.server is not None and self.server.owns(query.id):
            self.server.saw_query(query.id, commit)
            return "queries"
        if self.forward is None or (query.id or "").startswith(CORR_PREFIX):
            return "ignored"  # not forwarded, or written by a bridge for its own agents
        owed.append(self.forward.take(line, query, commit))
        return "tasks"

    def _on_response(self, response: jsonl.Response, commit: Commit, answered: list[str]) -> str:
        ref = response.re
        if ref is not None and self.forward is not None and self.forward.saw_response(ref, commit):
            return "responses"
        if self.server is not None and self.server.saw_answer(response, commit):
            answered.append(ref or "")
            return "answers"
        return "ignored"

    def _malformed(self, line: Line, reason: str, counters: Counter[str]) -> None:
        counters["malformed"] += 1
        log.warning(
            "bridge %s: line at bytes %d-%d of %s skipped: %s",
            self.name,
            line.start,
            line.end,
            self.path,
            reason,
        )

    # -- the file ----------------------------------------------------------

    def append(self, data: bytes) -> None:
        """Append whole lines to the bus file (one write, as the seed's agents do)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    # -- background --------------------------------------------------------

    async def _cleanup_loop(self) -> None:
        assert self.server is not None
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), CLEANUP_EVERY)
            if not self._stop.is_set():
                await self.server.cleanup()

    async def _supervised(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop; Redis away is waited out, a bug logged, and the
        loop restarted until the bridge stops."""
        failures = 0
        while not self._stop.is_set():
            try:
                await body()
                return
            except TRANSIENT as exc:
                failures += 1
                log.warning("bridge %s: Redis unavailable (%s); retrying", self.name, exc)
            except Exception:
                failures += 1
                log.exception("bridge %s: background loop failed; restarting it", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), min(5.0, 0.05 * 2 ** min(failures, 7)))

    async def _retrying(self, op: Callable[[], Awaitable[None]]) -> None:
        """A Redis write, retried with backoff while Redis is away (until stopped)."""
        failures = 0
        while True:
            try:
                await op()
                return
            except TRANSIENT as exc:
                failures += 1
                if self._stop.is_set():
                    raise
                log.warning("bridge %s: Redis unavailable (%s); retrying", self.name, exc)
                await asyncio.sleep(min(5.0, 0.05 * 2 ** min(failures, 7)))
