"""The tools an agent session calls. Their docstrings and parameter descriptions are
what the agent reads; each returns a JSON-ready dict, and every error becomes one
clear tool error (``ToolError``), never a traceback.

The coordinator's tools wrap the library (``Swarm``, ``ask``, ``collect``); the
worker's tools (``claim``, ``report``, ``fail``, ``release``) wrap ``Desk``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from swarmstream.client import Swarm
from swarmstream.codec import dead_to_json, finding_to_json
from swarmstream.errors import ConfigError, SwarmstreamError, TaskNotFound
from swarmstream.keys import validate_name
from swarmstream.mcp import views
from swarmstream.mcp.contexts import ContextDesk
from swarmstream.mcp.desk import Desk
from swarmstream.models import DEFAULT_MAX_ATTEMPTS, Task
from swarmstream.monitor.snapshot import collect
from swarmstream.settings import Settings
from swarmstream.shard.gather import DEFAULT_THRESHOLD, ask
from swarmstream.transport.errors import translate
from swarmstream.worker.execution import TRANSIENT, describe

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

#: task ids submitted in this session whose spec ``wait`` remembers
REMEMBERED = 10_000
#: what may cut the release at exit short: Redis away, or the grace period over
TRANSIENT_OR_LATE: tuple[type[BaseException], ...] = (*TRANSIENT, TimeoutError)

Spec = Annotated[str, Field(description="Specialization (task stream), e.g. 'research'.")]
TaskId = Annotated[str, Field(description="A task id, as submit or claim returned it.")]
Shard = Annotated[str | None, Field(description="Memory shard the task belongs to.")]


class NewTask(BaseModel):
    """One task for submit_many."""

    spec: Spec
    text: Annotated[str, Field(description="The task's instruction.")]
    shard: Shard = None
    data: Annotated[Any, Field(description="Structured payload (any JSON).")] = None
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_MAX_ATTEMPTS
    timeout: Annotated[float | None, Field(gt=0, description="Seconds per attempt.")] = None


def _guarded(
    fn: Callable[Concatenate[SwarmTools, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[SwarmTools, P], Coroutine[Any, Any, R]]:
    """A tool: counts as session activity; any error becomes one ToolError line."""

    @functools.wraps(fn)
    async def tool(self: SwarmTools, /, *args: P.args, **kwargs: P.kwargs) -> R:
        ledger = self.desk.ledger
        ledger.enter()
        try:
            return await fn(self, *args, **kwargs)
        except ToolError:
            raise
        except SwarmstreamError as exc:
            raise ToolError(str(exc)) from None
        except RedisError as exc:
            error = translate(exc, self.settings) or SwarmstreamError(f"Redis error: {exc}")
            raise ToolError(str(error)) from None
        except TRANSIENT as exc:
            raise ToolError(f"Redis unavailable: {describe(exc)}") from None
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        except Exception as exc:
            log.exception("tool %s failed", fn.__name__)
            raise ToolError(f"internal error in {fn.__name__}: {describe(exc)}") from None
        finally:
            ledger.leave()

    return tool


class SwarmTools:
    """The swarm as MCP tools, for one server (``open`` / ``close`` bracket its life)."""

    def __init__(self, settings: Settings, *, hold: float = 600.0, name: str | None = None) -> None:
        self.settings = settings
        self.hold = hold
        self.name = name
        self._swarm: Swarm | None = None
        self._desk: Desk | None = None
        self._contexts: ContextDesk | None = None
        self._stopping = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._specs_of: OrderedDict[str, str] = OrderedDict()
        #: ``open`` was called; ``closed`` is set once ``close`` is done
        self.started = False
        self.closed = asyncio.Event()

    # -- life ---------------------------------------------------------------

    async def open(self) -> None:
        """Connect (a cluster behind a redis:// URL is detected) and start the leases."""
        self.started = True
        swarm = Swarm(self.settings)
        try:
            await swarm.check()
        except BaseException:
            await swarm.aclose()
            raise
        self._swarm = swarm
        self._desk = Desk(swarm.transport, self.settings, hold=self.hold, name=self.name)
        self._contexts = ContextDesk(swarm.transport.shards)
        self._stopping.clear()
        self._keeper = asyncio.create_task(self._desk.keep(self._stopping))
        log.info("mcp session %s on %s", self._desk.name, self.settings.redis.redacted_url)

    async def close(self) -> None:
        """Release the held tasks at once, then disconnect (within the grace period)."""
        self._stopping.set()
        if self._keeper is not None:
            await asyncio.gather(self._keeper, return_exceptions=True)
        try:
            if self._desk is not None:
                held = len(self._desk.held)
                async with asyncio.timeout(self.settings.worker.grace):
                    await self._desk.close()
                log.info("mcp session %s ended; released %d task(s)", self._desk.name, held)
        except TRANSIENT_OR_LATE as exc:
            log.warning("mcp session: release at exit incomplete (%s)", describe(exc))
        except Exception as exc:  # left for reclaim after claim_idle, as a dead worker's
            log.warning("mcp session: release at exit failed (%s)", describe(exc))
        finally:
            if self._contexts is not None:
                self._contexts.close()
            if self._swarm is not None:
                await self._swarm.aclose()
            self.closed.set()

    @property
    def swarm(self) -> Swarm:
        if self._swarm is None:
            raise SwarmstreamError("the swarmstream MCP server is not connected to Redis yet")
        return self._swarm

    @property
    def desk(self) -> Desk:
        if self._desk is None:
            raise ToolError("the swarmstream MCP server is not connected to Redis yet")
        return self._desk

    @property
    def contexts(self) -> ContextDesk:
        if self._contexts is None:
            raise SwarmstreamError("the swarmstream MCP server is not connected to Redis yet")
        return self._contexts

    def register(self, server: MCPServer[Any]) -> None:
        """Add every tool to ``server``, its docstring as its description."""
        read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
        writes = ToolAnnotations(read_only_hint=False, destructive_hint=False)
        tools: list[tuple[Callable[..., Any], ToolAnnotations]] = [
            (self.ping, read_only),
            (self.submit, writes),
            (self.submit_many, writes),
            (self.wait, read_only),
            (self.findings, read_only),
            (self.ask, writes),
            (self.status, read_only),
            (self.dead_letters, read_only),
            (self.claim, writes),
            (self.report, writes),
            (self.fail, writes),
            (self.release, writes),
        ]
        for fn, hints in tools:
            doc = inspect.cleandoc(fn.__doc__ or "")
            server.add_tool(fn, description=doc, annotations=hints)

    # -- session ------------------------------------------------------------

    @_guarded
    async def ping(self) -> dict[str, Any]:
        """Check the swarmstream server and keep your claimed tasks alive.

        Any tool call counts as activity: a task you claimed goes back to the swarm
        when this session makes no tool call for its hold time (see claim). Returns
        this session's worker name, the namespace, the Redis URL (password hidden),
        the tasks you hold with their deadlines, and counters.
        """
        desk = self.desk
        return {
            "ok": True,
            "worker": desk.name,
            "pid": os.getpid(),
            "namespace": self.settings.redis.namespace,
            "redis": self.settings.redis.redacted_url,
            "hold_s": desk.hold,
            "holding": desk.ledger.to_json(),
            "counts": dict(desk.counts),
        }

    # -- coordinating ---------------------------------------------------------

    @_guarded
    async def submit(
        self,
        spec: Spec,
        text: Annotated[str, Field(description="The task's instruction.")],
        shard: Shard = None,
        data: Annotated[Any, Field(description="Structured payload for the worker.")] = None,
        max_attempts: Annotated[
            int, Field(ge=1, le=1000, description="Deliveries before it is dead-lettered.")
        ] = DEFAULT_MAX_ATTEMPTS,
        timeout: Annotated[
            float | None, Field(gt=0, description="Time limit of one attempt, in seconds.")
        ] = None,
    ) -> dict[str, Any]:
        """Post one task to a spec's stream; a worker of that spec runs it.

        Returns its task_id. Get its finding with wait (blocks until it arrives) or
        findings (what is stored now). With shard, the worker borrows that memory
        shard's context.
        """
        if shard is not None:
            validate_name("shard", shard)
        task = await self.swarm.submit(
            spec, text, data=data, shard=shard, max_attempts=max_attempts, timeout=timeout
        )
        self._remember([task])
        return views.submitted(task)

    @_guarded
    async def submit_many(
        self,
        tasks: Annotated[
            list[NewTask], Field(min_length=1, max_length=1000, description="The tasks.")
        ],
    ) -> dict[str, Any]:
        """Post many tasks at once (one round trip), to one or several specs.

        Returns their task ids in order; wait takes them all at once.
        """
        built = []
        for t in tasks:
            validate_name("spec", t.spec)
            if t.shard is not None:
                validate_name("shard", t.shard)
            built.append(
                Task(
                    spec=t.spec,
                    text=t.text,
                    data=t.data,
                    shard=t.shard,
                    max_attempts=t.max_attempts,
                    timeout=t.timeout,
                )
            )
        done = await self.swarm.submit_many(built)
        self._remember(done)
        return {"tasks": [views.submitted(t) for t in done]}

    def _remember(self, tasks: list[Task]) -> None:
        for t in tasks:
            self._specs_of[t.id] = t.spec
        while len(self._specs_of) > REMEMBERED:
            self._specs_of.popitem(last=False)

    @_guarded
    async def wait(
        self,
        task_ids: Annotated[list[str], Field(min_length=1, max_length=1000)],
        spec: Annotated[
            str | None,
            Field(description="Their spec; needed only for tasks not submitted in this session."),
        ] = None,
        timeout: Annotated[float, Field(ge=0, le=3600, description="Seconds to wait.")] = 60.0,
    ) -> dict[str, Any]:
        """Wait until the findings of some tasks arrive (or the timeout passes).

        Returns the findings that arrived (status ok, failed or dead; content,
        sources, worker, attempt) and the ids still missing. Missing tasks stay
        queued: wait again, or read them later with findings.
        """
        tasks = []
        for task_id in dict.fromkeys(task_ids):
            chosen = spec or self._specs_of.get(task_id)
            if chosen is None:
                raise ConfigError(f"task {task_id} was not submitted in this session: give spec")
            tasks.append(Task(validate_name("spec", chosen), "", task_id))
        found = await self.swarm.wait_many(tasks, timeout=timeout)
        return {
            "findings": [finding_to_json(found[t.id]) for t in tasks if t.id in found],
            "missing": [t.id for t in tasks if t.id not in found],
        }

    @_guarded
    async def findings(
        self,
        spec: Annotated[str | None, Field(description="Only this spec (default: all).")] = None,
        shard: Annotated[str | None, Field(description="Only this memory shard.")] = None,
        task_id: Annotated[str | None, Field(description="Only this task.")] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="The newest N.")] = 20,
    ) -> dict[str, Any]:
        """Stored findings, oldest first: by task, by shard, by spec, or all.

        Each finding: task_id, spec, shard, status (ok, failed, dead), content,
        sources (path:line citations), worker, attempt, error.
        """
        if spec is not None:
            validate_name("spec", spec)
        if shard is not None:
            validate_name("shard", shard)
        try:
            found = await self.swarm.findings(spec, shard=shard, task_id=task_id, count=limit)
        except TaskNotFound:
            found = []
        if task_id is not None and shard is not None:
            found = [f for f in found if f.shard == shard]
        return {"findings": [finding_to_json(f) for f in found]}

    @_guarded
    async def ask(
        self,
        question: Annotated[str, Field(description="The question.")],
        shards: Annotated[
            list[str] | None, Field(description="Shard ids to ask (default: every shard).")
        ] = None,
        spec: Annotated[
            str | None, Field(description="Spec whose workers answer (default: the shards').")
        ] = None,
        deadline: Annotated[float, Field(ge=0, le=600, description="Seconds to wait.")] = 30.0,
        k: Annotated[int, Field(ge=1, le=50, description="Passages in the answer.")] = 5,
        threshold: Annotated[
            float,
            Field(
                ge=0,
                le=1,
                description="Least support (0-1) a passage needs to count as an answer.",
            ),
        ] = DEFAULT_THRESHOLD,
    ) -> dict[str, Any]:
        """Ask every memory shard a question and merge their cited passages.

        One task per shard goes to the shards' spec (workers with the retrieve
        handler answer from the shard's context). Returns found (false: no shard
        supports an answer, and reason says why), the best passages with path:line
        sources, the shards searched, and those that missed the deadline (the
        answer is then partial).
        """
        store = self.swarm.transport.shards
        ids = [validate_name("shard", s) for s in shards or []] or await store.shard_ids()
        if not ids:
            raise ConfigError("no shards: load one with 'swarmstream context load'")
        chosen = spec or (await store.meta(ids[0])).get("spec")
        if not chosen:
            raise ConfigError(f"shard {ids[0]!r} has no spec: give spec")
        chosen = validate_name("spec", chosen)
        result = await ask(self.swarm, question, ids, chosen, deadline, k, threshold=threshold)
        return views.answer(result)

    @_guarded
    async def status(self) -> dict[str, Any]:
        """A snapshot of the swarm (what 'swarmstream status --json' prints).

        Per spec: backlog (not yet given to a worker), pending (being worked on),
        completed, failed, dead letters, consumers; the live workers with their
        state and current tasks; the memory shards with their pass and progress.
        """
        return (await collect(self.swarm.transport.stats)).to_json()

    @_guarded
    async def dead_letters(
        self,
        spec: Spec,
        limit: Annotated[int, Field(ge=1, le=1000, description="The newest N.")] = 20,
    ) -> dict[str, Any]:
        """A spec's dead letters, oldest first: tasks that failed max_attempts times,
        were delivered too often, or could not be decoded, each with its reason.
        Requeue them with 'swarmstream dead requeue SPEC ID'.
        """
        validate_name("spec", spec)
        letters = await self.swarm.dead(spec, limit)
        total = await self.swarm.results.dead_count(spec)
        shown = [dead_to_json(x) for x in letters]
        return {"spec": spec, "total": total, "dead_letters": shown}

    # -- working --------------------------------------------------------------

    @_guarded
    async def claim(
        self,
        spec: Spec,
        hold: Annotated[
            float | None,
            Field(
                gt=0,
                le=604800,
                description="Seconds without any tool call from you after which the task "
                "goes back to the swarm (default: the server's --hold).",
            ),
        ] = None,
        wait: Annotated[
            float, Field(ge=0, le=600, description="Seconds to wait for a task to arrive.")
        ] = 0.0,
    ) -> dict[str, Any]:
        """Take one task of a spec to work on yourself, as a worker of the swarm.

        Returns its task_id, text, data, attempt and, for a task of a memory shard,
        the shard's context ('text', or a 'file' path when it is over 64 KiB). Then
        call report(task_id, content, sources) with your finding, or fail(task_id,
        error) if you cannot do it (it is retried later, by you or another worker),
        or release(task_id) to give it back untouched. While you hold it, its lease
        is kept alive for you; if you make no tool call for 'hold' seconds, or this
        session ends, the task goes back to the swarm. Returns claimed=false when no
        task is waiting.
        """
        held = await self.desk.claim(spec, hold=hold, wait=wait)
        if held is None:
            return {
                "claimed": False,
                "spec": spec,
                "message": f"no task is waiting in {spec!r} (waited {wait:g}s)",
            }
        out = views.claimed(held, time.monotonic())
        out["context"] = None
        if held.task.shard:
            try:
                out["context"] = await self.contexts.describe(held.task.shard)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.desk.release(held.task.id)
                raise
        out["next"] = "report(task_id, content, sources) when done, or fail(task_id, error)"
        return out

    @_guarded
    async def report(
        self,
        task_id: TaskId,
        content: Annotated[str, Field(description="Your finding (the answer, the result).")],
        sources: Annotated[
            list[str] | None, Field(description="Citations, e.g. 'docs/a.md:12-18'.")
        ] = None,
        data: Annotated[Any, Field(description="Structured data for the finding.")] = None,
        usage: Annotated[
            dict[str, Any] | None,
            Field(
                description="What the task cost, if you know: model, input_tokens, "
                "output_tokens, cost_usd (added to the swarm's totals and budgets)."
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Record the finding of a task you claimed (status ok) and finish it.

        Exactly one finding per task is kept: if your lease was lost meanwhile
        (another worker reclaimed the task after you went silent too long), this
        fails with 'lease lost' and nothing of yours is recorded.
        """
        held = await self.desk.report(task_id, content, sources or (), data, usage)
        return {
            "recorded": True,
            "task_id": task_id,
            "spec": held.task.spec,
            "status": "ok",
            "attempt": held.task.attempt,
        }

    @_guarded
    async def fail(
        self,
        task_id: TaskId,
        error: Annotated[str, Field(description="Why the attempt failed.")],
    ) -> dict[str, Any]:
        """Fail your attempt at a task you claimed.

        While attempts remain, the task is retried after a backoff (by any worker,
        maybe you); on its last attempt it is dead-lettered with status failed.
        """
        held, delay = await self.desk.fail(task_id, error)
        task = held.task
        if delay is None:
            return {
                "task_id": task_id,
                "outcome": "failed",
                "message": f"failed on all {task.max_attempts} attempts: dead-lettered",
            }
        return {
            "task_id": task_id,
            "outcome": "retry",
            "attempt": task.attempt,
            "max_attempts": task.max_attempts,
            "retry_after_s": round(delay, 3),
        }

    @_guarded
    async def release(self, task_id: TaskId) -> dict[str, Any]:
        """Give a task you claimed back to the swarm, untouched: another worker
        takes it at once, and no attempt is spent."""
        await self.desk.release(task_id)
        return {"task_id": task_id, "released": True}
