"""``swarmstream ask`` end to end, as a new user runs it: shards loaded with ``context
load``, worker processes (``retrieve``, and stand-in ``--exec`` agents from
tests/agents/), then ``ask`` with "not found", ``--answer-spec`` and
``--shard-answers`` (real processes, real Redis)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import stop

from swarmstream import Settings

AGENTS = Path(__file__).resolve().parent / "agents"
QUESTION = "What is the vault code of Project Zeta?"
DOCS = {
    "alpha/projects/zeta.md": "# Project Zeta\n\nOwner: the platform team.\n"
    "The vault code of Project Zeta is 4417-ZETA.\nIt opens the staging vault only.\n",
    "beta/notes/beta.md": "# Notes\n\nProject Zeta vault code: 4417-ZETA (see the runbook).\n",
    "gamma/memos/old.md": "# Memo\n\nProject Zeta's vault code was changed to 9999-OMEGA "
    "last spring.\n",
}


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "SWARMSTREAM_REDIS_URL": settings.redis.url,
        "SWARMSTREAM_NAMESPACE": settings.redis.namespace,
    }


def cli(settings: Settings, *args: str, code: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "swarmstream", *args],
        capture_output=True,
        text=True,
        env=_env(settings),
        timeout=90,
    )
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[None]:
    """The three shards loaded, and a worker process for each way of answering."""
    for path, text in DOCS.items():
        shard, rel = path.split("/", 1)
        file = tmp_path / shard / rel
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        cli(settings, "context", "load", shard, str(tmp_path / shard), "--spec", "kb")
    commands = [
        ["kb", "--handler", "retrieve"],
        ["writer", "--exec", f"{sys.executable} {AGENTS / 'composer.py'}"],
        ["answer", "--exec", f"{sys.executable} {AGENTS / 'by_shard.py'} beta=bad_line"],
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "swarmstream", "worker", *c, "--concurrency", "3"],
            env=_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for c in commands
    ]
    try:
        yield
    finally:
        for p in procs:
            stop(p)


def test_ask_not_found_answer_spec_and_shard_answers(settings: Settings, workers: None) -> None:
    found = json.loads(cli(settings, "ask", QUESTION, "--json", "--deadline", "60"))
    assert found["found"] is True
    assert found["passages"][0]["source"].split(":")[0] in (
        "alpha/projects/zeta.md",
        "beta/notes/beta.md",
    )
    assert set(found["versions"]) == {"alpha", "beta", "gamma"}

    missing = json.loads(
        cli(settings, "ask", "What is the vault code of Project Quasar?", "--json")
    )
    assert missing["found"] is False and "quasar" in missing["reason"].lower()
    assert sorted(missing["searched"]) == ["alpha", "beta", "gamma"]
    text = cli(settings, "ask", "What is the vault code of Project Quasar?")
    assert "Not found in shards" in text

    composed = json.loads(
        cli(settings, "ask", QUESTION, "--answer-spec", "writer", "--json", "--deadline", "60")
    )["composed"]
    assert composed["status"] == "answered" and "4417-ZETA" in composed["answer"]
    assert composed["flagged"], "the stand-in cites a quote and a source that are not there"
    assert all(not c["ok"] for c in composed["flagged"])
    assert any(c["ok"] for c in composed["citations"])

    merged = json.loads(
        cli(
            settings,
            "ask",
            QUESTION,
            "--spec",
            "answer",
            "--shard-answers",
            "--json",
            "--deadline",
            "60",
        )
    )
    assert merged["answer"] == "4417-ZETA"
    assert merged["disagreements"][0]["answer"] == "9999-OMEGA"
    assert [c["source"] for c in merged["flagged"]] == ["beta/notes/beta.md:5003"]
    shown = cli(settings, "ask", QUESTION, "--spec", "answer", "--shard-answers")
    assert "Disagreements" in shown and "FLAGGED" in shown

    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmstream",
            "ask",
            QUESTION,
            "--answer-spec",
            "x",
            "--shard-answers",
        ],
        capture_output=True,
        text=True,
        env=_env(settings),
        timeout=60,
    )
    assert bad.returncode == 2 and "pick one" in bad.stderr and "Traceback" not in bad.stderr
