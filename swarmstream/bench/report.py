"""The report of ``swarmstream bench``: figures, configuration, rendering."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

RAW_COUNT, RAW_BLOCK_MS = 100, 1000
BATCH = 1000  # tasks per submit_many call / pipeline
BORROW_REPEATS = 40
TARGETS = {"consume": 0.8, "latency_p50": 1.3, "borrow": 1.3}  # issue 6, swarmstream/raw


@dataclass(frozen=True)
class Figure:
    """One comparison of swarmstream with raw redis-py, both measured in this run."""

    key: str
    label: str
    unit: str  # "tasks/s" (higher is better) or "ms" (lower is better)
    swarmstream: float
    raw: float
    samples: tuple[float, ...] = ()  # swarmstream's repeats (or latencies), in ``unit``
    raw_samples: tuple[float, ...] = ()

    @property
    def ratio(self) -> float:
        return self.swarmstream / self.raw

    @property
    def higher_is_better(self) -> bool:
        return self.unit == "tasks/s"

    @property
    def met(self) -> bool | None:
        """Whether the issue-6 target is met; None without a target."""
        t = TARGETS.get(self.key)
        if t is None:
            return None
        return self.ratio >= t if self.higher_is_better else self.ratio <= t

    @property
    def target(self) -> str | None:
        t = TARGETS.get(self.key)
        return None if t is None else f"{'>=' if self.higher_is_better else '<='} {t:g}x"


@dataclass(frozen=True)
class BenchConfig:
    """What a run measures, and where."""

    tasks: int = 10_000
    requests: int = 300
    repeats: int = 2
    concurrency: int = 128
    borrow_bytes: int = 3_200_000
    redis: str = "embedded"  # or "external"
    url: str = ""  # password redacted
    namespace: str = field(default_factory=lambda: f"bench-{secrets.token_hex(6)}")
    enqueue_batch: int = BATCH
    raw_count: int = RAW_COUNT
    borrow_repeats: int = BORROW_REPEATS


@dataclass(frozen=True)
class BenchReport:
    """What ``run_bench`` measured, with the machine and the configuration."""

    date: str
    seconds: float
    machine: dict[str, Any]
    config: BenchConfig
    figures: tuple[Figure, ...]

    def figure(self, key: str) -> Figure:
        return next(f for f in self.figures if f.key == key)

    def to_json(self) -> dict[str, Any]:
        figures = {
            f.key: asdict(f) | {"ratio": f.ratio, "target": f.target, "met": f.met}
            for f in self.figures
        }
        head = {"date": self.date, "seconds": round(self.seconds, 2), "machine": self.machine}
        return head | {"config": asdict(self.config), "figures": figures}


# -- rendering ---------------------------------------------------------------------


def _value(x: float, unit: str) -> str:
    return f"{x:,.0f}" if unit == "tasks/s" else f"{x:.3g}"


def render(report: BenchReport) -> RenderableType:
    """The report as a Rich table (80 columns), a verdict per issue-6 target, a footer."""
    m, cfg = report.machine, report.config
    load = "" if m["load_avg_1m"] is None else f", load {m['load_avg_1m']:.2f}"
    head = (
        f"swarmstream bench: redis {m['redis_server']} ({cfg.redis}), {m['cpu_count']} CPUs"
        f"{load}, python {m['python']}, redis-py {m['redis_py']}, hiredis {m['hiredis'] or 'no'}"
    )
    table = Table(header_style="bold")
    for col in ("measurement", "swarmstream", "raw redis-py", "ratio", "target"):
        table.add_column(col, justify="left" if col == "measurement" else "right")
    lines: list[RenderableType] = [Text(head, style="bold"), table]
    for f in report.figures:
        style = {True: "green", False: "red", None: "dim"}[f.met]
        ratio, target = Text(f"{f.ratio:.2f}x", style="bold"), Text(f.target or "-", style=style)
        label = f"{f.label} ({f.unit})"
        table.add_row(label, _value(f.swarmstream, f.unit), _value(f.raw, f.unit), ratio, target)
        if f.target:
            verdict = f"{'meets' if f.met else 'misses'} the {f.target} target"
            lines.append(Text(f"{f.label}: {f.ratio:.2f}x raw, ").append(verdict, style))
    foot = (
        f"ratio = swarmstream/raw, medians of {cfg.repeats} interleaved repeats of {cfg.tasks:,} "
        f"tasks and of {cfg.requests} round trips a side. The targets are informational, and "
        f"the figures move with machine load. {report.seconds:.1f} s in all."
    )
    return Group(*lines, Text(foot, style="dim"))
