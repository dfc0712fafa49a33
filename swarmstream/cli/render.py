"""Rich renderings of findings and dead letters for the human (non ``--json``) output."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from swarmstream.codec import attempt_history
from swarmstream.models import DeadLetter, Finding

#: the token counts of a usage object (swarmstream.usage.Usage.to_dict)
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")

STATUS_STYLE = {"ok": "bold green", "failed": "bold red", "dead": "bold magenta"}


def console() -> Console:
    """A console for tables: the terminal's width, or wide when output is piped."""
    term = Console(highlight=False)
    return term if term.is_terminal else Console(highlight=False, width=200)


def when(ts: float) -> str:
    """HH:MM:SS today, MM-DD HH:MM before."""
    if not ts:
        return "-"
    today = time.localtime().tm_yday == time.localtime(ts).tm_yday
    return time.strftime("%H:%M:%S" if today else "%m-%d %H:%M", time.localtime(ts))


def first_line(text: str | None, width: int = 80) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def status_text(finding: Finding) -> Text:
    return Text(finding.status.value, style=STATUS_STYLE.get(finding.status.value, ""))


def finding_table(findings: Sequence[Finding], width: int, caption: str | None = None) -> Table:
    """Findings as a table; worker and timing columns only when ``width`` allows."""
    wide = width >= 120
    shards = any(f.shard for f in findings)
    names = ["finished", "task", "spec", *(["shard"] * shards), "status", "try"]
    names += ["worker", "ms"] if wide else []
    table = Table(caption=caption, header_style="bold", show_edge=False)
    for name in names:
        table.add_column(name, no_wrap=True, justify="right" if name in ("try", "ms") else "left")
    table.add_column("content", overflow="ellipsis", no_wrap=True, ratio=1, min_width=12)
    for f in findings:
        row: list[str | Text] = [when(f.finished), Text(f.task_id), f.spec]
        row += [f.shard or ""] if shards else []
        row += [status_text(f), str(f.attempt)]
        row += [Text(f.worker), f"{f.duration_ms:,.0f}"] if wide else []
        row.append(Text(first_line(f.content or f.error)))
        table.add_row(*row)
    return table


def finding_line(finding: Finding) -> Text:
    """One line per finding, for ``findings --follow``."""
    line = Text(f"{when(finding.finished)} {finding.task_id} {finding.spec} ")
    line.append_text(status_text(finding))
    shard = f" shard={finding.shard}" if finding.shard else ""
    line.append(f" {finding.worker}{shard} attempt {finding.attempt}: ")
    line.append(first_line(finding.content or finding.error))
    return line


def finding_detail(finding: Finding) -> RenderableType:
    """The whole of one finding, for ``submit --wait``."""
    head = status_text(finding)
    head.append(
        f"  task {finding.task_id}  spec {finding.spec}"
        + (f"  shard {finding.shard}" if finding.shard else "")
        + f"  worker {finding.worker}  attempt {finding.attempt}  {finding.duration_ms:,.1f} ms",
        style="default",
    )
    parts: list[RenderableType] = [head]
    if finding.content:
        parts.append(Text(finding.content))
    if finding.sources:
        parts.append(Text("sources: " + ", ".join(finding.sources), style="cyan"))
    if finding.error:
        parts.append(Text(f"error: {finding.error}", style="red"))
    return Group(*parts)


def dead_table(letters: Sequence[DeadLetter], texts: Sequence[str | None], caption: str) -> Table:
    table = Table(caption=caption, header_style="bold", show_edge=False)
    for name in ("entry id", "task", "attempts", "when", "reason"):
        table.add_column(name, no_wrap=True)
    table.add_column("error / text", overflow="ellipsis", no_wrap=True, ratio=1)
    for letter, text in zip(letters, texts, strict=True):
        table.add_row(
            letter.entry_id,
            Text(letter.task_id or "-"),
            str(letter.attempts),
            when(letter.ts),
            Text(letter.reason),
            Text(first_line(letter.error or text)),
        )
    return table


def _spent(usage: dict[str, Any] | None) -> str:
    if not usage:
        return "-"
    tokens = sum(int(usage.get(k) or 0) for k in TOKEN_KEYS)
    cost = usage.get("cost_usd")
    text = f"{tokens:,} tok" if tokens else ""
    if cost is not None:
        text += f" ${cost:.4f}" + ("*" if usage.get("cost_source") == "computed" else "")
    return text.strip() or "-"


def history_table(finding: Finding) -> Table:
    """Every attempt of a finding's task: who ran it, when, how it ended, what it
    spent (* = cost computed from the price table)."""
    history = attempt_history(finding)
    retried = len(history) > 1
    title = f"task {finding.task_id}: {finding.status.value}"
    if retried:
        title += f" after {len(history)} attempts"
    t = Table(title=title, title_justify="left", box=None)
    for name in ("#", "worker", "started", "took", "outcome", "spent", "error"):
        t.add_column(name, justify="right" if name in ("#", "took") else "left")
    for h in history:
        started, finished = h.get("started"), h.get("finished")
        took = f"{finished - started:.2f}s" if started and finished else "-"
        outcome = str(h.get("outcome", "?"))
        t.add_row(
            str(h.get("attempt")),
            str(h.get("worker") or "-"),
            when(float(started)) if started else "-",
            took,
            Text(outcome, style=STATUS_STYLE.get(outcome, "yellow")),
            _spent(h.get("usage")),
            first_line(h.get("error"), 300) or "-",
        )
    return t
