"""``swarmstream run``: coordinate a pass workflow (resumable) with live progress."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bars

from swarmstream.cli.base import globals_of
from swarmstream.cli.common import ConnectWait, wait_for
from swarmstream.client import Swarm
from swarmstream.settings import Settings
from swarmstream.workflow.model import Workflow, load_workflow
from swarmstream.workflow.runner import Progress, WorkflowRunner, WorkflowSummary


class _Display:
    """One progress bar per pass, fed by the runner's progress events."""

    def __init__(self, bars: Bars, console: Console) -> None:
        self.bars = bars
        self.console = console
        self.rows: dict[int, TaskID] = {}

    def __call__(self, event: Progress) -> None:
        if event.state in ("start", "finished"):
            how = f"resuming at pass {max(1, event.pass_no)}" if event.resumed else "starting"
            how = "finished earlier" if event.state == "finished" else how
            self.console.print(f"run {event.run_id}: {how}")
            return
        if event.state == "done":
            return
        row = self.rows.get(event.pass_no)
        if row is None:
            label = f"pass {event.pass_no}/{event.passes} {event.name}"
            row = self.bars.add_task(label, total=max(1, event.tasks), status="")
            self.rows[event.pass_no] = row
        status = f"{event.ok} ok" if event.state != "posted" else "posted"
        if event.missing:
            status += f", {len(event.missing)} missing"
        if event.state in ("restored", "aborted"):
            status += " (earlier run)" if event.state == "restored" else ", aborted"
        done = event.tasks if event.state in ("restored", "synthesized") else event.findings
        self.bars.update(row, completed=done, status=status)


async def _run(
    settings: Settings, workflow: Workflow, run_id: str | None, display: _Display
) -> WorkflowSummary | None:
    if not await wait_for(settings, f"workflow {workflow.name}"):
        return None
    async with Swarm(settings) as swarm:
        runner = WorkflowRunner(swarm, workflow, run_id=run_id, on_progress=display)
        return await runner.run()


def _report(summary: WorkflowSummary) -> None:
    total = sum(p.tasks for p in summary.passes)
    ok = sum(p.ok for p in summary.passes)
    typer.echo(
        f"workflow {summary.workflow} run {summary.run_id} on shard {summary.shard}: "
        f"{len(summary.passes)} passes, {ok}/{total} findings, {summary.seconds:.1f}s"
        + (" (partial)" if summary.partial else "")
    )
    for p in summary.passes:
        note = f", missing: {', '.join(p.missing)}" if p.missing else ""
        spent = ""
        if p.tokens or p.cost_usd:
            floor = ">=" if p.unpriced else ""
            spent = f", {p.tokens:,} tokens, {floor}${p.cost_usd:.4f}"
        typer.echo(
            f"  pass {p.number} {p.name}: {p.ok}/{p.tasks} ok, {p.seconds:.1f}s{spent}{note}"
        )
    if summary.knowledge is not None:
        typer.echo(f"\nknowledge (pass {summary.knowledge.pass_no}):")
        typer.echo(summary.knowledge.summary or "(empty)")


def run(
    ctx: typer.Context,
    workflow: Annotated[Path, typer.Argument(help="Workflow TOML file.", show_default=False)],
    shard: Annotated[
        str | None, typer.Option("--shard", help="Shard id (default: the file's 'shard').")
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            help="Run id. Default: resume the shard's unfinished run of this workflow, "
            "else start a new one. A new id abandons an unfinished run.",
        ),
    ] = None,
    connect_wait: ConnectWait = None,
) -> None:
    """Run a pass workflow: post each pass's tasks, wait for the findings until the
    pass deadline, synthesize, and feed the synthesis to the next pass. Progress is
    kept in Redis: run the same command again after a crash and it resumes.

    Example: swarmstream run configs/workflow-3pass.toml --shard demo
    """
    wf = load_workflow(workflow)
    if shard:
        wf = wf.with_shard(shard)
    settings = globals_of(ctx).settings(connect_wait=connect_wait)
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Bars(*columns, console=console) as bars:
        summary = asyncio.run(_run(settings, wf, run_id, _Display(bars, console)))
    if summary is None:
        raise typer.Exit(130)  # interrupted while waiting for Redis
    _report(summary)
