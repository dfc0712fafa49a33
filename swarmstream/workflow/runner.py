"""WorkflowRunner: the coordinator of a pass workflow, resumable after a crash.

For each pass it posts the tasks (deterministic ids ``<run>-p<pass>-<i>``), waits
for their findings until the pass deadline, and synthesizes them; the synthesis
goes to the next pass's tasks as ``data["previous"]`` and ``{previous}``. Progress
lives in the shard's ``workflow`` hash, so a coordinator killed at any point and
started again with the same workflow resumes where it stopped:

=============  ====================================================================
state          on resume
=============  ====================================================================
posting        the pass is posted again; the same ids and the engine's exactly-once
               ``done:<task>`` marker keep it at one finding per task
posted,        the pass is not posted again: waiting goes on until the deadline
waiting        recorded when the pass was first posted
synthesized    the pass is done; the next one starts
done, aborted  the run is over; without a run id, a new run starts
=============  ====================================================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from swarmstream.accounting import spent_by_findings
from swarmstream.answers import CitationChecker
from swarmstream.client import Swarm
from swarmstream.handlers import resolve
from swarmstream.keys import validate_name
from swarmstream.models import Finding, Task
from swarmstream.shard.shard import MemoryShard
from swarmstream.shard.synthesis import (
    HandlerSynthesizer,
    Knowledge,
    MergeSynthesizer,
    Synthesizer,
)
from swarmstream.workflow.model import (
    PassSpec,
    PlannedTask,
    Workflow,
    WorkflowAborted,
    WorkflowError,
    clip,
    plan,
)

log = logging.getLogger(__name__)
FINISHED = ("done", "aborted")


def new_run_id() -> str:
    """A short, unique, time-ordered run id."""
    return f"r{int(time.time()):x}{os.urandom(2).hex()}"


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress event. ``state`` is start (or finished: the run was already
    over), restored (a pass an earlier coordinator finished), posted, waiting,
    synthesized, aborted or done."""

    run_id: str
    state: str
    pass_no: int
    passes: int
    name: str = ""
    tasks: int = 0
    findings: int = 0
    ok: int = 0
    missing: tuple[str, ...] = ()
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class PassSummary:
    """How one pass ended. ``earlier``: finished by a coordinator before a restart."""

    number: int
    name: str
    tasks: int
    ok: int
    missing: tuple[str, ...]
    seconds: float
    earlier: bool = False
    #: what the pass's tasks spent, every attempt included (from their findings)
    tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0  # attempts with tokens but no known cost: cost_usd is a floor

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if k != "earlier"})

    @classmethod
    def from_json(cls, raw: str) -> PassSummary:
        d: dict[str, Any] = json.loads(raw)
        return cls(**{**d, "missing": tuple(d["missing"])})


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    """What a run produced: a summary per pass and the final knowledge."""

    workflow: str
    run_id: str
    shard: str
    passes: tuple[PassSummary, ...]
    seconds: float
    resumed: bool
    knowledge: Knowledge | None

    @property
    def partial(self) -> bool:
        return any(p.partial for p in self.passes)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(t for p in self.passes for t in p.missing)


class _OnlyRun:
    """Synthesizes only the findings of this run's tasks: a shard keeps the
    findings of earlier runs, whose pass numbers are the same."""

    def __init__(self, ids: Sequence[str], inner: Synthesizer) -> None:
        self.ids = frozenset(ids)
        self.inner = inner

    async def __call__(
        self, shard: str, pass_no: int, findings: Sequence[Finding], missing: Sequence[str]
    ) -> Knowledge:
        mine = [f for f in findings if f.task_id in self.ids]
        return await self.inner(shard, pass_no, mine, missing)


class WorkflowRunner:
    """Coordinates one run of a workflow on its shard. ``await runner.run()``."""

    def __init__(
        self,
        swarm: Swarm,
        workflow: Workflow,
        *,
        run_id: str | None = None,
        synthesizer: Synthesizer | None = None,
        on_progress: Callable[[Progress], object] | None = None,
        tick: float = 1.0,
    ) -> None:
        self.workflow = workflow
        self.requested = validate_name("run", run_id) if run_id else None
        self.shard = MemoryShard(swarm, workflow.shard, workflow.spec)
        self.store = self.shard.store
        # a pass's synthesis flags the sources its findings cite that the shard's
        # context does not hold (swarmstream.answers.citations)
        checker = CitationChecker(self.store, self.shard.contexts)
        if synthesizer is None and workflow.synthesizer:
            synthesizer = HandlerSynthesizer(resolve(workflow.synthesizer), checker=checker)
        self.synthesizer: Synthesizer = synthesizer or MergeSynthesizer(checker=checker)
        self.on_progress = on_progress
        self.tick = tick
        self.run_id = ""
        self.resumed = False

    async def state(self) -> dict[str, str]:
        """The progress hash of the workflow's shard, as stored in Redis."""
        return await self.store.workflow_state(self.workflow.shard)

    async def run(self) -> WorkflowSummary:
        """Run (or resume) the workflow to its end; raises WorkflowAborted."""
        state = await self.state()
        self.run_id, self.resumed = self._choose_run(state)
        if self.resumed and state.get("state") == "aborted":
            raise WorkflowAborted(state.get("error") or f"run {self.run_id} was aborted")
        if not self.resumed:
            state = await self._start()
        finished = self.resumed and state.get("state") == "done"
        self._emit("finished" if finished else "start", None, pass_no=int(state.get("pass") or 0))
        stop = asyncio.Event()
        beat = asyncio.create_task(self.shard.keep_alive(stop))
        try:
            done = [await self._pass(p, state) for p in self.workflow.passes]
        finally:
            stop.set()
            await beat
        self._emit("done", None, sum(p.tasks for p in done), pass_no=len(done))
        started = float(state.get("started") or time.time())
        return WorkflowSummary(
            workflow=self.workflow.name,
            run_id=self.run_id,
            shard=self.workflow.shard,
            passes=tuple(done),
            seconds=float(state.get("finished") or time.time()) - started,
            resumed=self.resumed,
            knowledge=await self.shard.knowledge(self.workflow.passes[-1].number),
        )

    # -- run selection -------------------------------------------------------

    def _choose_run(self, state: dict[str, str]) -> tuple[str, bool]:
        """(run id, resumed?): resume the shard's unfinished run of this workflow,
        the requested run, or start a new one."""
        wf = self.workflow
        current, phase = state.get("run"), state.get("state")
        same = state.get("fingerprint") == wf.fingerprint
        where = f"pass {state.get('pass') or 0}/{state.get('passes') or '?'}, {phase}"
        if self.requested and current == self.requested:
            if not same:
                raise WorkflowError(
                    f"run {current} on shard {wf.shard} was started from a different workflow "
                    f"({state.get('workflow')!r}); the tasks would differ, so start a new run "
                    "with another run id (--run-id)"
                )
            return current, True
        if current and phase not in FINISHED:
            if self.requested:
                log.warning("abandoning unfinished run %s on shard %s", current, wf.shard)
                return self.requested, False
            if not same:
                raise WorkflowError(
                    f"shard {wf.shard} has an unfinished run {current} of a different workflow "
                    f"({state.get('workflow')!r}, {where}): resume it with its own file, give a "
                    "new run id (--run-id) to abandon it, or use another shard (--shard)"
                )
            return current, True
        return self.requested or new_run_id(), False

    async def _start(self) -> dict[str, str]:
        wf = self.workflow
        first = wf.passes[0]
        ids = [t.id for t in plan(wf, first, self.run_id, None)]
        used = await self.shard.swarm.results.done_many(first.spec, ids)
        if used:  # the same ids would replay the old findings instead of running
            raise WorkflowError(
                f"run id {self.run_id} was used before (task {min(used)} already has a "
                "finding); choose another run id (--run-id)"
            )
        await self.shard.register(workflow=wf.name, run=self.run_id)
        if wf.context:
            await self.shard.load(wf.context)
        fields: dict[str, str | int] = {
            "workflow": wf.name,
            "fingerprint": wf.fingerprint,
            "run": self.run_id,
            "passes": len(wf.passes),
            "pass": 0,
            "state": "started",
            "started": f"{time.time():.3f}",
            "finished": "",
            "error": "",
            "tasks": 0,
            "findings": 0,
            "ok": 0,
            "posted_at": "",
            "deadline_at": "",
            **{f"pass:{p.number}": "" for p in wf.passes},
        }
        await self.store.set_workflow_state(wf.shard, fields)
        return {k: str(v) for k, v in fields.items()}

    # -- one pass --------------------------------------------------------------

    async def _pass(self, p: PassSpec, state: dict[str, str]) -> PassSummary:
        at, phase = int(state.get("pass") or 0), state.get("state")
        if p.number < at or (p.number == at and phase in ("synthesized", "done")):
            stored = PassSummary.from_json(state[f"pass:{p.number}"])
            self._emit("restored", p, stored.tasks, stored.ok, stored.ok, stored.missing)
            return replace(stored, earlier=True)
        if p.number == at and phase in ("posted", "waiting"):
            tasks = plan(self.workflow, p, self.run_id, None)  # only the ids are needed
            posted_at, deadline_at = float(state["posted_at"]), float(state["deadline_at"])
            mark = state.get("collected_from")  # None (read everything) for older runs
        else:
            previous = await self.shard.knowledge(p.number - 1) if p.number > 1 else None
            tasks = plan(self.workflow, p, self.run_id, previous.summary if previous else None)
            mark = await self.store.collected_mark(self.workflow.shard)
            start: dict[str, str | int] = {"tasks": len(tasks), "findings": 0, "ok": 0}
            await self._set(p, "posting", {**start, "collected_from": mark})
            await self._post(p, tasks, previous)
            posted_at = time.time()
            deadline_at = posted_at + p.deadline
            when = {"posted_at": f"{posted_at:.3f}", "deadline_at": f"{deadline_at:.3f}"}
            await self._set(p, "posted", when)
        self._emit("posted", p, len(tasks))
        ids = [t.id for t in tasks]
        got = await self._wait(p, ids, deadline_at)
        missing = tuple(i for i in ids if not (i in got and got[i].ok))
        if missing and p.on_failure == "abort":
            ok = len(ids) - len(missing)
            error = _abort_message(p, ids, got, time.time() >= deadline_at)
            await self._set(p, "aborted", {"error": error, "finished": f"{time.time():.3f}"})
            self._emit("aborted", p, len(ids), len(got), ok, missing)
            raise WorkflowAborted(error)
        await self.shard.collect(p.spec)  # the synthesis reads the shard's collection
        only = _OnlyRun(ids, self.synthesizer)
        knowledge = await self.shard.synthesize(
            p.number, expected=ids, synthesizer=only, after=mark
        )
        missing = knowledge.missing  # a task may have finished since the wait ended
        ok = len(ids) - len(missing)
        spent = spent_by_findings(got.values())
        summary = PassSummary(
            p.number,
            p.name,
            len(ids),
            ok,
            missing,
            time.time() - posted_at,
            tokens=spent.tokens,
            cost_usd=spent.cost_usd,
            unpriced=spent.unpriced,
        )
        fields: dict[str, str | int] = {f"pass:{p.number}": summary.to_json()}
        last = p is self.workflow.passes[-1]
        if last:  # the last synthesis and the end of the run are one write
            fields["finished"] = f"{time.time():.3f}"
            state.update(finished=str(fields["finished"]))
        await self._set(p, "done" if last else "synthesized", fields)
        self._emit("synthesized", p, len(ids), len(got), ok, missing)
        log.info(
            "pass %d: %d/%d ok, %d finding(s), %d tokens, $%.4f",
            p.number,
            ok,
            len(ids),
            len(got),
            spent.tokens,
            spent.cost_usd,
        )
        return summary

    async def _post(self, p: PassSpec, tasks: list[PlannedTask], prev: Knowledge | None) -> None:
        """Post the tasks in one round trip (the tasks of a domain share their data)."""
        groups: dict[str | None, list[PlannedTask]] = {}
        batch: list[Task] = []
        for t in tasks:
            groups.setdefault(t.domain, []).append(t)
        for domain, group in groups.items():
            data = {
                **p.data,
                "workflow": self.workflow.name,
                "run": self.run_id,
                "pass": p.number,
                "pass_name": p.name,
                "domain": domain,
            }
            if prev is not None:
                data["previous"] = clip(prev.summary, self.workflow.previous_chars)
                data["previous_missing"] = list(prev.missing)
            batch += self.shard.tasks(
                [t.text for t in group],
                pass_no=p.number,
                data=data,
                ids=[t.id for t in group],
                max_attempts=p.max_attempts,
                timeout=p.timeout,
                spec=p.spec,
            )
        await self.shard.swarm.submit_many(batch)

    async def _wait(self, p: PassSpec, ids: list[str], deadline_at: float) -> dict[str, Finding]:
        """Wait until every task has a finding, the deadline passes, or (abort policy)
        a task has failed for good. Arrivals are found by the tasks' ``done`` markers,
        so each wake-up costs one MGET, whatever the size of the shard's history."""
        results = self.shard.swarm.results
        got: dict[str, Finding] = {}
        block: int | None = None
        while True:
            # collecting keeps the shard's collection current and wakes on new findings
            await self.shard.collect(p.spec, block_ms=block)
            new = await results.done_many(p.spec, [t for t in ids if t not in got])
            for f in await results.entries(p.spec, list(new.values())):
                if f.task_id in new:
                    got[f.task_id] = f
            ok = sum(1 for f in got.values() if f.ok)
            if new or block is None:
                counts = {"tasks": len(ids), "findings": len(got), "ok": ok}
                await self._set(p, "waiting", counts)
                self._emit("waiting", p, len(ids), len(got), ok)
            if len(got) == len(ids) or (p.on_failure == "abort" and ok < len(got)):
                return got
            left = deadline_at - time.time()
            if left <= 0:
                return got
            block = max(1, int(min(self.tick, left) * 1000))

    # -- state and progress ------------------------------------------------------

    async def _set(self, p: PassSpec, state: str, fields: Mapping[str, str | int]) -> None:
        """Record the state of pass ``p`` (and a one-line progress text) in Redis."""
        text = f"run {self.run_id}: pass {p.number}/{len(self.workflow.passes)} {state}"
        if "findings" in fields:
            text += f", {fields['findings']}/{fields.get('tasks', '?')} findings"
        row: dict[str, str | int] = {"pass": p.number, "state": state, "progress": text}
        row.update(fields)
        await self.store.set_workflow_state(self.workflow.shard, row)

    def _emit(
        self,
        state: str,
        p: PassSpec | None,
        tasks: int = 0,
        findings: int = 0,
        ok: int = 0,
        missing: tuple[str, ...] = (),
        pass_no: int = 0,
    ) -> None:
        if self.on_progress is not None:
            number, name = (p.number, p.name) if p else (pass_no, "")
            n = len(self.workflow.passes)
            self.on_progress(
                Progress(
                    self.run_id, state, number, n, name, tasks, findings, ok, missing, self.resumed
                )
            )


def _abort_message(p: PassSpec, ids: list[str], got: dict[str, Finding], expired: bool) -> str:
    failed = [got[t] for t in ids if t in got and not got[t].ok]
    pending = [t for t in ids if t not in got]
    parts = []
    if failed:
        reasons = "; ".join(f"{f.task_id}: {f.error or f.status.value}" for f in failed[:3])
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        parts.append(f"{len(failed)} of {len(ids)} task(s) failed: {reasons}{more}")
    if pending:
        why = f"within the {p.deadline:g}s deadline" if expired else "yet (not waited for)"
        parts.append(f"{len(pending)} of {len(ids)} task(s) had no finding {why}")
    return f'{p.label()} aborted (on_failure = "abort"): ' + "; ".join(parts)
