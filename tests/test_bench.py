"""`swarmstream bench` (swarmstream.bench): it measures every section, cleans up
its keys and processes, and reports errors in one line. Never asserts timings."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import redis
from rich.console import Console
from typer.testing import CliRunner

from swarmstream.bench import BenchReport, render, run_bench
from swarmstream.cli.app import app
from swarmstream.embedded import free_port

SECTIONS = ("enqueue", "consume", "latency_p50", "latency_p99", "borrow")
runner = CliRunner()


def check_figures(figures: dict[str, dict[str, float]]) -> None:
    assert set(figures) == set(SECTIONS)
    for key, f in figures.items():
        assert f["swarmstream"] > 0 and f["raw"] > 0 and f["ratio"] > 0, key


def test_run_bench_on_a_given_server_measures_everything_and_leaves_no_keys(
    redis_url: str, raw: redis.Redis
) -> None:
    report = run_bench(redis_url, tasks=200, requests=10, repeats=2, borrow_mb=0.2)
    assert isinstance(report, BenchReport)
    ns = report.config.namespace
    assert ns.startswith("bench-") and report.config.redis == "external"
    check_figures(report.to_json()["figures"])
    assert len(report.figure("consume").samples) == len(report.figure("consume").raw_samples) == 2
    assert len(report.figure("latency_p50").samples) == 10
    for f in report.figures:
        assert (
            isinstance(f.met, bool)
            if f.key in ("consume", "latency_p50", "borrow")
            else (f.met is None)
        )
    assert list(raw.scan_iter(match=f"{ns}:*", count=1000)) == []
    assert not [c for c in raw.client_list() if ns in c.get("name", "")], "processes stopped"
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(render(report))
    text = console.export_text()
    assert "swarmstream bench: redis" in text and ("misses" in text or "meets" in text)


def test_cli_bench_on_its_own_embedded_server_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    env = {"SWARMSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # must be ignored
    args = ["bench", "--tasks", "200", "--requests", "10", "--json", str(out)]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "swarmstream/raw" in result.stdout and f"wrote {out}" in result.stdout
    data = json.loads(out.read_text())
    assert data["config"]["redis"] == "embedded" and data["config"]["tasks"] == 200
    assert data["config"]["requests"] == 10 and data["date"] and data["seconds"] > 0
    machine = data["machine"]
    for key in ("cpu_count", "python", "redis_server", "redis_py", "hiredis"):
        assert key in machine
    assert machine["cpu_count"] >= 1 and machine["redis_server"].count(".") == 2
    check_figures(data["figures"])
    assert data["figures"]["consume"]["target"] == ">= 0.8x"
    assert isinstance(data["figures"]["consume"]["met"], bool)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["bench", "--tasks", "1"], 2, "--tasks must be at least 10"),
        (["bench", "--requests", "1"], 2, "--requests must be at least 2"),
        (["bench", "--redis-url", "http://x"], 2, "invalid Redis URL"),
        (["bench", "--json", "/no/such/folder/out.json"], 2, "a file in an existing folder"),
        (["bench", "--json", "/"], 2, "a file in an existing folder"),
        (["bench", "--redis-url", "UNREACHABLE"], 3, "cannot reach Redis"),
        (["--redis-url", "UNREACHABLE", "bench"], 3, "cannot reach Redis"),
    ],
)
def test_bad_input_and_unreachable_redis_are_one_line_errors(
    args: list[str], code: int, needle: str
) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    args = [unreachable if a == "UNREACHABLE" else a for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ") and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
