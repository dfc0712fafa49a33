"""``swarmstream submit SPEC --file``: many tasks from JSON lines, as an agent posts
them; and the per-spec defaults of the config file (``[specs.SPEC]``) in submit and
worker. Real processes against real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from helpers import spawn, stop
from test_cli import cli, json_lines, one_line_error

from swarmstream import Settings, Task
from swarmstream.codec import decode_task
from swarmstream.keys import Keys
from swarmstream.models import DEFAULT_MAX_ATTEMPTS
from swarmstream.settings import SpecDefaults


def posted(raw: redis.Redis, settings: Settings, spec: str) -> list[Task]:
    """The tasks in a spec's stream, oldest first."""
    key = Keys(settings.redis.namespace).spec(spec).tasks
    return [decode_task(spec, fields)[0] for _, fields in raw.xrange(key)]


def write(path: Path, *lines: object) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


@pytest.mark.contract
def test_file_posts_every_line_with_its_fields(
    settings: Settings, raw: redis.Redis, tmp_path: Path
) -> None:
    tasks = write(
        tmp_path / "tasks.jsonl",
        {"text": "plain"},
        "",  # blank lines are skipped, and still counted
        {"text": "full", "data": {"k": [1, 2]}, "shard": "alpha", "id": "t-full"},
        {"text": "limits", "max_attempts": 2, "timeout": 7.5},
        {"text": "elsewhere", "spec": "analysis", "id": "t-else"},
    )
    out = cli(settings, "submit", "research", "--file", str(tasks), "--json")
    assert out.returncode == 0, out.stderr
    rows = json_lines(out.stdout)
    assert [r["line"] for r in rows] == [1, 3, 4, 5]
    assert [r["spec"] for r in rows] == ["research"] * 3 + ["analysis"]
    assert rows[1] == {"task_id": "t-full", "spec": "research", "shard": "alpha", "line": 3}
    plain, full, limits = posted(raw, settings, "research")
    assert (plain.text, plain.id, plain.max_attempts) == ("plain", rows[0]["task_id"], 3)
    assert (full.data, full.shard, full.id) == ({"k": [1, 2]}, "alpha", "t-full")
    assert (limits.max_attempts, limits.timeout) == (2, 7.5)
    [other] = posted(raw, settings, "analysis")
    assert (other.text, other.id) == ("elsewhere", "t-else")
    # without --json: a summary
    again = cli(settings, "submit", "research", "--file", str(tasks))
    assert again.returncode == 0 and "posted 4 tasks" in again.stdout, again.stderr


def test_stdin_and_flags_as_defaults(settings: Settings, raw: redis.Redis) -> None:
    lines = "\n".join(
        json.dumps(x)
        for x in ({"text": "a"}, {"text": "b", "shard": "beta", "max_attempts": 9, "data": None})
    )
    out = cli(
        settings,
        "submit",
        "research",
        "--file",
        "-",
        "--shard",
        "alpha",
        "--max-attempts",
        "4",
        "--timeout",
        "3",
        "--data",
        '{"x": 1}',
        stdin=lines,
    )
    assert out.returncode == 0, out.stderr
    a, b = posted(raw, settings, "research")
    assert (a.shard, a.max_attempts, a.timeout, a.data) == ("alpha", 4, 3.0, {"x": 1})
    assert (b.shard, b.max_attempts, b.timeout, b.data) == ("beta", 9, 3.0, None)


def test_bad_lines_post_nothing_and_are_named(
    settings: Settings, raw: redis.Redis, tmp_path: Path
) -> None:
    tasks = write(
        tmp_path / "tasks.jsonl",
        {"text": "good", "id": "t1"},
        "not json",
        {"data": 1},
        {"text": "typo", "max_attempt": 2},
        {"text": "dup", "id": "t1"},
        {"text": "zero", "max_attempts": 0},
        {"text": "shard", "shard": "no spaces"},
        [1, 2],
        {"text": "fine too"},
    )
    out = cli(settings, "submit", "research", "--file", str(tasks))
    assert out.returncode == 2, out.stderr
    assert posted(raw, settings, "research") == []
    *details, summary = out.stderr.strip().splitlines()
    where = f"{tasks}:"
    assert [d.split(":")[1] for d in details] == ["2", "3", "4", "5", "6", "7", "8"]
    assert all(d.startswith(where) for d in details)
    assert "not valid JSON" in details[0] and '"text"' in details[1]
    assert "unknown field 'max_attempt'" in details[2] and "also on line 1" in details[3]
    assert "max_attempts must be between 1 and 1000" in details[4]
    assert "invalid shard name" in details[5] and "JSON object" in details[6]
    assert summary.startswith("error: 7 bad line(s)") and "nothing posted" in summary
    assert "Traceback" not in out.stderr
    # --skip-bad: the good ones go, the bad ones are still named
    skip = cli(settings, "submit", "research", "--file", str(tasks), "--skip-bad", "--json")
    assert skip.returncode == 0, skip.stderr
    assert [r["line"] for r in json_lines(skip.stdout)] == [1, 9]
    assert len(skip.stderr.strip().splitlines()) == 7
    assert [t.text for t in posted(raw, settings, "research")] == ["good", "fine too"]


def test_usage_errors_are_one_line(settings: Settings, tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.jsonl", "", "  ")
    assert "no tasks in" in one_line_error(cli(settings, "submit", "r", "--file", str(empty)), 2)
    missing = cli(settings, "submit", "r", "--file", str(tmp_path / "nope.jsonl"))
    assert "not found" in one_line_error(missing, 2)
    assert "not both" in one_line_error(cli(settings, "submit", "r", "x", "--file", "-"), 2)
    assert "TEXT or --file" in one_line_error(cli(settings, "submit", "r"), 2)
    assert "--skip-bad" in one_line_error(cli(settings, "submit", "r", "x", "--skip-bad"), 2)
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b'{"text": "\xff"}\n')
    out = cli(settings, "submit", "r", "--file", str(binary))
    assert out.returncode == 2 and "not valid UTF-8" in out.stderr


@pytest.mark.contract
def test_wait_for_all_with_a_worker(settings: Settings, tmp_path: Path) -> None:
    tasks = write(
        tmp_path / "tasks.jsonl",
        *({"text": f"task {i}", "id": f"w-{i}"} for i in range(25)),
    )
    worker = spawn(settings, ["research"], "workload:upper")
    try:
        out = cli(
            settings, "submit", "research", "--file", str(tasks), "--wait", "60", "--json",
            "--batch", "10",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        found = json_lines(out.stdout)
        assert [f["line"] for f in found] == list(range(1, 26))
        assert all(f["status"] == "ok" for f in found)
        assert found[3]["task_id"] == "w-3" and found[3]["content"] == "TASK 3"
        human = cli(settings, "submit", "research", "--file", str(tasks), "--wait", "60")
        assert human.returncode == 0 and "25 tasks: 25 ok" in human.stdout, human.stderr
    finally:
        stop(worker)


def test_wait_exit_codes(settings: Settings, tmp_path: Path) -> None:
    """1 when a task failed or died, 2 when some finding did not come in time."""
    worker = spawn(settings, ["research"], "workload:always_fail")
    try:
        failing = write(tmp_path / "f.jsonl", {"text": "doomed", "max_attempts": 1})
        out = cli(settings, "submit", "research", "--file", str(failing), "--wait", "30")
        assert out.returncode == 1, (out.stdout, out.stderr)
        assert "1 failed or dead" in out.stdout and "line 1: task" in out.stdout
    finally:
        stop(worker)
    nobody = write(tmp_path / "n.jsonl", {"text": "a"}, {"text": "b"})
    late = cli(settings, "submit", "unserved", "--file", str(nobody), "--wait", "0.3", "--json")
    assert "no finding within 0.3s for 2 of 2 tasks" in one_line_error(late, 2)
    assert late.stdout == ""


# -- per-spec defaults: [specs.SPEC] -------------------------------------------------


def test_specs_table_resolution_and_its_errors(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[specs.research]\nmax_attempts = 5\ntimeout = 600\nexec = "claude -p"\n'
        'concurrency = 4\n[specs.fast]\nhandler = "echo"\n'
    )
    settings = Settings.load(toml, env={})
    assert settings.spec("research") == SpecDefaults(5, 600.0, "claude -p", None, 4)
    assert settings.spec("unknown") == SpecDefaults()
    # spawned workers get the table through the environment
    assert Settings.load(env=settings.to_env()).specs == settings.specs
    assert settings.spec_defaults(["research", "other"]).exec == "claude -p"
    with pytest.raises(Exception, match="exec and"):
        settings.spec_defaults(["research", "fast"])
    bad = {
        "[specs.r]\nmax_attempt = 5\n": "unknown key 'max_attempt'",
        "[specs.r]\ntimeout = 0\n": "timeout must be a positive number",
        "[specs.r]\nmax_attempts = 1001\n": "max_attempts must be an integer between 1 and 1000",
        "[specs.r]\nconcurrency = true\n": "concurrency must be an integer",
        '[specs.r]\nexec = "x"\nhandler = "echo"\n': "exec or handler, not both",
        '[specs."no spaces"]\ntimeout = 1\n': "[specs]: invalid spec name",
        "[specs]\nr = 1\n": "[specs.r] must be a table",
    }
    for text, message in bad.items():
        toml.write_text(text)
        out = cli(None, "--config", str(toml), "config")
        assert message in one_line_error(out, 2), text


def test_submit_applies_the_spec_defaults(
    settings: Settings, raw: redis.Redis, tmp_path: Path
) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("[specs.research]\nmax_attempts = 7\ntimeout = 42\n")
    conf = ("--config", str(toml))
    assert cli(settings, *conf, "submit", "research", "from the table").returncode == 0
    assert cli(settings, *conf, "submit", "research", "flags", "--max-attempts", "2",
               "--timeout", "1").returncode == 0  # fmt: skip
    assert cli(settings, *conf, "submit", "other", "no table").returncode == 0
    via_env = cli(settings, "submit", "research", "via env", env={"SWARMSTREAM_CONFIG": str(toml)})
    assert via_env.returncode == 0, via_env.stderr
    lines = write(
        tmp_path / "t.jsonl", {"text": "line default"}, {"text": "line own", "max_attempts": 3}
    )
    assert cli(settings, *conf, "submit", "research", "--file", str(lines)).returncode == 0
    got = [(t.text, t.max_attempts, t.timeout) for t in posted(raw, settings, "research")]
    assert got == [
        ("from the table", 7, 42.0),
        ("flags", 2, 1.0),
        ("via env", 7, 42.0),
        ("line default", 7, 42.0),
        ("line own", 3, 42.0),
    ]
    [other] = posted(raw, settings, "other")
    assert (other.max_attempts, other.timeout) == (DEFAULT_MAX_ATTEMPTS, None)


def _worker_settings(
    toml: Path, *args: str, env: dict[str, str] | None = None
) -> dict[str, object]:
    out = cli(None, "--config", str(toml), "worker", *args, "--show-settings", env=env)
    assert out.returncode == 0, out.stderr
    worker: dict[str, object] = json.loads(out.stdout)["worker"]
    return worker


def test_worker_takes_the_spec_table_after_its_flags(settings: Settings, tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    upper = f"{sys.executable} -c 'import sys; print(sys.stdin.read().upper())'"
    toml.write_text(
        f"[worker]\nconcurrency = 2\n[specs.research]\nconcurrency = 3\ntimeout = 40\n"
        f"exec = {json.dumps(upper)}\n[specs.other]\nconcurrency = 6\n"
    )
    shown = _worker_settings(toml, "research")
    assert (shown["concurrency"], shown["default_timeout"]) == (3, 40.0)
    flags = _worker_settings(toml, "research", "-c", "9", "--timeout", "5")
    assert (flags["concurrency"], flags["default_timeout"]) == (9, 5.0)
    over_env = _worker_settings(toml, "research", env={"SWARMSTREAM_CONCURRENCY": "11"})
    assert over_env["concurrency"] == 3  # the spec's table beats the generic settings
    assert _worker_settings(toml, "unlisted")["concurrency"] == 2
    clash = cli(None, "--config", str(toml), "worker", "research", "other", "--show-settings")
    assert "give --concurrency" in one_line_error(clash, 2)
    # the exec command of the table runs the task
    argv = [
        sys.executable, "-m", "swarmstream", "--redis-url", settings.redis.url,
        "--namespace", settings.redis.namespace, "--config", str(toml),
        "worker", "research", "--max-tasks", "1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMSTREAM_")}
    worker = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
    try:
        out = cli(settings, "submit", "research", "hello", "--wait", "60", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["content"].strip() == "HELLO"
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        assert worker.stderr is not None
        worker.stderr.close()


def test_a_failed_batch_says_how_far_posting_got(
    settings: Settings, raw: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from swarmstream.cli.app import app
    from swarmstream.client import Swarm
    from swarmstream.errors import ConnectionFailed

    real = Swarm.submit_many
    calls = []

    async def flaky(self: Swarm, tasks: list[Task]) -> list[Task]:
        calls.append(len(tasks))
        if len(calls) == 3:
            raise ConnectionFailed("connection lost")
        return await real(self, tasks)

    monkeypatch.setattr(Swarm, "submit_many", flaky)
    tasks = write(tmp_path / "t.jsonl", *({"text": f"t{i}"} for i in range(25)))
    args = ["--redis-url", settings.redis.url, "--namespace", settings.redis.namespace]
    out = CliRunner().invoke(
        app, [*args, "submit", "research", "--file", str(tasks), "--batch", "10", "--json"]
    )
    assert out.exit_code == 3, out.output
    assert [r["line"] for r in json_lines(out.stdout)] == list(range(1, 21))
    assert "the tasks of lines 1-20 were posted; the batch from line 21 failed" in out.stderr
    assert len(posted(raw, settings, "research")) == 20
