"""Render: a Snapshot as Rich renderables. Pure: no Redis, no clock, no I/O.

The layout follows the width it is given (the console's):

* under 100 columns, low-value columns are dropped (host, pid, the specs a
  worker serves, the finding's spec and task id, context versions) and large
  counts are abbreviated (``1.2M``); every essential column stays;
* from 120 columns, totals (completed, failed), host and pid appear and task
  ids are shown whole;
* from 150 columns, shards and the findings feed sit side by side.

With a ``height`` (the live monitor passes the terminal's), long tables are cut
to fit, busiest rows first, and their titles say how many are shown.

"backlog" is what Redis calls the group's *lag*: entries added to a spec's task
stream that no worker has been given yet. "pending" entries were delivered and
not yet acknowledged; "oldest" is how long the oldest of them has been in flight,
since its first delivery (an entry stuck with a live worker keeps growing there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from swarmstream.accounting import SpecUsage, Totals
from swarmstream.models import Finding, WorkerInfo, WorkerState
from swarmstream.monitor.format import (
    flow,
    fmt_count,
    fmt_duration,
    fmt_rate,
    key_value,
    short_id,
    sparkline,
    throughput,
)
from swarmstream.monitor.snapshot import ShardStats, Snapshot, SpecStats

NARROW = 100  # below this width: compact columns
WIDE = 120  # from this width: every column
SIDE_BY_SIDE = 150  # from this width: shards and findings next to each other
FEED_ROWS = 8
T = TypeVar("T")

_STATE_STYLE = {
    "busy": "green",
    "idle": "dim",
    "draining": "yellow",
    "starting": "cyan",
    "paused": "bold yellow",
}
_STATE_ORDER = {"busy": 0, "draining": 1, "starting": 2, "paused": 3, "idle": 4}
LEGEND = "backlog (= lag): not yet delivered · pending: delivered, not acked"
LEGEND_WIDE = LEGEND + " · oldest: in flight since first delivery"


def _table(title: Text) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="",
        box=None,
        expand=True,
        pad_edge=False,
        padding=(0, 1),
        header_style="bold dim",
    )


def _title(name: str, total: int, shown: int, extra: str = "") -> Text:
    text = Text.assemble((name, "bold"), f" {total}")
    if shown < total:
        text.append(f" (showing {shown})", style="yellow")
    if extra:
        text.append(" · " + extra, style="dim")
    return text


def _column(
    t: Table,
    name: str,
    *,
    flex: int = 0,
    right: bool = False,
    min_width: int = 0,
    max_width: int = 0,
) -> None:
    t.add_column(
        name,
        justify="right" if right else "left",
        no_wrap=True,
        overflow="ellipsis",
        ratio=flex or None,
        min_width=min_width or None,
        max_width=max_width or None,
    )


def _spec_activity(s: SpecStats) -> tuple[int, ...]:
    return ((s.backlog or 0) + s.pending, s.dead, s.completed)


def specs_table(snap: Snapshot, width: int, rows: int | None = None) -> Table:
    compact, wide = width < NARROW, width >= WIDE
    shown = _pick(snap.specs, rows, _spec_activity)
    t = _table(_title("specs", len(snap.specs), len(shown)))
    _column(t, "spec", flex=1, min_width=6)
    for name in ("backlog", "pending", "oldest"):
        _column(t, name, right=True)
    for name in ("dlv/s" if compact else "deliv/s", "done/s", "fail/s"):
        _column(t, name, right=True)
    if wide:
        _column(t, "completed", right=True)
        _column(t, "failed", right=True)
    _column(t, "dead", right=True)
    _column(t, "cons" if compact else "consumers", right=True)
    spending = any(s.usage.total.attempts or s.budget for s in snap.specs)
    if spending:
        if wide:
            _column(t, "tokens", right=True)
        _column(t, "cost", right=True)
        if wide:
            _column(t, "budget left", right=True)

    for s in shown:
        label = Text(s.name)
        if s.paused_by:  # paused by a budget (the header says which)
            label = Text(f"{s.name} ⏸", style="bold yellow")
        t.add_row(*_spec_cells(label, s, compact, wide, spending))
    if len(snap.specs) > 1:
        total = _spec_cells(
            Text("total", style="bold"), _total(snap.specs), compact, wide, spending
        )
        t.add_row(*total, style="bold")
    return t


def _spec_cells(
    label: Text | str, s: SpecStats, compact: bool, wide: bool, spending: bool
) -> list[Text | str]:
    """One row of the specs table."""
    oldest = None if s.oldest_pending_ms is None else s.oldest_pending_ms / 1000
    cells: list[Text | str] = [
        label,
        fmt_count(s.backlog, compact),
        fmt_count(s.pending, compact),
        fmt_duration(oldest),
        fmt_rate(s.delivered_rate, compact),
        fmt_rate(s.completed_rate, compact),
        Text(fmt_rate(s.failed_rate, compact), style="red" if s.failed_rate else ""),
    ]
    if wide:
        cells += [fmt_count(s.completed), fmt_count(s.failed)]
    cells += [
        Text(fmt_count(s.dead, compact), style="bold red" if s.dead else ""),
        fmt_count(s.consumers, compact),
    ]
    if spending:
        total = s.usage.total
        if wide:
            cells.append(fmt_count(total.tokens, compact))
        cells.append(fmt_usd(total.cost_usd, total.unpriced))
        if wide:
            cells.append(_budget_left(s))
    return cells


def fmt_usd(value: float, unpriced: int = 0) -> str:
    """A cost in dollars; '≥' when some usage had no known cost (a floor)."""
    text = f"${value:,.2f}" if value >= 0.995 or value == 0 else f"${value:.4f}"
    return f"≥{text}" if unpriced else text


def _budget_left(s: SpecStats) -> Text | str:
    if s.budget is None:
        return "-"
    usd, tokens = s.budget.budget.left(s.budget.spent)
    parts = []
    if usd is not None:
        parts.append(fmt_usd(usd))
    if tokens is not None:
        parts.append(f"{fmt_count(tokens, True)} tok")
    return Text(" · ".join(parts), style="bold yellow" if s.paused_by else "")


def _sum(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _total(specs: Sequence[SpecStats]) -> SpecStats:
    backlogs = [s.backlog for s in specs]
    oldest = [s.oldest_pending_ms for s in specs if s.oldest_pending_ms is not None]
    delivered = _sum([s.delivered_rate for s in specs])
    return SpecStats(
        name="total",
        stream="",
        length=sum(s.length for s in specs),
        backlog=None if all(b is None for b in backlogs) else sum(b or 0 for b in backlogs),
        pending=sum(s.pending for s in specs),
        oldest_pending_ms=max(oldest) if oldest else None,
        consumers=sum(s.consumers for s in specs),
        dead=sum(s.dead for s in specs),
        delivered=None,
        completed=sum(s.completed for s in specs),
        failed=sum(s.failed for s in specs),
        retried=sum(s.retried for s in specs),
        delivered_rate=delivered,
        completed_rate=_sum([s.completed_rate for s in specs]),
        failed_rate=_sum([s.failed_rate for s in specs]),
        usage=SpecUsage(total=sum((s.usage.total for s in specs), Totals())),
    )


def _worker_priority(w: WorkerInfo) -> tuple[int, float]:
    return _STATE_ORDER.get(w.state.value, 4), w.busy_since or 0.0


def _state(w: WorkerInfo) -> Text:
    label = w.state.value
    if w.state is WorkerState.BUSY and w.concurrency > 1:
        label = f"busy {len(w.current)}/{w.concurrency}"
    return Text(label, style=_STATE_STYLE.get(w.state.value, ""))


def workers_table(snap: Snapshot, width: int, rows: int | None = None) -> Table:
    compact, wide = width < NARROW, width >= WIDE
    shown = _pick(snap.workers, rows, lambda w: tuple(-x for x in _worker_priority(w)))
    states: dict[str, int] = {}
    for w in snap.workers:
        states[w.state.value] = states.get(w.state.value, 0) + 1
    extra = " · ".join(f"{n} {s}" for s, n in sorted(states.items(), key=_state_key))
    t = _table(_title("workers", len(snap.workers), len(shown), extra))
    _column(t, "worker", flex=2, min_width=8)
    if wide:
        _column(t, "host", flex=1)
        _column(t, "pid", right=True)
    if not compact:
        _column(t, "specs", flex=1)
    _column(t, "state")
    _column(t, "task", min_width=8)
    _column(t, "for", right=True)
    _column(t, "done", right=True)
    _column(t, "beat", right=True)
    id_len = 40 if wide else 14 if not compact else 11
    for w in shown:
        task = short_id(w.current[0], id_len) if w.current else "-"
        if len(w.current) > 1:
            task += f" +{len(w.current) - 1}"
        cells: list[Text | str] = [w.name]
        if wide:
            cells += [w.host, str(w.pid)]
        if not compact:
            cells.append(",".join(w.specs))
        cells += [
            _state(w),
            task,
            fmt_duration(None if w.busy_since is None else snap.time - w.busy_since),
            fmt_count(w.done, compact),
            fmt_duration(snap.time - w.heartbeat) + ("" if compact else " ago"),
        ]
        t.add_row(*cells)
    return t


def _state_key(item: tuple[str, int]) -> int:
    return _STATE_ORDER.get(item[0], 4)


def _bar(done: int, total: int, cells: int) -> str:
    full = min(cells, round(cells * done / total)) if total else 0
    return "▰" * full + "▱" * (cells - full)


def _progress(h: ShardStats, compact: bool) -> str:
    if h.tasks:
        found = h.findings or 0
        text = f"{found}/{h.tasks}"
        return text if compact else f"{_bar(found, h.tasks, 8)} {text}"
    return h.state or "-"


def shards_table(snap: Snapshot, width: int, rows: int | None = None) -> Table:
    compact, wide = width < NARROW, width >= WIDE
    shown = _pick(snap.shards, rows, lambda h: (h.tasks or 0) - (h.findings or 0))
    t = _table(_title("shards", len(snap.shards), len(shown)))
    _column(t, "shard", flex=1, min_width=6)
    _column(t, "spec", flex=1, min_width=4)
    _column(t, "tokens", right=True)
    if wide:
        _column(t, "ctx", right=True)
    _column(t, "pass", right=True)
    if wide:
        _column(t, "state")
    _column(t, "progress")
    _column(t, "collected", right=True)
    for h in shown:
        pass_no = "-" if h.pass_no is None else str(h.pass_no)
        if h.passes:
            pass_no += f"/{h.passes}"
        cells: list[Text | str] = [h.id, h.spec, fmt_count(h.tokens, compact)]
        if wide:
            cells.append(fmt_count(h.version))
        cells.append(pass_no)
        if wide:
            cells.append(h.state or "-")
        cells += [_progress(h, compact or not wide), fmt_count(h.collected, compact)]
        t.add_row(*cells)
    return t


def feed_table(snap: Snapshot, width: int, rows: int = FEED_ROWS) -> Table:
    compact, wide = width < NARROW, width >= WIDE
    shown = snap.feed[: max(0, rows)]
    t = _table(_title("latest findings", len(snap.feed), len(shown)))
    _column(t, "status")
    _column(t, "ago", right=True)
    if not compact:
        _column(t, "spec", max_width=20)
        _column(t, "task")
    _column(t, "worker", flex=2, min_width=6)
    _column(t, "took", right=True)
    _column(t, "content", flex=4, min_width=10)
    for f in shown:
        cells: list[Text | str] = [
            Text(f.status.value, style="green" if f.ok else "bold red"),
            fmt_duration(snap.time - f.finished) if f.finished else "-",
        ]
        if not compact:
            cells += [f.spec, short_id(f.task_id, 40 if wide else 12)]
        cells += [f.worker or "-", fmt_duration(f.duration_ms / 1000), _content(f)]
        t.add_row(*cells)
    return t


def _content(f: Finding) -> Text:
    if f.ok:
        return Text(" ".join(f.content.split())[:200])
    return Text(" ".join((f.error or f.content).split())[:200], style="red")


def _pick(items: Sequence[T], rows: int | None, key: Callable[[T], Any]) -> list[T]:
    """All items, or (when they do not fit) the ``rows`` with the highest ``key``,
    kept in their original order."""
    if rows is None or len(items) <= rows:
        return list(items)
    ranked = sorted(range(len(items)), key=lambda i: key(items[i]), reverse=True)
    keep = sorted(ranked[: max(0, rows)])
    return [items[i] for i in keep]


# -- header and layout -----------------------------------------------------------


def header(snap: Snapshot, status: str, width: int) -> list[Text]:
    """Status, then the swarm's totals flowed over as many lines as needed."""
    ok = status == "connected"
    mark = Text("● connected", style="bold green") if ok else Text("✖ " + status, "bold red")
    busy = sum(1 for w in snap.workers if w.state is WorkerState.BUSY)
    total = _total(snap.specs)
    compact = width < NARROW
    oldest = None if total.oldest_pending_ms is None else total.oldest_pending_ms / 1000
    items = [
        mark,
        key_value("specs", str(len(snap.specs))),
        key_value("workers", f"{len(snap.workers)} ({busy} busy)"),
        key_value("shards", str(len(snap.shards))),
        key_value("backlog", fmt_count(total.backlog, compact)),
        key_value("pending", fmt_count(total.pending, compact)),
        key_value("oldest", fmt_duration(oldest)),
        key_value("dead", fmt_count(total.dead, compact), "bold red" if total.dead else "bold"),
        key_value("delivered", f"{fmt_rate(total.delivered_rate)}/s"),
        key_value("done", f"{fmt_rate(total.completed_rate)}/s"),
        key_value(
            "failed",
            f"{fmt_rate(total.failed_rate)}/s",
            "bold red" if total.failed_rate else "bold",
        ),
        key_value("completed", fmt_count(total.completed, compact)),
    ]
    spent = snap.usage
    if spent.attempts:
        items += [
            key_value("tokens", fmt_count(spent.tokens, compact)),
            key_value("cost", fmt_usd(spent.cost_usd, spent.unpriced)),
        ]
    if paused_specs := [s.name for s in snap.specs if s.paused_by]:
        items.append(key_value("paused by budget ⏸", ", ".join(paused_specs), "bold yellow"))
    if snap.budget is not None:
        usd, tokens = snap.budget.budget.left(snap.budget.spent)
        left = " · ".join(
            [*([fmt_usd(usd)] if usd is not None else []), *([f"{tokens:,} tok"] if tokens else [])]
        )
        paused = snap.budget.paused_by
        items.append(
            key_value("budget", f"spent: {paused}" if paused else f"{left} left", "bold yellow")
        )
    return flow(items, width)


def throughput_line(snap: Snapshot, width: int) -> Text:
    now = snap.history[-1] if snap.history else None
    bins = throughput(snap.samples, snap.time, max(1, width))
    peak = max((v for v in [*bins, now] if v is not None), default=None)
    label = Text("done/s, 1 min ", style="dim")
    tail = Text.assemble(
        (" now ", "dim"), (fmt_rate(now), "bold"), (" peak ", "dim"), (fmt_rate(peak), "bold")
    )
    n = max(10, width - label.cell_len - tail.cell_len)
    spark = Text(sparkline(throughput(snap.samples, snap.time, n), n), style="cyan")
    return Text.assemble(label, spark, tail)


@dataclass
class _Rows:
    specs: int | None = None
    workers: int | None = None
    shards: int | None = None
    feed: int = FEED_ROWS
    show_shards: bool = True
    show_feed: bool = True


def _layout(snap: Snapshot, height: int | None, fixed: int, side: bool) -> _Rows:
    """How many rows each table gets so that the frame fits ``height`` lines."""
    want = {
        "specs": len(snap.specs),
        "workers": len(snap.workers),
        "shards": len(snap.shards),
        "feed": min(FEED_ROWS, len(snap.feed)),
    }
    if height is None:
        return _Rows(show_shards=bool(snap.shards))
    total_row = 1 if len(snap.specs) > 1 else 0
    shown = {"specs": True, "workers": True, "shards": bool(snap.shards), "feed": True}
    alloc = {k: min(v, 3 if k != "shards" else 2) for k, v in want.items()}

    def cost() -> int:
        lines = fixed
        if shown["specs"]:
            lines += 2 + alloc["specs"] + total_row
        lines += 2 + alloc["workers"]
        bottom = [2 + alloc[k] for k in ("shards", "feed") if shown[k]]
        if bottom:
            lines += max(bottom) if side else sum(bottom)
        return lines

    for drop in ("feed", "shards"):  # a very short terminal: keep specs and workers
        if cost() > height:
            shown[drop], alloc[drop] = False, 0
    while cost() > height and any(alloc[k] > 1 for k in ("specs", "workers")):
        key = "workers" if alloc["workers"] >= alloc["specs"] else "specs"
        alloc[key] -= 1
    grew = True
    while grew:
        grew = False
        for k in ("workers", "specs", "feed", "shards"):
            if shown[k] and alloc[k] < want[k]:
                alloc[k] += 1
                if cost() <= height:
                    grew = True
                else:
                    alloc[k] -= 1
    return _Rows(
        specs=alloc["specs"],
        workers=alloc["workers"],
        shards=alloc["shards"],
        feed=alloc["feed"],
        show_shards=shown["shards"],
        show_feed=shown["feed"],
    )


def render(
    snap: Snapshot,
    *,
    status: str = "connected",
    width: int = 80,
    height: int | None = None,
    source: str = "",
) -> RenderableType:
    """The whole dashboard for one snapshot, ``width`` columns wide and, when
    ``height`` is given, at most that many lines tall. ``status`` is shown first
    ("connected", or e.g. "disconnected, retrying"); ``source`` (the namespace and
    Redis URL) goes in the top border."""
    inner = max(20, width - 4)  # the panel's border and padding
    head = header(snap, status, inner)
    side = width >= SIDE_BY_SIDE
    legend = LEGEND_WIDE if inner >= len(LEGEND_WIDE) + 4 else LEGEND
    fixed = 2 + len(head) + 1  # borders, header, sparkline
    rows = _layout(snap, height, fixed, side)
    parts: list[RenderableType] = [*head, throughput_line(snap, inner)]
    parts.append(specs_table(snap, width, rows.specs))
    parts.append(workers_table(snap, width, rows.workers))
    bottom: list[Table] = []
    if rows.show_shards and snap.shards:
        bottom.append(shards_table(snap, width // 2 if side else width, rows.shards))
    if rows.show_feed:
        bottom.append(feed_table(snap, width // 2 if side else width, rows.feed))
    if side and len(bottom) == 2:
        grid = Table.grid(expand=True, padding=(0, 2))
        grid.add_column(ratio=1)
        grid.add_column(ratio=1)
        grid.add_row(*bottom)
        parts.append(grid)
    else:
        parts.extend(bottom)
    title = Text.assemble(("swarmstream", "bold"), (f" {source}" if source else "", "dim"))
    if not source and snap.namespace:
        title.append(f" {snap.namespace}", style="dim")
    return Panel(
        Group(*parts),
        title=title,
        title_align="left",
        subtitle=Text(legend, style="dim"),
        subtitle_align="left",
        border_style="blue" if status == "connected" else "red",
        padding=(0, 1),
    )
