"""The suite report's swarm-scale and distance figures (``swarm.py``, ``distance.py``):
what ``report.py`` takes from their JSON, and their Markdown tables."""

from __future__ import annotations

from typing import Any

STEPS = ("swarm", "distance")


def figures(data: dict[str, Any]) -> dict[str, Any]:
    """The swarm and distance figures, from the steps' JSON (absent steps left out)."""
    out: dict[str, Any] = {}
    if sw := data.get("swarm"):
        out["swarm"] = {
            "config": sw["config"],
            "sizes": [_swarm_size(r) for r in sw["runs"]],
            "goals": sw["verdicts"],
        }
    if di := data.get("distance"):
        out["distance"] = {
            "config": {k: di["config"][k] for k in ("tasks", "repeat", "concurrency")},
            "rtt": {
                rtt: {
                    "tasks_per_s": e["stats"]["median"],
                    "queued_tasks_per_s": (e.get("steady") or {}).get("median"),
                    "round_trip_ms": e["round_trip_ms"]["median"],
                    "round_trip_rtt": (e.get("round_trip_rtt") or {}).get("median"),
                }
                for rtt, e in di["rtt"].items()
            },
            "goal": di.get("goal"),
        }
    return out


def _swarm_size(r: dict[str, Any]) -> dict[str, Any]:
    s, live = r["steady"], r["live_in_flight"]
    idle = (r.get("baseline") or {}).get("redis_cpu_pct", 0.0)
    rec = r["reclaim"]
    return {
        "workers": r["workers"],
        "in_flight": r["in_flight"],
        "commands_per_task_s": s["commands_per_s"] / live,
        "redis_cpu_pct": s["redis_cpu_pct"],
        "redis_net_cpu_per_k": max(0.0, s["redis_cpu_pct"] - idle) / (live / 1000),
        "bytes_per_task_s": (s["bytes_in_per_s"] + s["bytes_out_per_s"]) / live,
        "worker_cpu_per_k": s["worker_cpu_pct"] / (live / 1000),
        "memory_per_worker_b": r["memory"]["per_worker"],
        "memory_per_task_b": r["memory"]["per_task"],
        "collect_ms": r.get("collect_specs", r["collect"])["median_ms"],
        "specs": r.get("collect_specs", {}).get("specs", 1),
        "status_ms": r["status"]["median_ms"],
        "reclaim_s": rec["all_s"],
    }


def markdown(f: dict[str, Any]) -> list[str]:
    md: list[str] = []
    if sw := f.get("swarm"):
        md += [
            "",
            f"| swarm, claim_idle {sw['config']['claim_idle']:g} s: workers x tasks | "
            "cmds/s per task | Redis CPU % (net per 1k tasks) | B/s per task | "
            "worker CPU % per 1k | Redis B per task | collect ms | status ms | reclaim s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in sw["sizes"]:
            rec = "-" if s["reclaim_s"] is None else f"{s['reclaim_s']:.1f}"
            md.append(
                f"| {s['workers']:,} x {s['in_flight'] // s['workers']} | "
                f"{s['commands_per_task_s']:.3f} | {s['redis_cpu_pct']:.1f} "
                f"({s['redis_net_cpu_per_k']:.2f}) | {s['bytes_per_task_s']:.0f} | "
                f"{s['worker_cpu_per_k']:.1f} | {s['memory_per_task_b']:.0f} | "
                f"{s['collect_ms']:.1f} ({s['specs']} specs) | {s['status_ms']:.0f} | {rec} |"
            )
        for g in sw["goals"]:
            state = {True: "met", False: "**not met**", None: "not judged at this size"}
            md.append(f"- {g['goal']}: {g['measured']}, {state[g['met']]}")
    if di := f.get("distance"):
        cfg = di["config"]
        md += [
            "",
            f"| one worker, concurrency {cfg['concurrency']}, {cfg['tasks']:,} no-op tasks: "
            "RTT ms | tasks/s (whole drain) | tasks/s while queued | round trip ms | in RTT |",
            "|---|---:|---:|---:|---:|",
        ]
        for rtt, e in di["rtt"].items():
            queued = e["queued_tasks_per_s"]
            trip = e["round_trip_rtt"]
            md.append(
                f"| {rtt} | {e['tasks_per_s']:,.0f} | "
                f"{'-' if queued is None else format(queued, ',.0f')} | "
                f"{e['round_trip_ms']:.1f} | {'-' if trip is None else format(trip, '.2f')} |"
            )
    return md
