"""Task streams: submit, read, reclaim, lease, complete, retry, release, bury, trim.

Every call here is one round trip (a command, a pipeline or one Lua script).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from swarmstream import codec
from swarmstream.accounting import BudgetState
from swarmstream.codec import text as _s
from swarmstream.errors import NotDurable
from swarmstream.keys import GROUP, Keys
from swarmstream.models import Finding, Task
from swarmstream.settings import Retention
from swarmstream.transport.budgets import spec_budget_reads, spec_budget_state
from swarmstream.transport.connection import fields_of, stream_entries
from swarmstream.transport.link import Link
from swarmstream.transport.scripts import Scripts

log = logging.getLogger(__name__)

#: complete() outcomes per item
RECORDED, DUPLICATE, LOST = 1, 0, -1
#: most idle entries one reclaim scan lists (the rest wait for the next scan)
SCAN_LIMIT = 1000


@dataclass(slots=True)
class Entry:
    """A raw stream entry as read: the decoding happens above the transport.

    Not frozen: it is built once per delivery on the worker's hot path, and a
    frozen dataclass's ``__init__`` costs several times as much."""

    spec: str
    entry_id: str
    fields: dict[bytes, bytes]
    deliveries: int


@dataclass(slots=True)
class Completion:
    """A finding ready to be recorded for the entry that carried its task: the
    routing fields and the encoded body (see ``codec.finding_body``)."""

    entry_id: str
    task_id: str
    shard: str
    status: str
    body: bytes
    retried: bool
    #: what the attempt spent (a ``swarmstream.usage.Usage``): added to the totals
    usage: Any = None
    #: seconds the handler ran (for the worker's hooks)
    duration: float | None = None
    attempt: int = 1

    @classmethod
    def of(cls, entry_id: str, finding: Finding, wire: str = codec.MSGPACK) -> Completion:
        """The completion that records ``finding`` for entry ``entry_id``."""
        return cls(
            entry_id,
            finding.task_id,
            finding.shard or "",
            finding.status.value,
            codec.encode_finding(finding, wire),
            finding.attempt > 1,
            attempt=finding.attempt,
        )


def lua_usage(usage: Any) -> list[Any] | None:
    """A usage as the Lua steps add it up: {model, input, output, cache_read,
    cache_write, cost, cost_computed}, cost '' when unknown (docs/protocol.md)."""
    if usage is None:
        return None
    cost = usage.cost_usd
    computed = cost if cost is not None and usage.cost_source == "computed" else 0
    return [
        usage.model or "",
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        "" if cost is None else repr(float(cost)),
        repr(float(computed)),
    ]


class Streams:
    """Task-stream operations for one namespace."""

    def __init__(
        self, link: Link, keys: Keys, scripts: Scripts, retention: Retention | None = None
    ) -> None:
        self.link = link
        self.client: Any = link.client  # replies are bytes; converted here
        self.keys = keys
        self.retention = retention or Retention()
        #: per spec, its budget as the last complete(check_budget=True) read it
        self.budget_seen: dict[str, BudgetState] = {}
        self.scripts = scripts
        self._groups: set[str] = set()
        #: on a cluster, the XREADGROUPs of slot groups still blocking (see read)
        self._carried: dict[tuple[str, ...], asyncio.Task[list[Entry]]] = {}

    # -- producing ---------------------------------------------------------

    async def ensure_group(self, spec: str) -> None:
        """Create the spec's stream and consumer group (idempotent) and register it."""
        if spec in self._groups:
            return
        k = self.keys.spec(spec)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xgroup_create(k.tasks, GROUP, id="0", mkstream=True)
            pipe.sadd(self.keys.specs, spec)
            results = await pipe.execute(raise_on_error=False)
        err = results[0]
        if isinstance(err, Exception) and "BUSYGROUP" not in str(err):
            raise err
        self._groups.add(spec)

    async def submit(self, tasks: Sequence[Task]) -> list[str]:
        """Append tasks to their specs' streams, one pipeline per hash slot (one in
        all on a single server); returns entry ids. With ``durable_replicas``, each
        pipeline ends with WAIT (NotDurable if the replicas fall short)."""
        for spec in {t.spec for t in tasks}:
            await self.ensure_group(spec)
        commands = []
        for task in tasks:
            key = self.keys.spec(task.spec).tasks
            commands.append((key, ("XADD", key, "*", codec.BODY, _body(task))))
        ids = await self.link.batch(commands, durable=True)
        for reply in ids:
            if isinstance(reply, ResponseError):
                raise reply
        return [_s(i) for i in ids]

    async def submit_watched(self, task: Task) -> tuple[str, str, bytes | None]:
        """Append one task and, in the same round trip, read what a waiter needs:
        the spec's findings cursor (newest finding id, read first) and the task's
        done marker. Returns (entry id, cursor, marker or None).

        A finding of this task is then either named by the marker (the id was done
        before) or newer than the cursor, so waiting needs no extra probe."""
        await self.ensure_group(task.spec)
        k = self.keys.spec(task.spec)
        replies = await self.link.pipeline(
            [
                ("XREVRANGE", k.findings, "+", "-", "COUNT", 1),
                ("GET", k.done(task.id)),
                ("XADD", k.tasks, "*", codec.BODY, _body(task)),
            ],
            key=k.tasks,
            durable=True,
        )
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        last, marker, entry_id = replies
        cursor = _s(last[0][0]) if last else "0-0"
        return _s(entry_id), cursor, marker

    async def add_raw(self, spec: str, fields: dict[str, Any]) -> str:
        """Append an entry with arbitrary fields (tests, bridges, foreign producers)."""
        await self.ensure_group(spec)
        return _s(await self.client.xadd(self.keys.spec(spec).tasks, fields))

    # -- consuming ---------------------------------------------------------

    async def read(
        self, specs: Sequence[str], consumer: str, count: int, block_ms: int
    ) -> list[Entry]:
        """XREADGROUP new entries of several specs in one blocking call.

        On a cluster, specs in different hash slots cannot share a command: each
        slot group gets its own blocking read (``count`` shared among them), and
        this returns as soon as one answers. The reads still blocking are kept, not
        cancelled (their reply may deliver entries): the next call takes their
        entries first, so no slot group waits behind another."""
        keys = [self.keys.spec(s).tasks for s in specs]
        groups = self.link.slot_groups(keys)
        if len(groups) == 1:
            return await self._read_group(keys, consumer, count, block_ms)
        share = max(1, -(-count // len(groups)))
        for group in groups:
            if tuple(group) not in self._carried:
                read = self._read_group(group, consumer, share, block_ms)
                self._carried[tuple(group)] = asyncio.ensure_future(read)
        pending = list(self._carried.values())
        if not any(t.done() for t in pending):
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        out: list[Entry] = []
        error: BaseException | None = None
        for slot_keys, task in list(self._carried.items()):
            if task.done():
                del self._carried[slot_keys]
                if task.exception() is not None:
                    error = task.exception()
                else:
                    out += task.result()
        if error is not None and not out:
            raise error
        return out

    async def _read_group(
        self, keys: list[str], consumer: str, count: int, block_ms: int
    ) -> list[Entry]:
        """One XREADGROUP over keys of one slot."""
        spec_of = {k.encode(): self.keys.spec_of(k) for k in keys}
        args: list[Any] = ["XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count]
        args += ["BLOCK", block_ms, "STREAMS", *keys, *([">"] * len(keys))]
        try:
            reply = await self.link.call(*args, key=keys[0], block_ms=block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups.clear()
            for spec in spec_of.values():
                await self.ensure_group(spec)
            return []
        return [Entry(spec_of[key], eid, fields, 1) for key, eid, fields in stream_entries(reply)]

    async def aclose(self) -> None:
        """Cancel reads still blocking (a cluster worker on several slots). An entry
        such a read had just delivered stays pending for this worker: the next
        start's recovery or another worker's reclaim runs it."""
        carried, self._carried = self._carried, {}
        for task in carried.values():
            task.cancel()
        await asyncio.gather(*carried.values(), return_exceptions=True)

    async def reclaim(
        self, spec: str, consumer: str, min_idle_ms: int, count: int, scan_every_ms: int
    ) -> list[Entry]:
        """Take over up to ``count`` entries idle past ``min_idle_ms``, with their
        delivery counts: first those a scan left in the due set, then, if this caller
        is the one per ``scan_every_ms`` that scans, the group's idle entries (the
        rest go to the due set for other workers). See ``reclaim.lua``."""
        k = self.keys.spec(spec)
        _, flat, vanished = await self.scripts.reclaim(
            keys=[k.tasks, k.leases, k.stats, k.due, k.lock("scan")],
            args=[GROUP, consumer, min_idle_ms, "0-0", count, scan_every_ms, SCAN_LIMIT],
        )
        for entry_id in vanished:
            await self.note_vanished(spec, _s(entry_id), consumer)
        triples = range(0, len(flat), 3)
        return [Entry(spec, _s(flat[i]), fields_of(flat[i + 1]), int(flat[i + 2])) for i in triples]

    async def renew(
        self, spec: str, consumer: str, entry_ids: Iterable[str]
    ) -> tuple[list[str], list[str]]:
        """Renew leases on entries still owned. Returns (taken, gone): the ids another
        consumer holds now (lease lost), and those no longer pending at all (acked)."""
        ids = list(entry_ids)
        if not ids:
            return [], []
        k = self.keys.spec(spec)
        taken, gone = await self.scripts.renew(
            keys=[k.tasks, k.leases], args=[GROUP, consumer, *ids]
        )
        return [_s(i) for i in taken], [_s(i) for i in gone]

    async def own_pending(
        self, spec: str, consumer: str, count: int, after: str | None = None
    ) -> list[tuple[str, int]]:
        """The entries the group has delivered to ``consumer`` and not seen acked:
        (entry id, delivery count), oldest first (newer than ``after``), at most
        ``count``."""
        start = "-" if after is None else f"({after}"
        rows = await self.client.xpending_range(
            self.keys.spec(spec).tasks, GROUP, start, "+", count, consumername=consumer
        )
        return [(_s(r["message_id"]), int(r["times_delivered"])) for r in rows]

    async def entries(self, spec: str, entry_ids: Sequence[str]) -> dict[str, dict[bytes, bytes]]:
        """The fields of some task entries (one pipelined round trip); an entry
        deleted from the stream is missing from the result."""
        if not entry_ids:
            return {}
        key = self.keys.spec(spec).tasks
        replies = await self.link.pipeline([("XRANGE", key, i, i) for i in entry_ids], key=key)
        out: dict[str, dict[bytes, bytes]] = {}
        for entry_id, rows in zip(entry_ids, replies, strict=True):
            if rows and not isinstance(rows, Exception):
                out[entry_id] = fields_of(rows[0][1])
        return out

    async def complete(
        self,
        spec: str,
        consumer: str,
        items: Sequence[Completion],
        check_budget: bool = False,
    ) -> list[int]:
        """Record findings and ack, atomically; per item RECORDED, DUPLICATE or LOST.

        Usage carried by the items is added to the spec's totals in the same step.
        With ``check_budget``, the spec's budget and totals are read in the same
        round trip and kept in ``budget_seen``."""
        k = self.keys.spec(spec)
        keys: list[str] = [k.tasks, k.findings, k.stats, k.leases]
        packed: list[Any] = []
        done, err, history = k.done, k.err, k.history
        spent = False
        for item in items:
            keys.append(done(item.task_id))
            if item.retried:
                keys += (err(item.task_id), history(item.task_id))
            usage = lua_usage(item.usage)
            spent = spent or usage is not None
            packed.append(
                (
                    item.entry_id,
                    item.task_id,
                    item.shard,
                    item.status,
                    item.body,
                    2 if item.retried else 0,
                    usage,
                )
            )
        if spent:
            keys += (k.usage, k.usage_workers)
        r = self.retention
        args: list[Any] = [GROUP, consumer, r.done_ttl, r.findings_maxlen]
        args.append(codec.pack_for_lua(packed))
        script = self.scripts.complete
        commands: list[tuple[Any, ...]] = [("EVALSHA", script.sha, len(keys), *keys, *args)]
        if check_budget:
            commands += spec_budget_reads(k)
        replies = await self._durably(commands, k.tasks)
        if isinstance(replies[0], NoScriptError):  # a new primary, a restarted server
            await self.link.load_script(script.script)
            replies = await self._durably(commands, k.tasks)
        result = replies[0]
        if isinstance(result, ResponseError):
            raise result
        if check_budget and (state := spec_budget_state(replies[1], replies[2])) is not None:
            self.budget_seen[spec] = state
        return [int(r) for r in result]

    async def _durably(self, commands: Sequence[tuple[Any, ...]], key: str) -> list[Any]:
        """Run a completion; with ``durable_replicas``, wait for the replicas. A
        completion the replicas did not confirm in time is recorded all the same
        (the primary has it, and the task is acked): a warning, not an error."""
        try:
            replies = await self.link.pipeline(commands, key=key, durable=True)
        except NotDurable as exc:
            log.warning("finding recorded, not yet on the replicas: %s", exc)
            replies = exc.replies
        return list(replies)

    async def retry_later(
        self,
        spec: str,
        consumer: str,
        entry_id: str,
        task_id: str,
        error: str,
        attempt: int,
        reclaim_after_ms: int,
        claim_idle_ms: int,
        record: dict[str, Any] | None = None,
        usage: Any = None,
        shard: str = "",
    ) -> bool:
        """Keep a failed entry pending, to be reclaimed by any worker after a backoff.

        ``record`` (the attempt's history record, JSON) joins the task's history and
        ``usage`` its spec's totals, once per attempt even if the call is replayed."""
        k = self.keys.spec(spec)
        idle = max(0, claim_idle_ms - reclaim_after_ms)
        payload = json.dumps({"error": error, "attempt": attempt})
        lua = lua_usage(usage)
        r = await self.scripts.retry(
            keys=[
                k.tasks,
                k.err(task_id),
                k.stats,
                k.leases,
                k.history(task_id),
                k.usage,
                k.usage_workers,
            ],
            args=[
                GROUP,
                consumer,
                entry_id,
                idle,
                payload,
                self.retention.error_ttl,
                attempt,
                json.dumps(record or {"attempt": attempt, "error": error}),
                codec.pack_for_lua(lua) if lua is not None else "",
                shard,
            ],
        )
        return int(r) == 1

    async def last_error(self, spec: str, task_id: str) -> dict[str, Any] | None:
        """The error recorded by the task's last failed attempt, if any."""
        raw = await self.client.get(self.keys.spec(spec).err(task_id))
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def release(
        self, spec: str, consumer: str, entries: Sequence[tuple[str, int]], claim_idle_ms: int
    ) -> list[int]:
        """Give entries back for immediate reclaim, without spending an attempt.

        ``entries`` are (entry id, limit) pairs: the limit is the task's max_attempts
        when its handler had started (its releases are counted), 0 otherwise. Per
        entry: 1 released, 0 not this consumer's, -n exhausted (released n times
        already: not released; the caller dead-letters it)."""
        if not entries:
            return []
        k = self.keys.spec(spec)
        keys = [k.tasks, k.leases, *(k.released(i) for i, _ in entries), k.due]
        args: list[Any] = [GROUP, consumer, claim_idle_ms, self.retention.error_ttl]
        for entry_id, limit in entries:
            args += [entry_id, limit]
        return [int(r) for r in await self.scripts.release(keys=keys, args=args)]

    async def bury(
        self,
        spec: str,
        consumer: str,
        entry: Entry,
        reason: str,
        error: str | None,
        finding: Finding | None,
        wire: str = codec.MSGPACK,
        usage: Any = None,
    ) -> bool:
        """Dead-letter an entry (and write the task's final finding, if it has an id,
        with the task's attempt history; ``usage``, the last attempt's, joins the
        spec's totals)."""
        k = self.keys.spec(spec)
        task_id = finding.task_id if finding else ""
        dead = codec.dead_fields(
            reason=reason,
            error=error,
            task_id=task_id or None,
            attempts=entry.deliveries,
            worker=consumer,
            origin_id=entry.entry_id,
            fields=entry.fields,
        )
        flat: list[Any] = [x for pair in dead.items() for x in pair]
        r = await self.scripts.bury(
            keys=[
                k.tasks,
                k.findings,
                k.dead,
                k.stats,
                k.done(task_id) if task_id else k.nil,
                k.err(task_id) if task_id else k.nil,
                k.leases,
                k.history(task_id) if task_id else k.nil,
                k.usage,
                k.usage_workers,
            ],
            args=[
                GROUP,
                consumer,
                entry.entry_id,
                self.retention.done_ttl,
                self.retention.findings_maxlen,
                self.retention.dead_maxlen,
                task_id,
                finding.shard or "" if finding else "",
                finding.status.value if finding else "",
                codec.encode_finding(finding, wire) if finding else b"",
                codec.pack_for_lua(lua) if (lua := lua_usage(usage)) is not None else "",
                *flat,
            ],
        )
        return int(r) == 1

    async def note_vanished(self, spec: str, entry_id: str, consumer: str) -> None:
        """Record a pending entry that was deleted from the stream (Redis 7 drops it
        from the pending list itself), so that its disappearance is not silent."""
        k = self.keys.spec(spec)
        fields = codec.dead_fields(
            reason="entry deleted from the stream while pending",
            error=None,
            task_id=None,
            attempts=0,
            worker=consumer,
            origin_id=entry_id,
            fields=None,
        )
        flat: list[Any] = [x for pair in fields.items() for x in pair]
        await self.scripts.vanished(
            keys=[k.dead, k.stats], args=[self.retention.dead_maxlen, *flat]
        )

    # -- hygiene -----------------------------------------------------------

    async def trim(self, spec: str, every_ms: int | None = None) -> int:
        """MINID-trim acked entries off the task stream; returns entries removed.

        With ``every_ms``, one caller per period trims (the others get -1 at once)."""
        k = self.keys.spec(spec)
        if every_ms is None:
            return int(await self.scripts.trim(keys=[k.tasks, k.leases]))
        keys = [k.tasks, k.leases, k.lock("trim")]
        return int(await self.scripts.trim(keys=keys, args=[every_ms]))

    async def chore_due(self, spec: str, chore: str, every_ms: int, holder: str) -> bool:
        """True for the one caller per ``every_ms`` that does ``chore`` on ``spec``."""
        key = self.keys.spec(spec).lock(chore)
        return bool(await self.client.set(key, holder, nx=True, px=every_ms))

    async def consumers(self, spec: str) -> list[dict[str, Any]]:
        """XINFO CONSUMERS of the spec's group: name, pending, idle (ms)."""
        try:
            rows = await self.client.xinfo_consumers(self.keys.spec(spec).tasks, GROUP)
        except ResponseError:
            return []
        return [
            {"name": _s(r["name"]), "pending": int(r["pending"]), "idle": int(r["idle"])}
            for r in rows
        ]

    async def prune_consumer(self, spec: str, consumer: str) -> bool:
        """Delete a consumer from the group if it owns no pending entry."""
        r = await self.scripts.prune(keys=[self.keys.spec(spec).tasks], args=[GROUP, consumer])
        return int(r) == 1


def _body(task: Task) -> Any:
    return codec.encode_task(task)[codec.BODY]
