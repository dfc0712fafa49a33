"""Turn the suite's JSON files into suite.json, results.md and suite.png.

Every ratio is taken from one script's own run (both sides measured side by side,
interleaved, on the same server), never across scripts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import report_swarm

#: (key, what, target text, test on the value)
TARGETS: list[tuple[str, str, str, Any]] = [
    (
        "throughput_vs_raw",
        "end-to-end throughput, 1 worker process / raw-streams loop",
        ">= 0.8x",
        lambda v: v >= 0.8,
    ),
    (
        "throughput_vs_fastest_peer",
        "throughput / fastest peer's (same workload, 1 worker process each)",
        ">= 15x",
        lambda v: v >= 15,
    ),
    ("p50_vs_raw", "round-trip p50 / raw streams p50", "<= 1.3x", lambda v: v <= 1.3),
    ("p50_vs_best_peer", "round-trip p50 / best peer's p50", "<= 0.33x", lambda v: v <= 1 / 3),
    ("borrow_vs_get", "cold context borrow, 3.2 MB / raw GET", "<= 1.3x", lambda v: v <= 1.3),
    (
        "bus_10ms_over_p50",
        "JSON-lines bus (10 ms poll) p50 / swarmstream p50",
        ">= 20x",
        lambda v: v >= 20,
    ),
]


def _load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _more_figures(data: dict[str, Any]) -> dict[str, Any]:
    """The figures of the cluster, accounting, answers, CLI, swarm and distance steps."""
    figures: dict[str, Any] = {}
    if cl := data["cluster"]:
        figures["cluster"] = {
            "throughput": cl["throughput"]["results"],
            "ratios": cl["throughput"]["ratios"],
            "spread": cl["spread"]["by_primary_port"],
            "failover": (cl.get("failover") or {}).get("cells", {}),
            "failover_gap_s": (cl.get("failover") or {}).get("gap_s", {}),
            "config": cl["config"],
        }
    if acct := data["accounting"]:
        figures["accounting"] = {
            "ratio": acct["ratio"],
            "ratio_per_repeat": acct["ratio_per_repeat"],
            "tasks_per_s": {k: v["tasks_per_s"] for k, v in acct["results"].items()},
        }
    if ans := data.get("answers"):
        figures["answers"] = _answers_figures(ans)
    if cli := data.get("cli_startup"):
        figures["cli"] = _cli_figures(cli)
    return figures | report_swarm.figures(data)


def _cli_figures(cli: dict[str, Any]) -> dict[str, Any]:
    """CLI start-up per command (medians, ms) and the bulk submit rate
    (benchmarks/cli_startup.py)."""
    commands, bulk = cli["commands"], cli["bulk"] or {}
    return {
        "to_first_redis_ms": {
            k: v["to_first_ms"]["median"] for k, v in commands.items() if v["to_first_ms"]
        },
        "total_ms": {k: v["total_ms"]["median"] for k, v in commands.items()},
        "bulk_tasks": bulk.get("tasks"),
        "bulk_tasks_per_s": bulk.get("tasks_per_s", {}).get("median"),
        "singles_tasks_per_s": cli["singles"]["tasks_per_s"],
        "imports": cli["machine"].get("cli_imports", {}),
    }


def _answers_figures(ans: dict[str, Any]) -> dict[str, Any]:
    """Recall, abstentions and latency of ``ask`` (benchmarks/answers_eval.py)."""
    cfg, res, lat = ans["config"], ans["results"], ans["latency_ms"]
    return {
        "config": {
            k: cfg[k] for k in ("tokens", "shards", "facts", "questions", "threshold", "k", "seed")
        },
        "recall_exact_line": res["answerable"]["recall_exact_line"],
        "false_not_found": res["answerable"]["abstained"],
        "not_found": {k: v["abstained"] for k, v in res.items() if k != "answerable"},
        "questions": {k: v["n"] for k, v in res.items()},
        "latency_ms": {"p50": lat["median"], "p90": lat["p90"], "max": lat["max"]},
        "first_question_s": ans["timings_s"]["first_question"],
        "goals": ans["goals"],
    }


def build(out: Path) -> dict[str, Any]:
    """Collect the key figures and the targets' ratios from the step JSONs in ``out``."""
    data = {n: _load(out, n) for n in ("latency", "throughput", "context_borrow")}
    more = ("workflow", "peers", "scale", "malformed", "cluster", "accounting", "answers", "run")
    data |= {n: _load(out, n) for n in (*more, "cli_startup", *report_swarm.STEPS)}
    machine: dict[str, Any] = next(
        (d["machine"] for d in data.values() if d and "machine" in d), {}
    )
    ratios: dict[str, float] = {}
    figures: dict[str, Any] = {}
    if lat := data["latency"]:
        figures["latency"] = {
            k: {f: v[f] for f in ("label", "n", "p50_ms", "p99_ms")}
            for k, v in lat["results"].items()
        }
        ratios["p50_vs_raw"] = lat["ratios"]["swarmstream_over_raw_streams"]
        ratios["bus_10ms_over_p50"] = lat["ratios"].get("jsonl_10ms_over_swarmstream", 0.0)
    if thr := data["throughput"]:
        figures["throughput"] = {
            k: {"label": v["label"], **v["stats"]} for k, v in thr["consume"].items()
        }
        figures["enqueue"] = thr["enqueue"]
        figures["throughput_best_concurrency"] = thr["best_concurrency"]
        ratios["throughput_vs_raw"] = thr["ratio"]
    if cb := data["context_borrow"]:
        figures["context_borrow_ms"] = {k: cb["results"][k]["ms"] for k in ("raw", "cold", "warm")}
        figures["context_borrow_mb"] = cb["config"].get("mb")
        ratios["borrow_vs_get"] = cb["ratios"]["cold"]
    if peers := data["peers"]:
        figures["peers"] = peers["summary"]
        figures["peers_config"] = peers["config"]
        pr = peers["ratios"]
        if "swarmstream_over_fastest_peer" in pr:
            ratios["throughput_vs_fastest_peer"] = pr["swarmstream_over_fastest_peer"]
        if "swarmstream_p50_over_best_peer" in pr:
            ratios["p50_vs_best_peer"] = pr["swarmstream_p50_over_best_peer"]
        figures["peer_ratios"] = pr
    if wf := data["workflow"]:
        figures["workflow"] = wf["summaries"]
    if sc := data["scale"]:
        figures["scale"] = sc["summaries"]
        figures["scale_linearity"] = sc.get("linearity")
    if mf := data["malformed"]:
        figures["malformed_us_per_entry"] = mf["us_per_entry"]
    figures |= _more_figures(data)
    targets = []
    for key, what, target, test in TARGETS:
        value = ratios.get(key)
        targets.append(
            {
                "key": key,
                "what": what,
                "target": target,
                "value": value,
                "met": None if value is None else bool(test(value)),
            }
        )
    run = data["run"] or {}
    return {
        "date": run.get("date") or next((d["date"] for d in data.values() if d), None),
        "quick": run.get("quick"),
        "steps": run.get("steps", {}),
        "wall_s": run.get("wall_s"),
        "machine": machine,
        "targets": targets,
        "figures": figures,
    }


# -- text ---------------------------------------------------------------------------


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def verdicts(summary: dict[str, Any]) -> str:
    lines = ["targets (ratios from the same run):"]
    for t in summary["targets"]:
        state = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        lines.append(f"  {t['what']}: {_x(t['value'])} (target {t['target']}): {state}")
    return "\n".join(lines)


def machine_line(summary: dict[str, Any]) -> str:
    m = summary["machine"]
    return (
        f"{summary.get('date', '?')}: {m.get('cpu_count', '?')} CPUs ({m.get('cpu_model', '?')}), "
        f"{m.get('platform', '?')}, Python {m.get('python', '?')}, redis-server "
        f"{m.get('redis_server', '?')}, redis-py {m.get('redis_py', '?')} "
        f"(hiredis {m.get('hiredis', '-')}), swarmstream {m.get('swarmstream', '?')} "
        f"({(m.get('git') or {}).get('commit', '?')[:7]})"
    )


def _rate(v: float) -> str:
    return f"{v:,.0f}"


def markdown(summary: dict[str, Any]) -> str:
    f = summary["figures"]
    md = [f"Measured {machine_line(summary)}.", ""]
    if summary.get("quick"):
        md += ["**Quick (smoke) sizes: the figures are not meaningful.**", ""]
    md += ["| target | measured | target | |", "|---|---:|---:|---|"]
    for t in summary["targets"]:
        state = {True: "met", False: "**not met**", None: "not measured"}[t["met"]]
        md.append(f"| {t['what']} | {_x(t['value'])} | {t['target']} | {state} |")
    if "throughput" in f:
        md += [
            "",
            "| consumer (no-op tasks, backlog released at once) | tasks/s median | min-max |",
        ]
        md.append("|---|---:|---:|")
        for v in f["throughput"].values():
            md.append(
                f"| {v['label']} | {_rate(v['median'])} | {_rate(v['min'])}-{_rate(v['max'])} |"
            )
    if "latency" in f:
        md += ["", "| round trip, one request in flight | p50 ms | p99 ms |", "|---|---:|---:|"]
        for v in f["latency"].values():
            md.append(f"| {v['label']} | {v['p50_ms']:.3g} | {v['p99_ms']:.3g} |")
    md += _markdown_more(f)
    md.append("")
    return "\n".join(md)


def _markdown_more(f: dict[str, Any]) -> list[str]:
    """The peers, workflow and scale tables."""
    md: list[str] = []
    if "peers" in f:
        md += ["", "| same workload, 1 worker process | tasks/s median | p50 ms | p99 ms |"]
        md.append("|---|---:|---:|---:|")
        for v in sorted(f["peers"].values(), key=lambda e: -_peer_rate(e)):
            lat = v.get("latency") or {}
            md.append(
                f"| {v.get('label', '?')} | {_rate(_peer_rate(v))} | "
                f"{_num(lat.get('p50_ms'))} | {_num(lat.get('p99_ms'))} |"
            )
    if "workflow" in f:
        shape = f"{f['workflow'][0]['passes']} passes x {f['workflow'][0]['tasks_per_pass']} tasks"
        md += ["", f"| {shape} | work | ideal s | wall s | overhead ms/pass |"]
        md.append("|---|---:|---:|---:|---:|")
        for s in f["workflow"]:
            md.append(
                f"| {s['layout']} | {s['work_ms']} ms | {s['ideal_s']:.2f} | "
                f"{s['wall_s']['median']:.2f} | {s['overhead_per_pass_ms']['median']:.1f} |"
            )
    if "scale" in f:
        md += ["", "| scale: handler | tasks | workers | tasks/s | µs/task | Redis MiB after |"]
        md.append("|---|---:|---:|---:|---:|---:|")
        for s in f["scale"]:
            md.append(
                f"| {s['kind']}{'' if not s.get('sleep_ms') else ' ' + str(s['sleep_ms']) + ' ms'}"
                f" | {s['tasks']:,} | {s['workers']} | {_rate(s['tasks_per_s']['median'])} | "
                f"{s['us_per_task']['median']:.1f} | "
                f"{s['mem_after_delta']['median'] / 2**20:.1f} |"
            )
    if "malformed_us_per_entry" in f:
        md += ["", "| one worker process, per entry | µs median | min-max |", "|---|---:|---:|"]
        for kind, s in f["malformed_us_per_entry"].items():
            what = "dead-lettered (malformed)" if kind == "malformed" else "completed (valid)"
            md.append(f"| {what} | {s['median']:.0f} | {s['min']:.0f}-{s['max']:.0f} |")
    if "cluster" in f:
        md += _markdown_cluster(f["cluster"])
    if "answers" in f:
        md += _markdown_answers(f["answers"])
    return md + report_swarm.markdown(f)


def _markdown_answers(a: dict[str, Any]) -> list[str]:
    """ask on a generated corpus: recall of path:line, 'not found' where it should be."""
    cfg, n = a["config"], a["questions"]
    md = [
        "",
        f"| ask, built-in retrieve, no LLM: {cfg['tokens']:,} tokens on {cfg['shards']} shards, "
        f"threshold {cfg['threshold']:g} | questions | measured | goal |",
        "|---|---:|---:|---:|",
        f"| recall of the exact path:line (answerable, paraphrased) | {n['answerable']} | "
        f"{a['recall_exact_line']:.1%} | >= 95% |",
        f"| answered 'not found' although answerable | {n['answerable']} | "
        f"{a['false_not_found']:.1%} | |",
    ]
    what = {
        "unanswerable": ("'not found': things nowhere in the corpus", ">= 90%"),
        "near_miss": ("'not found': near miss, a name the corpus lacks", ">= 90%"),
        "near_miss_known": ("'not found': near miss, a name the corpus has elsewhere", ""),
        "unstated": ("'not found': an unstated attribute of a known entity", ""),
    }
    for kind, (label, goal) in what.items():
        if kind in a["not_found"]:
            md.append(f"| {label} | {n[kind]} | {a['not_found'][kind]:.1%} | {goal} |")
    lat = a["latency_ms"]
    md.append(
        f"| latency per question, p50 / p90 / max | {sum(n.values())} | {lat['p50']:.0f} / "
        f"{lat['p90']:.0f} / {lat['max']:.0f} ms | |"
    )
    return md


def _markdown_cluster(c: dict[str, Any]) -> list[str]:
    """Cluster vs standalone throughput; failover gap and losses (benchmarks/cluster.py)."""
    cfg = c["config"]
    md = [
        "",
        f"| {cfg['tasks']:,} echo tasks over 6 specs, end to end | worker processes | "
        "tasks/s median | min-max |",
        "|---|---:|---:|---:|",
    ]
    for v in c["throughput"].values():
        s = v["stats"]
        md.append(
            f"| {v['topology']} | {v['workers']} | {_rate(s['median'])} | "
            f"{_rate(s['min'])}-{_rate(s['max'])} |"
        )
    ratios = ", ".join(
        f"{k.rsplit('_', 1)[-1].replace('w', ' worker(s)')}: {v:.2f}x"
        for k, v in c["ratios"].items()
    )
    md += ["", f"Cluster (3 primaries) / standalone, medians of the same run: {ratios}."]
    if c["failover"]:
        risk = f"{cfg.get('risk_ms', 100):g} ms"
        md += [
            "",
            "| kill -9 of the spec's primary while submitting | durable_replicas | "
            "gap s, median (min-max) | lost per round | duplicates per round | "
            f"acked in the {risk} before the kill | in flight at the kill |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for cell in c["failover"].values():
            g = cell["gap_s"]
            gap = "-" if g is None else f"{g['median']:.2f} ({g['min']:.2f}-{g['max']:.2f})"
            per_round = [", ".join(map(str, cell[k])) for k in ("lost", "duplicates")]
            per_round += [", ".join(map(str, cell[k])) for k in ("at_risk", "in_flight")]
            md.append(
                f"| {cell['topology']} | {cell['durable_replicas']} | {gap} | "
                + " | ".join(per_round)
                + " |"
            )
    return md


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _peer_rate(entry: dict[str, Any]) -> float:
    thr = entry.get("throughput") or {}
    return float(thr.get("median") or 0.0)


# -- plot ---------------------------------------------------------------------------


def plot(summary: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit(
            "the plot needs matplotlib: pip install -e '.[bench]' (" + str(exc) + ")"
        ) from None
    f = summary["figures"]
    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    _bars(
        axes[0][0],
        _throughput_bars(f),
        "no-op tasks/s, 1 worker process (log)",
        "Throughput",
    )
    _bars(axes[0][1], _latency_bars(f), "round trip p50, ms (log)", "Latency")
    _scale(axes[1][0], f.get("scale") or [])
    _workflow(axes[1][1], f.get("workflow") or [])
    fig.suptitle("swarmstream benchmark suite: " + machine_line(summary), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _throughput_bars(f: dict[str, Any]) -> list[tuple[str, float, str]]:
    bars = []
    for v in (f.get("throughput") or {}).values():
        color = "tab:gray" if v["label"].startswith("raw") else "tab:blue"
        bars.append((v["label"] + " (backlog)", v["median"], color))
    for key, v in (f.get("peers") or {}).items():
        rate = _peer_rate(v)
        if rate:
            color = "tab:blue" if key == "swarmstream" else "tab:orange"
            color = "tab:gray" if key == "raw" else color
            bars.append((v.get("label", key) + " (peer method)", rate, color))
    return bars


def _latency_bars(f: dict[str, Any]) -> list[tuple[str, float, str]]:
    bars = []
    for key, v in (f.get("latency") or {}).items():
        color = "tab:blue" if key == "swarmstream" else "tab:gray"
        color = "tab:red" if key.startswith("jsonl") else color
        bars.append((v["label"], v["p50_ms"], color))
    for key, v in (f.get("peers") or {}).items():
        lat = v.get("latency") or {}
        if key not in ("swarmstream", "raw") and lat.get("p50_ms"):
            bars.append((v.get("label", key), lat["p50_ms"], "tab:orange"))
    return bars


def _bars(ax: Any, bars: list[tuple[str, float, str]], xlabel: str, title: str) -> None:
    if not bars:
        ax.set_title(title + " (not measured)")
        return
    labels, values, colors = zip(*bars, strict=True)
    labels = tuple(lb if len(lb) <= 48 else lb[:47] + "…" for lb in labels)
    ys = range(len(bars))
    ax.barh(list(ys), values, color=colors)
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    for y, v in zip(ys, values, strict=True):
        ax.text(v, y, f" {v:,.3g}", va="center", fontsize=7)


def _scale(ax: Any, cells: list[dict[str, Any]]) -> None:
    echo = [c for c in cells if c["kind"] == "echo"]
    if not echo:
        ax.set_title("Scale curve (not measured)")
        return
    for w in sorted({c["workers"] for c in echo}):
        row = sorted((c for c in echo if c["workers"] == w), key=lambda c: c["tasks"])
        ax.plot(
            [c["tasks"] for c in row],
            [c["tasks_per_s"]["median"] for c in row],
            marker="o",
            label=f"{w} workers: tasks/s",
        )
    ax.set_xscale("log")
    ax.set_xlabel("tasks")
    ax.set_ylabel("tasks/s (no-op)")
    ax.set_title("Scale curve: throughput and Redis memory after the run")
    mem = ax.twinx()
    for w in sorted({c["workers"] for c in echo})[:1]:
        row = sorted((c for c in echo if c["workers"] == w), key=lambda c: c["tasks"])
        mem.plot(
            [c["tasks"] for c in row],
            [c["mem_after_delta"]["median"] / 2**20 for c in row],
            "k--",
            marker="s",
            label=f"Redis MiB after ({w} workers)",
        )
    mem.set_ylabel("Redis used_memory growth, MiB")
    lines = ax.get_legend_handles_labels()
    more = mem.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower right")


def _workflow(ax: Any, summaries: list[dict[str, Any]]) -> None:
    if not summaries:
        ax.set_title("Workflow (not measured)")
        return
    labels = [f"{s['layout']}\n{s['work_ms']} ms work" for s in summaries]
    ideal = [s["ideal_s"] for s in summaries]
    over = [s["overhead_s"]["median"] for s in summaries]
    xs = range(len(summaries))
    ax.bar(list(xs), ideal, label="ideal (work only)", color="tab:gray")
    ax.bar(list(xs), over, bottom=ideal, label="coordination overhead", color="tab:blue")
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("seconds")
    first = summaries[0]
    shape = f"{first['passes']} passes x {first['tasks_per_pass']} tasks"
    ax.set_title(f"Workflow, {shape}: wall = ideal + overhead")
    ax.legend(fontsize=7)


def write(summary: dict[str, Any], out: Path) -> None:
    (out / "suite.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (out / "results.md").write_text(markdown(summary))
    plot(summary, out / "suite.png")
