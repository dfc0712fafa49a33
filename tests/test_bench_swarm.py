"""benchmarks/swarm.py: the pure parts (layout, rates, verdicts, table, plot), no Redis.
The measurement itself runs in the suite (`benchmarks/swarm.py --quick`)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's benchmarks/
from benchmarks import swarm


def fake_sample(t: float, calls: int, cpu: float) -> dict[str, Any]:
    return {
        "t": t,
        "cmds": {"evalsha": {"calls": calls, "usec": 10 * calls}, "info": {"calls": 9, "usec": 9}},
        "cpu": cpu,
        "net_in": 100 * calls,
        "net_out": 50 * calls,
        "used_memory": 0,
        "dataset": 0,
        "clients_mem": 0,
        "clients": 3,
    }


def fake_run(n: int, c: int, reclaimed: float | None) -> dict[str, Any]:
    steady = swarm.window(fake_sample(0, 0, 0.0), fake_sample(10, 10 * n, 0.001 * n))
    steady |= {"worker_cpu_pct": 0.1 * n, "worker_processes": 2}
    return {
        "workers": n,
        "per_worker": c,
        "in_flight": n * c,
        "live_in_flight": (n - 1) * c,
        "steady": steady,
        "memory": {"used": 1000 * n, "per_worker": 1000, "per_task": 100, "connected_clients": n},
        "collect": {"median_ms": 5.0, "ms": [5.0]},
        "status": {"median_ms": 300.0},
        "reclaim": {
            "first_s": reclaimed,
            "all_s": reclaimed,
            "left": 0 if reclaimed else c,
            "held": c,
            "pending_after": n * c,
            "idle_at_kill_s": 1.0,
            "limit_s": 75.0,
        },
    }


def test_layout_puts_the_victim_alone() -> None:
    assert swarm.layout(10, 2) == [1, 5, 4]
    assert swarm.layout(2, 4) == [1, 1]
    assert sum(swarm.layout(1000, 2)) == 1000


def test_window_rates_leave_info_out() -> None:
    w = swarm.window(fake_sample(0, 0, 0.0), fake_sample(2, 100, 0.5))
    assert w["commands_per_s"] == 50 and list(w["by_command"]) == ["evalsha"]
    assert w["redis_cpu_pct"] == 25.0 and w["bytes_in_per_s"] == 5000


def test_report_verdicts_table_and_plot(tmp_path: Path) -> None:
    report = {
        "config": {
            "claim_idle": 60.0,
            "heartbeat_interval": 2.0,
            "reclaim_interval": 1.0,
            "window": 60.0,
            "spare": 1,
        },
        "runs": [fake_run(10, 10, 50.0), fake_run(1000, 10, None)],
    }
    report["runs"][-1]["collect_specs"] = {
        "median_ms": 50.0,
        "ms": [50.0],
        "specs": 100,
        "workers_seen": 1000,
        "specs_seen": 100,
    }
    report["verdicts"] = verdicts = swarm.verdicts(report)
    assert [v["met"] for v in verdicts] == [True, True, True, False]
    out = io.StringIO()
    swarm.console = Console(file=out, width=250)
    swarm.show(report)
    text = out.getvalue()
    assert "NOT MET" in text and "10 left" in text
    swarm.plot(report, tmp_path / "swarm.png")
    assert (tmp_path / "swarm.png").stat().st_size > 0
