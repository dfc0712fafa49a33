"""What a new user does: a stand-in for ``claude -p --output-format json`` and one for
Gemini CLI behind ``swarmstream worker --exec``, then ``status``, ``findings --task``
and ``dead list`` show what the swarm spent (real processes, real Redis)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from swarmstream import Settings

DATA = Path(__file__).resolve().parent / "data" / "usage"
SPEC = "research"

# Prints a sample file as the agent would after reading the task; exits with the
# code given, or fails (stderr, exit 1) while SWARMSTREAM_ATTEMPT is below FAIL_UNTIL.
AGENT = """
import os, sys
sys.stdin.read()
if int(os.environ["SWARMSTREAM_ATTEMPT"]) < int(os.environ.get("FAIL_UNTIL", "0")):
    print(open(sys.argv[1], encoding="utf-8").read())
    print("rate limited, try again", file=sys.stderr)
    sys.exit(1)
print(open(sys.argv[1], encoding="utf-8").read())
"""


def cli(settings: Settings, *args: str, env: dict[str, str] | None = None) -> str:
    full = {
        **os.environ,
        "SWARMSTREAM_REDIS_URL": settings.redis.url,
        "SWARMSTREAM_NAMESPACE": settings.redis.namespace,
        **(env or {}),
    }
    done = subprocess.run(
        [sys.executable, "-m", "swarmstream", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cost_of_cli_agents_in_status_findings_and_history(
    settings: Settings, tmp_path: Path
) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    config = tmp_path / "swarm.toml"
    config.write_text('[prices."gemini-2.5-pro"]\ninput = 1.25\noutput = 10.0\ncache_read = 0.31\n')
    claude = json.loads(cli(settings, "submit", SPEC, "where do shipments stall?", "--json"))
    # the Claude stand-in fails its first attempt (printing what it spent), then answers
    claude_cmd = f"{sys.executable} {agent} {DATA / 'claude.json'}"
    cli(
        settings,
        "worker",
        SPEC,
        "--exec",
        claude_cmd,
        "--idle-exit",
        "2",
        "--retry-base",
        "0.05",
        env={"FAIL_UNTIL": "2"},
    )
    gemini = json.loads(cli(settings, "submit", SPEC, "and why?", "--json"))
    gemini_cmd = f"{sys.executable} {agent} {DATA / 'gemini.json'}"
    cli(settings, "--config", str(config), "worker", SPEC, "--exec", gemini_cmd, "--once")

    [first] = [
        json.loads(x)
        for x in cli(settings, "findings", SPEC, "--task", claude["task_id"], "--json").splitlines()
    ]
    assert first["status"] == "ok" and first["retried"] is True
    assert first["content"].strip() and first["usage"]["cost_usd"] == 0.12997675
    assert first["usage"]["session_id"] == "9f1c2d8e-4b7a-4e43-9a51-2f0c7d6b1e90"
    assert first["usage"]["turns"] == 7
    assert first["usage"]["model"] == "claude-sonnet-4-5-20250929"
    failed, ok = first["history"]
    assert failed["outcome"] == "retried" and "rate limited" in failed["error"]
    assert failed["usage"]["cost_usd"] == 0.12997675  # a failed attempt keeps its spend
    assert ok["outcome"] == "ok"
    for key in ("created", "started", "finished"):
        assert first[key] > 0

    [second] = [
        json.loads(x)
        for x in cli(settings, "findings", SPEC, "--task", gemini["task_id"], "--json").splitlines()
    ]
    assert second["usage"]["cost_source"] == "computed"
    expected = (4886 * 1.25 + 1154 * 10.0 + 21263 * 0.31) / 1e6
    assert abs(second["usage"]["cost_usd"] - expected) < 1e-9

    status = json.loads(cli(settings, "status", "--json"))
    [row] = status["specs"]
    assert abs(row["usage"]["cost_usd"] - (2 * 0.12997675 + expected)) < 1e-9
    assert abs(row["usage"]["cost_computed_usd"] - expected) < 1e-9
    assert row["usage"]["attempts"] == 3
    assert set(status["usage_by"]["models"]) == {"claude-sonnet-4-5-20250929", "gemini-2.5-pro"}
    assert len(status["usage_by"]["workers"]) == 2
    assert row["delivered"] in (None, 3)  # one redelivery: the retry
    table = cli(settings, "status")
    assert "cost" in table and "gemini-2.5-pro" in table and "spending" in table
    history = cli(settings, "findings", SPEC, "--task", claude["task_id"])
    assert "after 2 attempts" in history and "rate limited" in history
