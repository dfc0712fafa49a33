"""``swarmstream demo``: the whole system in about twenty seconds, on its own Redis.

It starts an embedded redis-server, loads the Northwind Freight handbook shipped
with the package into three memory shards, starts worker processes, runs a
two-pass workflow on every shard, kills one worker with SIGKILL in the middle of
a task (another worker recovers it), asks a question across all shards, prints
the answer with its citations and a summary, and cleans up everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from swarmstream.client import Swarm
from swarmstream.context import read_paths
from swarmstream.embedded import EmbeddedRedis, free_port
from swarmstream.handlers.base import ContextLike
from swarmstream.handlers.retrieve import Retrieve
from swarmstream.models import Finding, Result, Task
from swarmstream.settings import Settings
from swarmstream.shard.scatter import Answer, ask, load_shards
from swarmstream.worker.process import spawn_worker
from swarmstream.workflow.model import Workflow, load_workflow
from swarmstream.workflow.runner import Progress as WorkflowProgress
from swarmstream.workflow.runner import WorkflowRunner, WorkflowSummary

SPEC = "research"
QUESTION = "Where do shipments stall, and why?"
_retrieve = Retrieve()


async def study(task: Task, context: ContextLike | None) -> Result:
    """The demo's handler: 'thinks' for 0.4-1.2 s (like a model call), then answers
    with keyword retrieval over the shard's context, citing path:line."""
    digest = hashlib.sha256(task.id.encode()).digest()
    await asyncio.sleep(0.4 + digest[0] / 255 * 0.8)
    return await _retrieve(task, context)


@dataclass(frozen=True)
class DemoSummary:
    """What the demo did."""

    tasks: int
    findings: int
    recovered: int
    p50_ms: float
    seconds: float
    answer: Answer


def _corpus() -> Path:
    return Path(str(resources.files("swarmstream").joinpath("data", "corpus")))


def _workflow_file() -> Path:
    return Path(str(resources.files("swarmstream").joinpath("data", "demo-workflow.toml")))


class Demo:
    """One demo run; ``await Demo(console).run()``."""

    def __init__(self, console: Console, workers: int = 3) -> None:
        self.console = console
        self.workers = workers
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed: str | None = None

    async def run(self) -> DemoSummary:
        started = time.monotonic()
        home = Path(tempfile.mkdtemp(prefix="swarmstream-demo-"))
        server = EmbeddedRedis(dir=home / "redis", port=free_port(), appendonly=False)
        try:
            url = server.start()
            self.console.print(f"[bold]1.[/] embedded Redis at {url} (in {home})")
            settings = Settings.from_flat(
                {
                    "url": url,
                    "namespace": "demo",
                    "claim_idle": 2.0,
                    "reclaim_interval": 0.25,
                    "heartbeat_interval": 0.5,
                    "block": 0.5,
                    "grace": 3.0,
                }
            )
            async with Swarm(settings) as swarm:
                return await self._story(swarm, settings, started)
        finally:
            self._stop_workers()
            server.stop()
            shutil.rmtree(home, ignore_errors=True)

    async def _story(self, swarm: Swarm, settings: Settings, started: float) -> DemoSummary:
        docs = read_paths([_corpus()], root=_corpus())
        total = sum(len(t) for _, t in docs)
        shards = await load_shards(
            swarm, docs, token_budget=total // 4 // 3 + 200, spec=SPEC, prefix="northwind"
        )
        ids = [s.id for s in shards]
        self.console.print(
            f"[bold]2.[/] {len(docs)} handbook files ({total // 4:,} tokens) "
            f"loaded into {len(ids)} shards: {', '.join(ids)}"
        )
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH")]))}
        for i in range(self.workers):
            self.procs.append(
                spawn_worker(
                    [SPEC],
                    "swarmstream.demo:study",
                    settings,
                    name=f"worker-{i + 1}",
                    extra=("--concurrency", "2"),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self.console.print(f"[bold]3.[/] {self.workers} worker processes on spec '{SPEC}'")
        base = load_workflow(_workflow_file())
        summaries = await self._run_workflows(swarm, settings, base, ids)
        self.console.print(f"[bold]5.[/] asking all shards: [italic]{QUESTION}[/]")
        answer = await ask(swarm, QUESTION, ids, SPEC, deadline=20.0, k=4)
        findings = await swarm.findings(SPEC)
        return self._summary(summaries, findings, answer, started)

    async def _run_workflows(
        self, swarm: Swarm, settings: Settings, base: Workflow, ids: list[str]
    ) -> list[WorkflowSummary]:
        self.console.print("[bold]4.[/] a two-pass workflow on every shard; one worker dies")
        bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            console=self.console,
            transient=False,
        )
        rows: dict[tuple[str, int], TaskID] = {}

        def on_progress(shard: str, ev: WorkflowProgress) -> None:
            if ev.state not in ("posted", "waiting", "synthesized", "restored"):
                return
            key = (shard, ev.pass_no)
            if key not in rows and ev.tasks:
                rows[key] = bars.add_task(f"  {shard} pass {ev.pass_no} {ev.name}", total=ev.tasks)
            if key in rows:
                bars.update(rows[key], completed=ev.findings)

        runners = [
            WorkflowRunner(
                swarm,
                dataclasses.replace(base, shard=sid),
                on_progress=lambda ev, sid=sid: on_progress(sid, ev),  # type: ignore[misc]
                tick=0.2,
            )
            for sid in ids
        ]
        with bars:
            killer = asyncio.create_task(self._kill_one_mid_task(swarm, settings))
            results = await asyncio.gather(*(r.run() for r in runners))
            killer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await killer
        if self.killed:
            self.console.print(f"   {self.killed}", markup=False)
        return list(results)

    async def _kill_one_mid_task(self, swarm: Swarm, settings: Settings) -> None:
        """SIGKILL the first worker seen busy; start a fresh one in its place."""
        while True:
            for info in await swarm.registry.workers():
                if info.state.value == "busy" and info.current:
                    proc = next((p for p in self.procs if p.pid == info.pid), None)
                    if proc is None:
                        continue
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    self.killed = (
                        f"killed {info.name} (pid {info.pid}) with SIGKILL while it ran task "
                        f"{info.current[0]}; after claim_idle "
                        f"({settings.worker.claim_idle:g}s) another worker reclaimed it"
                    )
                    self.procs.append(
                        spawn_worker(
                            [SPEC],
                            "swarmstream.demo:study",
                            settings,
                            name="worker-new",
                            extra=("--concurrency", "2"),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                    return
            await asyncio.sleep(0.1)

    def _summary(
        self,
        runs: list[WorkflowSummary],
        findings: list[Finding],
        answer: Answer,
        started: float,
    ) -> DemoSummary:
        latencies = [(f.finished - f.created) * 1000 for f in findings if f.created and f.finished]
        tasks = (
            sum(sum(p.tasks for p in r.passes) for r in runs)
            + len(answer.answered)
            + len(answer.missing)
        )
        return DemoSummary(
            tasks=tasks,
            findings=len(findings),
            recovered=sum(1 for f in findings if f.attempt >= 2),
            p50_ms=statistics.median(latencies) if latencies else 0.0,
            seconds=time.monotonic() - started,
            answer=answer,
        )

    def _stop_workers(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


def print_summary(console: Console, s: DemoSummary) -> None:
    console.print()
    console.print(s.answer.text, markup=False, highlight=False)
    console.print()
    console.print(
        f"[bold]summary:[/] {s.tasks} tasks, {s.findings} findings, "
        f"{s.recovered} recovered after a worker was killed, "
        f"p50 latency {s.p50_ms:.0f} ms (submit to finding), {s.seconds:.1f}s in all; "
        "Redis, workers and files cleaned up"
    )
