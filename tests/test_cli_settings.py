"""Settings precedence as the CLI resolves it (default < config file < environment <
flag, for every setting), ``--show-settings`` and ``config``, and worker
subprocesses that get their settings through the environment, never on argv."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import stop
from typer.testing import CliRunner

from swarmstream import Settings, Swarm
from swarmstream.cli.app import app
from swarmstream.embedded import EmbeddedRedis, free_port
from swarmstream.settings import RedisSettings, Retention, WorkerSettings, env_names
from swarmstream.worker.process import spawn_worker

runner = CliRunner()
SECTIONS = {"redis": RedisSettings, "worker": WorkerSettings, "retention": Retention}
GLOBAL_FLAGS = {"url": "--redis-url", "namespace": "--namespace", "durable_replicas": "--replicas"}

#: per setting: its value in the config file, in the environment, and on the command
#: line (None: it has no flag), each different from the level below it
CASES: dict[str, tuple[Any, Any, Any]] = {
    "url": ("redis://file:1/0", "redis://env:2/0", "redis://flag:3/0"),
    "namespace": ("fromfile", "fromenv", "fromflag"),
    "socket_timeout": (1.5, 2.5, None),
    "connect_timeout": (3.0, 4.0, None),
    "health_check_interval": (7, 9, None),
    "retries": (1, 2, None),
    "connect_wait": (1.0, 2.0, 3.0),
    "durable_replicas": (1, 2, 3),
    "durable_timeout": (2.0, 3.0, None),
    "concurrency": (3, 5, 7),
    "claim_idle": (30.0, 40.0, 50.0),
    "lease_interval": (5.0, 6.0, None),
    "reclaim_interval": (0.5, 0.7, None),
    "block": (0.3, 0.4, None),
    "grace": (10.0, 11.0, 12.0),
    "retry_base": (0.1, 0.2, 0.3),
    "retry_max": (5.0, 6.0, 7.0),
    "default_timeout": (100.0, 200.0, 300.0),
    "heartbeat_interval": (1.0, 1.5, None),
    "trim_interval": (3.0, 4.0, None),
    "max_entry_bytes": (1000, 2000, None),
    "once": (True, False, True),
    "max_tasks": (10, 20, 30),
    "idle_exit": (5.0, 6.0, 7.0),
    "findings_maxlen": (10, 20, None),
    "dead_maxlen": (30, 40, None),
    "done_ttl": (50, 60, None),
    "error_ttl": (70, 80, None),
}
WORKER_FLAGS = {"default_timeout": "--timeout"}


def section_of(name: str) -> str:
    for section, klass in SECTIONS.items():
        if name in {f.name for f in dataclasses.fields(klass)}:
            return section
    raise KeyError(name)


def default_of(name: str) -> Any:
    return getattr(SECTIONS[section_of(name)](), name)


def toml_value(value: Any) -> str:
    return json.dumps(value)  # strings, numbers and booleans are the same in TOML


def clean_env(**values: str) -> dict[str, str | None]:
    """CliRunner env: no SWARMSTREAM_* setting variable of the test run, plus ``values``."""
    return {**dict.fromkeys(env_names()), **values}


def test_cases_cover_every_setting() -> None:
    every = {f.name for klass in SECTIONS.values() for f in dataclasses.fields(klass)}
    assert set(CASES) == every


def resolve(tmp_path: Path, name: str, level: str) -> dict[str, Any]:
    """The settings ``worker --show-settings`` prints with ``name`` set at every level
    up to ``level`` (default, config, env, flag)."""
    file_value, env_value, flag_value = CASES[name]
    levels = ("default", "config", "env", "flag")
    upto = levels.index(level)
    before: list[str] = []
    after: list[str] = []
    env = clean_env()
    if upto >= 1:
        toml = tmp_path / "s.toml"
        toml.write_text(f"[{section_of(name)}]\n{name} = {toml_value(file_value)}\n")
        before += ["--config", str(toml)]
    if upto >= 2:
        var = "SWARMSTREAM_REDIS_URL" if name == "url" else f"SWARMSTREAM_{name.upper()}"
        env = clean_env(**{var: str(env_value)})
    if upto >= 3:
        if name in GLOBAL_FLAGS:
            before += [GLOBAL_FLAGS[name], str(flag_value)]
        else:
            flag = WORKER_FLAGS.get(name, "--" + name.replace("_", "-"))
            after += [flag] if isinstance(flag_value, bool) else [flag, str(flag_value)]
    result = runner.invoke(app, [*before, "worker", "research", "--show-settings", *after], env=env)
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


@pytest.mark.parametrize("name", list(CASES))
def test_precedence_default_config_env_flag(name: str, tmp_path: Path) -> None:
    file_value, env_value, flag_value = CASES[name]
    section = section_of(name)
    expected = {"default": default_of(name), "config": file_value, "env": env_value}
    if flag_value is not None:
        expected["flag"] = flag_value
    values = list(expected.values())
    assert all(a != b for a, b in itertools.pairwise(values)), "each level must change the value"
    for level, value in expected.items():
        shown = resolve(tmp_path, name, level)
        assert shown[section][name] == value, (level, shown[section])
        others = {k: v for k, v in shown[section].items() if k != name}
        assert others == {k: default_of(k) for k in others}, "only the one setting moved"


def test_show_settings_and_config_redact_the_password(tmp_path: Path) -> None:
    url = "redis://alice:hunter2@db.example:6380/1?password=hunter2"
    toml = tmp_path / "s.toml"
    toml.write_text('[worker]\nconcurrency = 3\n[redis]\nnamespace = "fromfile"\n')
    env = clean_env(SWARMSTREAM_REDIS_URL=url, SWARMSTREAM_CLAIM_IDLE="20")
    shown = runner.invoke(app, ["--config", str(toml), "config"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "hunter2" not in shown.stdout
    doc = json.loads(shown.stdout)
    assert set(doc) == {"redis", "worker", "retention", "prices", "budgets"}
    assert doc["redis"]["url"] == "redis://alice:***@db.example:6380/1?password=***"
    assert doc["redis"]["namespace"] == "fromfile"
    assert (doc["worker"]["concurrency"], doc["worker"]["claim_idle"]) == (3, 20.0)
    worker = runner.invoke(
        app, ["--config", str(toml), "worker", "a", "-c", "4", "--show-settings"], env=env
    )
    assert worker.exit_code == 0, worker.output
    assert json.loads(worker.stdout)["worker"]["concurrency"] == 4
    assert "hunter2" not in worker.stdout
    bad = runner.invoke(app, ["config"], env=clean_env(SWARMSTREAM_CONCURRENCY="many"))
    assert bad.exit_code == 2 and "not a valid int" in bad.stderr


def test_worker_help_shows_the_defaults() -> None:
    shown = runner.invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    lines = {line.split()[1]: line for line in shown.stdout.splitlines() if "--" in line[:6]}
    for flag, default in {
        "--concurrency": "8",
        "--claim-idle": "60",
        "--grace": "30",
        "--retry-base": "1",
        "--retry-max": "60",
        "--timeout": "none",
        "--max-tasks": "none",
        "--idle-exit": "none",
    }.items():
        assert f"[default: {default}]" in lines[flag], lines[flag]


# -- worker subprocesses: settings through the environment ------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(dir=tmp_path_factory.mktemp("spawn"), port=free_port(), password="pa55")
    server.start()
    yield server
    server.stop()


def spawn_settings(secured: EmbeddedRedis) -> Settings:
    return Settings.from_flat(
        {
            "url": secured.url,
            "namespace": f"s{uuid.uuid4().hex[:10]}",
            "socket_timeout": 7.5,
            "connect_timeout": 2.5,
            "retries": 1,
            "health_check_interval": 4,
            "concurrency": 3,
            "claim_idle": 9.0,
            "block": 0.2,
            "findings_maxlen": 500,
        }
    )


def test_spawned_worker_resolves_exactly_the_parent_settings(
    secured: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = spawn_settings(secured)
    # the parent's own variables must not leak into the child's settings
    monkeypatch.setenv("SWARMSTREAM_URL", "redis://elsewhere:1/0")
    monkeypatch.setenv("SWARMSTREAM_MAX_TASKS", "3")
    monkeypatch.setenv("SWARMSTREAM_RETRIES", "9")
    proc = spawn_worker(
        ["research"],
        "echo",
        settings,
        extra=("--show-settings",),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out) == settings.to_json()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/cmdline")
def test_spawned_worker_keeps_the_password_off_its_command_line(secured: EmbeddedRedis) -> None:
    settings = spawn_settings(secured)
    proc = spawn_worker(
        ["research"], "echo", settings, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert not [arg for arg in cmdline if b"pa55" in arg], cmdline
        assert b"--redis-url" not in cmdline

        async def round_trip() -> str:
            async with Swarm(settings) as swarm:
                task = await swarm.submit("research", "through the environment")
                return (await swarm.wait(task, timeout=30)).content

        assert asyncio.run(round_trip()) == "through the environment"
    finally:
        stop(proc)
