"""Render: a Snapshot as Rich renderables. Pure: no Redis, no clock, no I/O."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from swarmstream.monitor.snapshot import Snapshot

_BARS = " ▁▂▃▄▅▆▇█"
_STATE_STYLE = {"busy": "green", "idle": "dim", "draining": "yellow", "starting": "cyan"}


def sparkline(values: tuple[float, ...] | list[float], width: int = 60) -> str:
    """Unicode bars for the last ``width`` values, scaled to their maximum."""
    vals = list(values)[-width:]
    if not vals:
        return ""
    top = max(vals) or 1.0
    return "".join(_BARS[min(8, round(v / top * 8))] for v in vals)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def specs_table(snap: Snapshot) -> Table:
    t = Table(title="specs", expand=True, title_justify="left", show_edge=False)
    for col in ("spec", "backlog", "pending", "oldest", "done/s", "fail/s", "done", "dead", "cons"):
        t.add_column(col, justify="left" if col == "spec" else "right", no_wrap=True)
    for s in snap.specs:
        oldest = None if s.oldest_pending_ms is None else s.oldest_pending_ms / 1000
        t.add_row(
            s.name,
            _num(s.backlog),
            _num(s.pending),
            _dur(oldest),
            _num(s.completed_rate, 1),
            _num(s.failed_rate, 1),
            _num(s.completed),
            Text(_num(s.dead), style="red" if s.dead else ""),
            _num(s.consumers),
        )
    return t


def workers_table(snap: Snapshot) -> Table:
    t = Table(title="workers", expand=True, title_justify="left", show_edge=False)
    for col in ("worker", "state", "task", "for", "done", "specs", "host:pid", "beat"):
        t.add_column(col, no_wrap=col != "specs", overflow="ellipsis")
    for w in snap.workers:
        t.add_row(
            w.name,
            Text(w.state.value, style=_STATE_STYLE.get(w.state.value, "")),
            w.current[0] if w.current else "-",
            _dur(None if w.busy_since is None else snap.time - w.busy_since),
            _num(w.done),
            ",".join(w.specs),
            f"{w.host}:{w.pid}",
            _dur(snap.time - w.heartbeat) + " ago",
        )
    return t


def shards_table(snap: Snapshot) -> Table:
    t = Table(title="shards", expand=True, title_justify="left", show_edge=False)
    for col in ("shard", "spec", "tokens", "ctx v", "pass", "progress", "collected"):
        t.add_column(col, no_wrap=True)
    for h in snap.shards:
        t.add_row(
            h.id,
            h.spec,
            _num(h.tokens),
            _num(h.version),
            _num(h.pass_no),
            h.progress or "-",
            _num(h.collected),
        )
    return t


def feed_table(snap: Snapshot, rows: int = 8) -> Table:
    t = Table(title="latest findings", expand=True, title_justify="left", show_edge=False)
    for col in ("status", "spec", "task", "worker", "ms", "content"):
        t.add_column(col, no_wrap=True, overflow="ellipsis", max_width=None)
    for f in snap.feed[:rows]:
        style = "green" if f.ok else "red"
        t.add_row(
            Text(f.status.value, style=style),
            f.spec,
            f.task_id,
            f.worker,
            _num(f.duration_ms),
            (f.content or f.error or "").replace("\n", " ")[:80],
        )
    return t


def render(snap: Snapshot, *, status: str = "connected", width: int = 80) -> RenderableType:
    """The whole dashboard for one snapshot."""
    rate = snap.history[-1] if snap.history else None
    head = Text.assemble(
        ("swarmstream ", "bold"),
        (status, "green" if status == "connected" else "bold red"),
        f"  specs {len(snap.specs)}  workers {len(snap.workers)}  shards {len(snap.shards)}",
        f"  completed {snap.completed:,}",
        f"  {_num(rate, 1)}/s" if rate is not None else "",
    )
    spark = Text(sparkline(snap.history, max(10, width - 24)), style="cyan")
    parts: list[RenderableType] = [head, Text("throughput (1 min) ") + spark]
    parts.append(specs_table(snap))
    parts.append(workers_table(snap))
    if snap.shards:
        parts.append(shards_table(snap))
    parts.append(feed_table(snap))
    return Panel(Group(*parts), border_style="blue", padding=(0, 1))
