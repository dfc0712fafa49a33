"""The shard commands as a user runs them: context load, shard, ask."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from helpers import spawn, stop, wait_until
from test_cli import cli, one_line_error

from swarmstream import Settings
from swarmstream.keys import Keys


def _docs(tmp_path: Path) -> Path:
    d = tmp_path / "handbook"
    d.mkdir()
    (d / "harbor.md").write_text("intro\nThe harbor gate closes at 18:00 on weekdays.\nend\n")
    (d / "fleet.md").write_text("Trucks need a permit above 40 tonnes.\n")
    return d


@pytest.mark.contract
def test_context_load_and_status(settings: Settings, tmp_path: Path) -> None:
    d = _docs(tmp_path)
    out = cli(settings, "context", "load", "alpha", str(d), "--spec", "research")
    assert out.returncode == 0, out.stderr
    assert "shard alpha: context v1, 2 documents" in out.stdout and "tokens" in out.stdout
    again = cli(settings, "context", "load", "alpha", str(d / "fleet.md"))
    assert "context v2, 1 documents" in again.stdout  # the shard's spec is remembered
    status = json.loads(cli(settings, "status", "--json").stdout)
    [shard] = status["shards"]
    assert shard["id"] == "alpha" and shard["context_version"] == 2 and shard["tokens"] > 0
    one_line_error(cli(settings, "context", "load", "beta", str(d)), 2)
    one_line_error(cli(settings, "context", "load", "alpha", str(tmp_path / "missing")), 2)


@pytest.mark.contract
def test_ask_with_citations_and_a_missed_deadline(settings: Settings, tmp_path: Path) -> None:
    d = _docs(tmp_path)
    assert cli(settings, "context", "load", "alpha", str(d), "--spec", "research").returncode == 0
    alone = cli(settings, "ask", "When does the harbor gate close?", "--deadline", "0.5")
    assert alone.returncode == 1
    assert "Missing: alpha (no answer within 0.5s)" in alone.stdout
    worker = spawn(settings, ["research"], "retrieve")
    try:
        out = cli(
            settings,
            "ask",
            "When does the harbor gate close?",
            "--deadline",
            "20",
            "--shards",
            "alpha",
        )
    finally:
        stop(worker)
    assert out.returncode == 0, out.stderr
    assert "Answered by 1 of 1 shards: alpha" in out.stdout
    assert "[handbook/harbor.md:" in out.stdout and "18:00" in out.stdout


@pytest.mark.contract
def test_shard_process_collects_its_findings(
    settings: Settings, tmp_path: Path, raw: redis.Redis
) -> None:
    d = _docs(tmp_path)
    argv = [
        sys.executable,
        "-m",
        "swarmstream",
        "--redis-url",
        settings.redis.url,
        "--namespace",
        settings.redis.namespace,
        "shard",
        "research",
        "--id",
        "beta",
        "--context",
        str(d),
        "--heartbeat",
        "0.2",
    ]
    shard = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    meta = Keys(settings.redis.namespace).shard("beta").meta
    try:
        wait_until(lambda: raw.hget(meta, "version") == b"1", what="the shard loaded")
        worker = spawn(settings, ["research"], "echo")
        try:
            sub = cli(
                settings,
                "submit",
                "research",
                "hello shard",
                "--shard",
                "beta",
                "--wait",
                "20",
                "--json",
            )
            assert sub.returncode == 0, sub.stderr
            wait_until(lambda: raw.hget(meta, "collected") == b"1", what="collection")
        finally:
            stop(worker)
    finally:
        shard.send_signal(signal.SIGTERM)
        out, err = shard.communicate(timeout=20)
    assert shard.returncode == 0, err
    assert "shard beta (research) is up" in out and "collected 1 finding" in out
