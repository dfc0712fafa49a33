"""Formatting helpers for the monitor: counts, rates, durations, sparklines. Pure."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from rich.text import Text

from swarmstream.monitor.snapshot import WINDOW

_BARS = "▁▂▃▄▅▆▇█"


def fmt_count(n: int | None, compact: bool = False) -> str:
    """1,234,567 (or 1.2M when compact)."""
    if n is None:
        return "-"
    if not compact or abs(n) < 10_000:
        return f"{n:,}"
    if abs(n) < 100_000:
        return f"{n / 1000:.1f}k"
    if abs(n) < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


def fmt_rate(r: float | None, compact: bool = False) -> str:
    if r is None:
        return "-"
    if r >= 10_000 and compact:
        return f"{r / 1000:.0f}k"
    return f"{r:,.0f}" if r >= 1000 else f"{r:.1f}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def short_id(task_id: str, n: int) -> str:
    """The tail of an id (ids start with a clock; the random part is at the end)."""
    return task_id if len(task_id) <= n else "…" + task_id[-(n - 1) :]


def flow(items: Sequence[Text], width: int, sep: str = " · ") -> list[Text]:
    """Pack items into lines of at most ``width`` cells, never splitting one."""
    lines: list[Text] = []
    line = Text()
    for item in items:
        if line.cell_len and line.cell_len + len(sep) + item.cell_len > width:
            lines.append(line)
            line = Text()
        if line.cell_len:
            line.append(sep, style="dim")
        line.append_text(item)
    if line.cell_len:
        lines.append(line)
    for ln in lines:
        ln.truncate(width, overflow="ellipsis")
    return lines


def key_value(key: str, value: str, style: str = "bold") -> Text:
    return Text.assemble((key + " ", "dim"), (value, style))


# -- throughput ----------------------------------------------------------------


def throughput(
    samples: Sequence[tuple[float, int]], end: float, bins: int, window: float = WINDOW
) -> list[float | None]:
    """Completed tasks per second in ``bins`` equal slices of the ``window`` seconds
    before ``end``, from cumulative (time, completed) samples (linear in between).
    None for slices before the first sample."""
    if len(samples) < 2 or bins <= 0:
        return [None] * max(0, bins)
    ts = [t for t, _ in samples]
    cs = [c for _, c in samples]

    def at(t: float) -> float:
        j = min(max(1, bisect.bisect_right(ts, t)), len(ts) - 1)
        t0, t1, c0, c1 = ts[j - 1], ts[j], cs[j - 1], cs[j]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else float(c1)

    step = window / bins
    out: list[float | None] = []
    for j in range(bins):
        a = max(end - window + j * step, ts[0])
        b = min(end - window + (j + 1) * step, ts[-1])
        out.append(max(0.0, (at(b) - at(a)) / (b - a)) if b > a else None)
    return out


def sparkline(values: Sequence[float | None], width: int = 60) -> str:
    """Bars for the last ``width`` values scaled to their maximum: a blank where
    there is no data, the lowest bar for zero, a visible bar for any non-zero."""
    vals = list(values)[-width:]
    top = max((v for v in vals if v is not None), default=0.0)
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        elif v <= 0 or top <= 0:
            out.append(_BARS[0])
        else:
            out.append(_BARS[min(7, 1 + round(v / top * 6))])
    return "".join(out)


# -- sections --------------------------------------------------------------------
