"""What a bus bridge keeps in Redis (``swarmstream bridge``): where it is in its
file, the tasks it submitted and still owes a response line, and the correlation
records of the tasks it serves as query lines.

Every write of one batch of lines is one MULTI on the bridge's slot (``commit``);
the tasks a batch submits go to each spec in one MULTI that also records how far in
the file that spec has been fed (``submit``), so a restarted bridge can tell a
committed task that reached its stream from one that did not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from swarmstream import codec
from swarmstream.codec import text as _s
from swarmstream.errors import ConnectionFailed
from swarmstream.keys import Keys
from swarmstream.models import Task
from swarmstream.transport.link import Link
from swarmstream.transport.streams import Streams

#: a place in a bus file: (generation, byte offset); a new file is a new generation
Mark = tuple[int, int]


@dataclass(frozen=True, slots=True)
class FilePosition:
    """Where a bridge is in its file: the file's identity, its generation (one more
    for every truncation or rotation seen) and the offset of the next unread line."""

    dev: int = 0
    ino: int = 0
    gen: int = 0
    offset: int = 0

    @property
    def mark(self) -> Mark:
        return (self.gen, self.offset)


@dataclass(slots=True)
class BridgeState:
    """A bridge's state as loaded at start: position (None on a first start),
    counters, and the pending and correlation records (JSON text by id)."""

    position: FilePosition | None
    counters: dict[str, int]
    pending: dict[str, str]
    corr: dict[str, str]


@dataclass(slots=True)
class Commit:
    """What one batch of lines changed, written atomically with the new position."""

    position: FilePosition
    counters: Counter[str] = field(default_factory=Counter)
    pending_set: dict[str, str] = field(default_factory=dict)
    pending_del: set[str] = field(default_factory=set)
    corr_set: dict[str, str] = field(default_factory=dict)


_POSITION = ("dev", "ino", "gen", "offset")


class BridgeStore:
    """The Redis state of bus bridges, and their submissions."""

    def __init__(self, link: Link, keys: Keys, streams: Streams) -> None:
        self.link = link
        self.keys = keys
        self.streams = streams

    async def load(self, bridge: str) -> BridgeState:
        """State, pending and correlation records of a bridge (one round trip)."""
        k = self.keys.bridge(bridge)
        replies = await self.link.pipeline(
            [("HGETALL", k.state), ("HGETALL", k.pending), ("HGETALL", k.corr)], key=k.state
        )
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        state, pending, corr = (_text_map(r) for r in replies)
        position = None
        if all(name in state for name in _POSITION):
            position = FilePosition(*(int(state.pop(name)) for name in _POSITION))
        counters = {name: int(value) for name, value in state.items() if value.isdigit()}
        return BridgeState(position, counters, pending, corr)

    async def commit(self, bridge: str, commit: Commit) -> None:
        """Write a batch's new position, counters and records in one MULTI."""
        k = self.keys.bridge(bridge)
        p = commit.position
        commands: list[tuple[Any, ...]] = [
            ("HSET", k.state, "dev", p.dev, "ino", p.ino, "gen", p.gen, "offset", p.offset)
        ]
        commands += [("HINCRBY", k.state, n, v) for n, v in commit.counters.items() if v]
        if commit.pending_set:
            commands.append(("HSET", k.pending, *_flat(commit.pending_set)))
        if commit.pending_del:
            commands.append(("HDEL", k.pending, *sorted(commit.pending_del)))
        if commit.corr_set:
            commands.append(("HSET", k.corr, *_flat(commit.corr_set)))
        await self.link.transaction(commands, key=k.state)

    async def forget_corr(self, bridge: str, corr_ids: Sequence[str]) -> None:
        """Delete correlation records (their tasks have findings)."""
        if corr_ids:
            k = self.keys.bridge(bridge)
            await self.link.call("HDEL", k.corr, *corr_ids, key=k.corr)

    async def submitted(self, bridge: str, spec: str) -> Mark | None:
        """How far in its file the bridge has submitted tasks to ``spec``."""
        key = self.keys.spec(spec).bridged(bridge)
        raw = await self.link.call("GET", key, key=key)
        if raw is None:
            return None
        gen, _, offset = _s(raw).partition(":")
        return int(gen), int(offset)

    async def submit(self, bridge: str, spec: str, tasks: Sequence[Task], upto: Mark) -> list[str]:
        """Append tasks to one spec's stream and record ``upto`` as the bridge's mark
        for that spec, in one MULTI (so both happen or neither); the entry ids.
        With ``durable_replicas``, NotDurable if the replicas fall short."""
        await self.streams.ensure_group(spec)
        k = self.keys.spec(spec)
        commands: list[tuple[Any, ...]] = [("MULTI",)]
        commands += [("XADD", k.tasks, "*", codec.BODY, _body(t)) for t in tasks]
        commands += [("SET", k.bridged(bridge), f"{upto[0]}:{upto[1]}"), ("EXEC",)]
        replies = await self.link.pipeline(commands, key=k.tasks, durable=True)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        result = replies[-1]
        if result is None:
            raise ConnectionFailed("a MULTI/EXEC was aborted by the server")
        for reply in result:
            if isinstance(reply, ResponseError):
                raise reply
        return [_s(entry_id) for entry_id in result[:-1]]


def _body(task: Task) -> bytes:
    return codec.encode_task(task)[codec.BODY]


def _flat(mapping: Mapping[str, str]) -> list[str]:
    return [x for pair in mapping.items() for x in pair]


def _text_map(reply: Any) -> dict[str, str]:
    """An HGETALL reply (RESP2 flat list or RESP3 map) as str -> str."""
    if isinstance(reply, dict):
        return {_s(k): _s(v) for k, v in reply.items()}
    flat = list(reply or ())
    return {_s(k): _s(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
