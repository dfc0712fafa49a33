"""Forward direction: query lines become tasks, their findings response lines.

A query line's task id is built from the bridge, the file's generation and the
line's byte offset, so a line read twice is the same task. The bridge commits a
batch's tasks as *owed* (in its ``pending`` hash, with the new file position)
before it submits them; each spec's submission records, in the same MULTI, how far
in the file that spec has been fed. A restarted bridge submits the owed tasks past
that mark (committed, never submitted) and no others.

A task stays owed until the bridge reads its own response line back from the file:
the file, not Redis, says whether a response was written, so a response is neither
lost nor written twice by a bridge killed between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmstream.bridge import jsonl
from swarmstream.bridge.tail import Line
from swarmstream.errors import ConfigError, InvalidTask, NotDurable
from swarmstream.keys import validate_name
from swarmstream.models import Finding, Task
from swarmstream.transport.bridge_state import Commit, Mark
from swarmstream.transport.connection import TRANSIENT
from swarmstream.transport.transport import Transport
from swarmstream.validate import check_task

log = logging.getLogger(__name__)

#: how long one XREAD of findings blocks (a new spec interrupts it)
FOLLOW_BLOCK_MS = 1000


@dataclass(frozen=True, slots=True)
class Owed:
    """A task submitted for a query line (``upto``: its line's generation and end)."""

    task: Task
    upto: Mark

    def to_json(self) -> str:
        t = self.task
        record = {"spec": t.spec, "text": t.text, "data": t.data, "created": t.created}
        return json.dumps({**record, "upto": list(self.upto)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, task_id: str, raw: str) -> Owed:
        r = json.loads(raw)
        task = Task(r["spec"], r["text"], task_id, data=r["data"], created=r["created"])
        return cls(task, (int(r["upto"][0]), int(r["upto"][1])))

    def response(self, finding: Finding) -> bytes:
        """The response line of this task's finding."""
        data: dict[str, Any] = self.task.data
        error = None if finding.ok else finding.error or finding.status.value
        return jsonl.response_line(
            re_id=self.task.id,
            sender=data.get("to") or self.task.spec,
            to=data["from"],
            answer=finding.content,
            sources=finding.sources,
            original_timestamp=data.get("timestamp"),
            error=error,
        )


def task_id(bridge: str, line: Line) -> str:
    """The task id of a query line: the same every time the line is read."""
    return f"{bridge}-{line.gen}-{line.start}"


class Forwarder:
    """Turns query lines into tasks and findings into response lines."""

    def __init__(
        self,
        bridge: str,
        transport: Transport,
        path: Path,
        spec: str | None,
        append: Callable[[bytes], None],
        give_up: Callable[[], bool],
    ) -> None:
        self.bridge = bridge
        self.store = transport.bridges
        self.results = transport.results
        self.path = path
        self.spec = spec
        self.append = append
        self.give_up = give_up
        self.owed: dict[str, Owed] = {}
        self.cursors: dict[str, str] = {}
        self.responded = 0
        self._answered: set[str] = set()  # response written, not yet read back
        self._following: set[str] = set()
        self._wake = asyncio.Event()

    # -- query lines -------------------------------------------------------

    def take(self, line: Line, query: jsonl.Query, commit: Commit) -> Owed:
        """The task of a query line, recorded as owed in ``commit``; BadLine if the
        line names no usable spec."""
        spec = self.spec or query.to
        if spec is None:
            raise jsonl.BadLine("no 'to' to choose a spec by (or run the bridge with --spec)")
        try:
            validate_name("spec", spec)
        except ConfigError as exc:
            raise jsonl.BadLine(str(exc)) from None
        data = {
            "from": query.sender,
            "to": query.to,
            "context_file": query.context_file,
            "timestamp": query.timestamp,
            "bus": str(self.path),
            "offset": line.start,
        }
        task = Task(spec, query.question, task_id(self.bridge, line), data=data)
        try:
            check_task(task)
        except InvalidTask as exc:
            raise jsonl.BadLine(str(exc)) from None
        owed = Owed(task, (line.gen, line.end))
        commit.pending_set[task.id] = owed.to_json()
        self.owed[task.id] = owed
        return owed

    def saw_response(self, task_id: str, commit: Commit) -> bool:
        """Our response line for an owed task, read back: the task is settled."""
        if self.owed.pop(task_id, None) is None:
            return False
        commit.pending_del.add(task_id)
        self._answered.discard(task_id)
        return True

    # -- submitting --------------------------------------------------------

    async def recover(self, pending: dict[str, str]) -> int:
        """Load the owed tasks of a previous run; submit those it committed and did
        not get into their stream. Returns how many were submitted now."""
        for tid, raw in pending.items():
            try:
                self.owed[tid] = Owed.from_json(tid, raw)
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                log.error(
                    "bridge %s: unreadable pending record %s dropped (%s)", self.bridge, tid, exc
                )
        by_spec: dict[str, list[Owed]] = {}
        for owed in self.owed.values():
            by_spec.setdefault(owed.task.spec, []).append(owed)
        count = 0
        for spec, items in by_spec.items():
            mark = await self.store.submitted(self.bridge, spec)
            missing = [o for o in items if mark is None or o.upto > mark]
            if missing:
                log.info(
                    "bridge %s: submitting %d tasks of a previous run", self.bridge, len(missing)
                )
                await self.submit(missing)
                count += len(missing)
        return count

    async def submit(self, batch: Iterable[Owed]) -> None:
        """Post owed tasks to their streams, one MULTI per spec, retried until done:
        after a failure, the spec's mark tells whether the write happened."""
        by_spec: dict[str, list[Owed]] = {}
        for owed in batch:
            by_spec.setdefault(owed.task.spec, []).append(owed)
        for spec, items in by_spec.items():
            if spec not in self.cursors:  # where its findings will appear: read first
                read = functools.partial(self.results.last_finding_id, spec)
                self.cursors[spec] = await self._retrying(read)
            upto = max(o.upto for o in items)
            await self._submit_spec(spec, [o.task for o in items], upto)
            if spec not in self._following:
                self._wake.set()

    async def _submit_spec(self, spec: str, tasks: list[Task], upto: Mark) -> None:
        failures = 0
        while True:
            try:
                await self.store.submit(self.bridge, spec, tasks, upto)
                return
            except NotDurable as exc:
                log.warning(
                    "bridge %s: tasks submitted, not yet on the replicas: %s", self.bridge, exc
                )
                return
            except TRANSIENT as exc:
                failures += 1
                if self.give_up():
                    raise
                log.warning("bridge %s: submitting failed (%s); retrying", self.bridge, exc)
                await asyncio.sleep(min(5.0, 0.05 * 2 ** min(failures, 7)))
            with contextlib.suppress(*TRANSIENT):
                mark = await self.store.submitted(self.bridge, spec)
                if mark is not None and mark >= upto:
                    return  # the write happened; its reply was lost

    async def _retrying(self, op: Callable[[], Any]) -> Any:
        failures = 0
        while True:
            try:
                return await op()
            except TRANSIENT as exc:
                failures += 1
                if self.give_up():
                    raise
                log.warning("bridge %s: Redis unavailable (%s); retrying", self.bridge, exc)
                await asyncio.sleep(min(5.0, 0.05 * 2 ** min(failures, 7)))

    # -- findings ----------------------------------------------------------

    async def probe(self) -> None:
        """Find the findings that exist for owed tasks, and a follow cursor per spec
        (at start, once the file has been read to its end)."""
        by_spec: dict[str, list[str]] = {}
        for tid, owed in self.owed.items():
            by_spec.setdefault(owed.task.spec, []).append(tid)
        for spec, ids in by_spec.items():
            self.cursors[spec], found = await self.results.probe(spec, ids)
            self.respond(found)

    async def follow(self, stopping: asyncio.Event) -> None:
        """Write the response line of each owed task's finding as it arrives."""
        while not stopping.is_set():
            specs = {o.task.spec for o in self.owed.values()} & self.cursors.keys()
            self._following = specs
            self._wake.clear()
            if not specs:
                await _first(self._wake.wait(), stopping.wait())
                continue
            live = {s: self.cursors[s] for s in specs}
            read = asyncio.ensure_future(self.results.follow(live, block_ms=FOLLOW_BLOCK_MS))
            await _first(read, self._wake.wait(), stopping.wait())
            if not read.done():
                read.cancel()  # non-destructive: the cursors did not move
                with contextlib.suppress(asyncio.CancelledError):
                    await read
                continue
            cursors, found = read.result()
            self.cursors.update(cursors)
            self.respond(found)

    def respond(self, findings: Iterable[Finding]) -> None:
        """Append the response lines of owed tasks' findings (one write)."""
        lines: list[bytes] = []
        ids: list[str] = []
        for f in findings:
            owed = self.owed.get(f.task_id)
            if owed is None or owed.task.spec != f.spec or f.task_id in self._answered:
                continue
            lines.append(owed.response(f))
            ids.append(f.task_id)
        if lines:
            self.append(b"".join(lines))
            self._answered.update(ids)
            self.responded += len(ids)


async def _first(*aws: Any) -> None:
    """Wait until the first of several awaitables is done; cancel the waits made
    here (an awaitable passed as a task stays the caller's)."""
    tasks = [a if isinstance(a, asyncio.Future) else asyncio.ensure_future(a) for a in aws]
    mine = [t for t, a in zip(tasks, aws, strict=True) if t is not a]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in mine:
            t.cancel()
        await asyncio.gather(*mine, return_exceptions=True)
