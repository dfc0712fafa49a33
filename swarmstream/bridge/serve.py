"""Reverse direction: tasks of a spec become query lines for agents that only read
the file, and their response lines become findings.

``Server`` is the handler of an ordinary ``EphemeralWorker`` (consumer of the spec's
group): the worker claims tasks, renews their leases while the handler waits for
the answer, and records the finding with ``Streams.complete`` (exactly once, fenced),
as for any handler. The handler writes the task's query line, with a correlation id
``ss:<spec>/<task id>``, and waits for a response line naming that id in ``re``.

Correlation records (``NS:bridge:{B}:corr``) are written with the file position:
a record becomes *written* when the bridge reads its query line back, *answered*
when it reads the response line. A restarted bridge reads the file to its end
before the worker starts, so it knows which query lines exist (it never writes one
twice) and which answers came; a task delivered again returns a stored answer at
once. A record is dropped once its task has a finding.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from swarmstream.bridge import jsonl
from swarmstream.handlers.base import ContextLike
from swarmstream.models import Result, Task
from swarmstream.transport.bridge_state import Commit
from swarmstream.transport.transport import Transport

log = logging.getLogger(__name__)

#: the prefix of the correlation ids of query lines a bridge writes
CORR_PREFIX = "ss:"


def corr_id(spec: str, task_id: str) -> str:
    return f"{CORR_PREFIX}{spec}/{task_id}"


def parse_corr(corr: str) -> tuple[str, str] | None:
    """(spec, task id) of a correlation id, or None if it is not one."""
    if not corr.startswith(CORR_PREFIX):
        return None
    spec, sep, task = corr[len(CORR_PREFIX) :].partition("/")
    return (spec, task) if sep and spec and task else None


@dataclass(frozen=True, slots=True)
class Record:
    """A served task whose query line was written; its answer once read."""

    spec: str
    task_id: str
    answer: str | None = None
    sources: tuple[str, ...] = ()
    responder: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "spec": self.spec,
                "task": self.task_id,
                "state": "written" if self.answer is None else "answered",
                "answer": self.answer,
                "sources": list(self.sources),
                "from": self.responder,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: str) -> Record:
        r = json.loads(raw)
        return cls(r["spec"], r["task"], r["answer"], tuple(r["sources"]), r.get("from"))

    def result(self) -> Result:
        return Result(
            content=self.answer or "", sources=self.sources, data={"from": self.responder}
        )


class Server:
    """The handler that serves tasks as query lines (see the module docstring)."""

    name = "bridge"
    needs_context = False

    def __init__(
        self,
        bridge: str,
        transport: Transport,
        specs: Sequence[str],
        sender: str,
        append: Callable[[bytes], None],
        records: dict[str, str],
    ) -> None:
        self.bridge = bridge
        self.store = transport.bridges
        self.results = transport.results
        self.specs = frozenset(specs)
        self.sender = sender
        self.append = append
        self.records: dict[str, Record] = {}
        for corr, raw in records.items():
            try:
                self.records[corr] = Record.from_json(raw)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("bridge %s: unreadable record %s dropped (%s)", bridge, corr, exc)
        self.asked = 0
        self._waiting: dict[str, asyncio.Future[Record]] = {}

    async def __call__(self, task: Task, context: ContextLike | None) -> Result:
        """Write the task's query line (unless it exists) and wait for its answer."""
        corr = corr_id(task.spec, task.id)
        record = self.records.get(corr)
        if record is not None and record.answer is not None:
            return record.result()
        future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        self._waiting[corr] = future
        try:
            if record is None:
                data: Any = task.data
                context_file = data.get("context_file") if isinstance(data, dict) else None
                self.append(
                    jsonl.query_line(
                        corr=corr,
                        sender=self.sender,
                        to=task.spec,
                        question=task.text,
                        context_file=context_file if isinstance(context_file, str) else None,
                    )
                )
                self.records[corr] = Record(task.spec, task.id)
                self.asked += 1
            return (await future).result()
        finally:
            if self._waiting.get(corr) is future:
                del self._waiting[corr]

    def owns(self, corr: str) -> bool:
        parsed = parse_corr(corr)
        return parsed is not None and parsed[0] in self.specs

    def saw_query(self, corr: str, commit: Commit) -> None:
        """One of our query lines, read back: its record is stored as written."""
        record = self.records.get(corr)
        if record is None:  # written by a run killed before it read it back
            parsed = parse_corr(corr)
            assert parsed is not None
            record = self.records[corr] = Record(*parsed)
        if record.answer is None:
            commit.corr_set[corr] = record.to_json()

    def saw_answer(self, response: jsonl.Response, commit: Commit) -> bool:
        """A response line: True if it answers one of our open queries (stored in
        ``commit``; its waiter is woken by ``resolve`` once that is written)."""
        corr = response.re
        record = self.records.get(corr) if corr else None
        if corr is None or record is None or record.answer is not None:
            return False
        answered = replace(
            record, answer=response.answer, sources=response.sources, responder=response.sender
        )
        self.records[corr] = answered
        commit.corr_set[corr] = answered.to_json()
        return True

    def resolve(self, corrs: Iterable[str]) -> None:
        """Hand committed answers to the handlers waiting for them."""
        for corr in corrs:
            future = self._waiting.get(corr)
            record = self.records.get(corr)
            if future is not None and record is not None and not future.done():
                future.set_result(record)

    async def cleanup(self) -> int:
        """Drop the records of tasks that have findings; how many were dropped."""
        by_spec: dict[str, list[str]] = {}
        for record in self.records.values():
            by_spec.setdefault(record.spec, []).append(record.task_id)
        done: list[str] = []
        for spec, ids in by_spec.items():
            finished = await self.results.done_many(spec, ids)
            done += [corr_id(spec, t) for t in finished]
        await self.store.forget_corr(self.bridge, done)
        for corr in done:
            self.records.pop(corr, None)
        return len(done)
