"""The producer and server commands as a user runs them: ``python -m swarmstream``
processes (and Typer's CliRunner for input errors) against real Redis."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from helpers import findings_of, spawn, stop, wait_until
from typer.testing import CliRunner

from swarmstream import Settings
from swarmstream.cli.app import app
from swarmstream.codec import decode_finding
from swarmstream.embedded import EmbeddedRedis, free_port, port_in_use
from swarmstream.keys import Keys

SPEC = "research"
REQUIRED = {"task_id", "spec", "shard", "worker", "status", "content", "sources", "attempt"}
REQUIRED |= {"duration_ms", "created", "started", "finished"}
_ISOLATE = ("SWARMSTREAM_REDIS_URL", "SWARMSTREAM_URL", "SWARMSTREAM_NAMESPACE", "SWARMSTREAM_HOME")


def cli(
    settings: Settings | None,
    *args: str,
    stdin: str = "",
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m swarmstream [--redis-url U --namespace N] ARGS`` to completion."""
    argv = [sys.executable, "-m", "swarmstream"]
    if settings is not None:
        argv += ["--redis-url", settings.redis.url, "--namespace", settings.redis.namespace]
    base = {k: v for k, v in os.environ.items() if k not in _ISOLATE}
    return subprocess.run(
        [*argv, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Assert a failure is exactly one 'error:' line on stderr; return it."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def finding_status(raw: redis.Redis, settings: Settings, task_id: str) -> str | None:
    """Status of the newest finding of a task, read straight from the stream."""
    found = [decode_finding("0-0", fields) for fields in findings_of(raw, settings, SPEC)]
    mine = [f for f in found if f.task_id == task_id]
    return mine[-1].status.value if mine else None


def dead_count(raw: redis.Redis, settings: Settings) -> int:
    return int(raw.xlen(Keys(settings.redis.namespace).spec(SPEC).dead))


@pytest.fixture
def echo_worker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn(settings, [SPEC], "echo")
    yield proc
    stop(proc)


# -- submit and findings -------------------------------------------------------


@pytest.mark.contract
def test_submit_wait_json_round_trip(settings: Settings, echo_worker: object) -> None:
    r = cli(
        settings, "submit", SPEC, "hello swarm", "--data", '{"k": [1, 2]}', "--wait", "30", "--json"
    )
    assert r.returncode == 0, r.stderr
    finding = json.loads(r.stdout)
    assert finding.keys() >= REQUIRED
    assert finding["status"] == "ok" and finding["content"] == "hello swarm"
    assert finding["spec"] == SPEC and finding["attempt"] == 1 and finding["worker"]

    piped = cli(settings, "submit", SPEC, "-", "--wait", "30", "--json", stdin="from stdin\n")
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["content"] == "from stdin"

    human = cli(settings, "submit", SPEC, "[bold]not markup[/bold]", "--wait", "30")
    assert human.returncode == 0, human.stderr
    assert "ok" in human.stdout and "[bold]not markup[/bold]" in human.stdout


def test_submit_prints_the_id_and_findings_filters(
    settings: Settings, raw: redis.Redis, echo_worker: object
) -> None:
    first = cli(settings, "submit", SPEC, "first")
    second = cli(settings, "submit", SPEC, "second", "--shard", "alpha", "--max-attempts", "2")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    ids = [first.stdout.strip(), second.stdout.strip()]
    assert all(len(i) == 28 and "\n" not in i for i in ids)
    wait_until(lambda: len(findings_of(raw, settings, SPEC)) >= 2, timeout=30, what="2 findings")

    everything = cli(settings, "findings", "--json")
    assert everything.returncode == 0, everything.stderr
    rows = json_lines(everything.stdout)
    assert [row["task_id"] for row in rows] == ids
    assert all(row.keys() >= REQUIRED for row in rows)

    only = json_lines(cli(settings, "findings", SPEC, "--task", ids[0], "--json").stdout)
    assert [row["task_id"] for row in only] == [ids[0]]
    sharded = json_lines(cli(settings, "findings", "--shard", "alpha", "--json").stdout)
    assert [(row["task_id"], row["shard"]) for row in sharded] == [(ids[1], "alpha")]
    newest = cli(settings, "findings", "--json", "--limit", "1")
    assert [row["task_id"] for row in json_lines(newest.stdout)] == [ids[1]]
    assert "showing the newest 1; --limit 0 shows all" in newest.stderr  # cut: said so
    whole = cli(settings, "findings", "--json", "--limit", "2")
    assert len(json_lines(whole.stdout)) == 2 and "showing" not in whole.stderr  # not cut
    assert all(r["created"] <= r["started"] <= r["finished"] for r in json_lines(whole.stdout))

    table = cli(settings, "findings", SPEC)
    assert table.returncode == 0 and ids[0] in table.stdout and "second" in table.stdout

    missing = cli(settings, "findings", "--task", "no-such-task")
    assert "no-such-task" in one_line_error(missing, 1)


def test_submit_wait_exit_codes_failed_and_timeout(settings: Settings) -> None:
    lonely = cli(settings, "submit", SPEC, "nobody listens", "--wait", "0.5")
    line = one_line_error(lonely, 2)
    assert "within 0.5s" in line and lonely.stdout == ""

    failing = spawn(settings, [SPEC], "workload:always_fail")
    try:
        r = cli(settings, "submit", SPEC, "doomed", "--max-attempts", "1", "--wait", "30", "--json")
        human = cli(settings, "submit", SPEC, "doomed too", "--max-attempts", "1", "--wait", "30")
    finally:
        stop(failing)
    assert r.returncode == 1, r.stderr
    finding = json.loads(r.stdout)
    assert finding["status"] == "failed" and "cannot handle doomed" in finding["error"]
    assert human.returncode == 1 and "failed" in human.stdout and "cannot handle" in human.stdout


@pytest.mark.contract
def test_findings_follow_streams_new_findings_until_ctrl_c(
    settings: Settings, echo_worker: object
) -> None:
    old = cli(settings, "submit", SPEC, "before", "--wait", "30")
    assert old.returncode == 0, old.stderr
    argv = [sys.executable, "-m", "swarmstream", "--redis-url", settings.redis.url]
    argv += ["--namespace", settings.redis.namespace, "findings", SPEC, "--follow", "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "following findings of research" in read_line(proc.stderr, 20)
        new = cli(settings, "submit", SPEC, "after").stdout.strip()
        row = json.loads(read_line(proc.stdout, 30))
        assert row["task_id"] == new and row["content"] == "after"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert proc.stdout is not None and proc.stdout.read() == ""  # "before" never shown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def read_line(stream: object, timeout: float) -> str:
    """The next line of a child's pipe, failing after ``timeout`` seconds."""
    assert hasattr(stream, "readline")
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)  # type: ignore[arg-type]
        if not sel.select(timeout):
            raise AssertionError(f"no output within {timeout}s")
    line: str = stream.readline()
    assert line, "the process closed its output"
    return line


# -- dead letters --------------------------------------------------------------


@pytest.mark.contract
def test_dead_list_requeue_purge(settings: Settings, raw: redis.Redis) -> None:
    failing = spawn(settings, [SPEC], "workload:always_fail")
    try:
        ids = [
            cli(settings, "submit", SPEC, f"doomed {i}", "--max-attempts", "1").stdout.strip()
            for i in range(3)
        ]
        wait_until(lambda: dead_count(raw, settings) == 3, timeout=30, what="3 dead letters")
    finally:
        stop(failing)

    listed = cli(settings, "dead", "list", SPEC, "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json_lines(listed.stdout)
    assert [x["task_id"] for x in letters] == ids
    assert [x["text"] for x in letters] == ["doomed 0", "doomed 1", "doomed 2"]
    assert all("cannot handle" in str(x["error"]) for x in letters)
    table = cli(settings, "dead", "list", SPEC)
    assert table.returncode == 0 and str(letters[0]["entry_id"]) in table.stdout

    assert "--all" in one_line_error(cli(settings, "dead", "requeue", SPEC), 2)
    one_line_error(cli(settings, "dead", "requeue", SPEC, ids[0], "--all"), 2)
    assert "nope" in one_line_error(cli(settings, "dead", "requeue", SPEC, "nope"), 1)
    assert dead_count(raw, settings) == 3

    worker = spawn(settings, [SPEC], "echo")
    try:
        by_entry = cli(settings, "dead", "requeue", SPEC, str(letters[0]["entry_id"]))
        by_task = cli(settings, "dead", "requeue", SPEC, ids[1])
        assert (
            by_entry.stdout.strip()
            == by_task.stdout.strip()
            == f"requeued 1 dead letter(s) of {SPEC}"
        )
        for task_id in ids[:2]:

            def done(t: str = task_id) -> bool:
                return finding_status(raw, settings, t) == "ok"

            wait_until(done, timeout=30, what=f"requeued task {task_id} done")
    finally:
        stop(worker)
    again = json_lines(cli(settings, "findings", SPEC, "--task", ids[0], "--json").stdout)
    assert [(x["status"], x["content"]) for x in again] == [("ok", "doomed 0")]
    assert [
        x["task_id"] for x in json_lines(cli(settings, "dead", "list", SPEC, "--json").stdout)
    ] == [ids[2]]

    assert dead_count(raw, settings) == 1
    purged = cli(settings, "dead", "purge", SPEC)  # no terminal: no question asked
    assert purged.returncode == 0 and purged.stdout.strip() == f"purged 1 dead letter(s) of {SPEC}"
    assert cli(settings, "dead", "list", SPEC, "--json").stdout == ""
    assert cli(settings, "dead", "requeue", SPEC, "--all").stdout.strip().startswith("requeued 0")


# -- errors: one line, an exit code, no traceback ------------------------------


@pytest.mark.parametrize("url", ["foo://localhost:6379/0", "redis://localhost:port/0", "redis://"])
def test_bad_url_exits_2(url: str) -> None:
    r = cli(None, "--redis-url", url, "submit", SPEC, "hi")
    assert "invalid Redis URL" in one_line_error(r, 2)


@pytest.mark.parametrize(
    "args",
    [
        ("submit", SPEC, "hi"),
        ("findings",),
        ("findings", SPEC, "--follow"),
        ("dead", "list", SPEC),
        ("dead", "requeue", SPEC, "--all"),
        ("dead", "purge", SPEC, "--yes"),
    ],
)
def test_unreachable_redis_exits_3_and_says_how_to_start_one(args: tuple[str, ...]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    r = cli(None, "--redis-url", url, *args, env={"SWARMSTREAM_RETRIES": "0"})
    line = one_line_error(r, 3)
    assert "cannot reach Redis" in line and "swarmstream up" in line and "--redis-url" in line


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["submit", "bad{spec", "hi"], "invalid spec name"),
        (["findings", "a:b"], "invalid spec name"),
        (["dead", "list", "two words"], "invalid spec name"),
        (["dead", "purge", "{x}", "--yes"], "invalid spec name"),
        (["submit", SPEC, "hi", "--shard", "a}b"], "invalid shard name"),
        (["submit", SPEC, "hi", "--data", "{bad json"], "--data is not valid JSON"),
        (["submit", SPEC, "hi", "--max-attempts", "0"], "--max-attempts"),
        (["submit", SPEC, "hi", "--timeout", "-1"], "--timeout"),
        (["findings", "--limit", "-1"], "--limit"),
    ],
)
def test_bad_input_exits_2_before_connecting(args: list[str], needle: str) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    result = runner.invoke(app, ["--redis-url", unreachable, *args])
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.startswith("error: ")
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_runner_lists_findings_in_process(settings: Settings, echo_worker: object) -> None:
    flags = ["--redis-url", settings.redis.url, "--namespace", settings.redis.namespace]
    sent = runner.invoke(app, [*flags, "submit", SPEC, "in process", "--wait", "30", "--json"])
    assert sent.exit_code == 0, sent.output
    listed = runner.invoke(app, [*flags, "findings", SPEC, "--json"])
    assert listed.exit_code == 0, listed.output
    assert [row["content"] for row in json_lines(listed.stdout)] == ["in process"]


# -- up and down ---------------------------------------------------------------


@pytest.fixture
def server_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory for ``up``; whatever server it records is stopped afterwards."""
    d = tmp_path / "redis"
    yield d
    state = d / "server.json"
    if state.exists():
        cli(None, "down", "--dir", str(d))
    if state.exists():  # down failed: stop our own server by its recorded pid
        with contextlib.suppress(ProcessLookupError, ValueError, KeyError):
            os.kill(int(json.loads(state.read_text())["pid"]), signal.SIGKILL)


def test_up_reuse_and_down(server_dir: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    started = cli(None, "up", "--port", str(port), "--dir", str(server_dir))
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"export SWARMSTREAM_REDIS_URL={url}"
    assert "started" in started.stderr and url in started.stderr
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
        pid = json.loads((server_dir / "server.json").read_text())["pid"]
        assert client.info("server")["process_id"] == pid
        client.set("kept", "across restarts")

        for args in ((), ("--port", str(port))):
            again = cli(None, "up", "--dir", str(server_dir), *args)
            assert again.returncode == 0, again.stderr
            assert again.stdout == started.stdout and "already running" in again.stderr
        assert json.loads((server_dir / "server.json").read_text())["pid"] == pid
        moved = cli(None, "up", "--dir", str(server_dir), "--port", str(free_port()))
        assert "swarmstream down" in one_line_error(moved, 1)

        stopped = cli(None, "down", "--dir", str(server_dir))
        assert stopped.returncode == 0 and f"stopped redis-server pid {pid}" in stopped.stdout
        wait_until(lambda: not port_in_use(port), timeout=10, what="the port to be free")
        assert not (server_dir / "server.json").exists()
        nothing = cli(None, "down", "--dir", str(server_dir))
        assert nothing.returncode == 0 and "no Redis" in nothing.stdout

        restarted = cli(None, "up", "--port", str(port), "--dir", str(server_dir))
        assert restarted.returncode == 0, restarted.stderr
        assert client.get("kept") == b"across restarts"  # appendonly yes
    finally:
        client.close()
    assert cli(None, "down", "--dir", str(server_dir)).returncode == 0
    wait_until(lambda: not port_in_use(port), timeout=10, what="the port to be free")


def test_up_never_takes_over_another_server(
    redis_url: str, raw: redis.Redis, tmp_path: Path
) -> None:
    parts = urlsplit(redis_url)
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        pytest.skip("the test server is not on this machine's loopback")
    pid = raw.info("server")["process_id"]
    marker = f"test-cli:{time.time_ns()}"
    raw.set(marker, "untouched", ex=60)
    d = tmp_path / "redis"
    r = cli(None, "up", "--port", str(parts.port), "--dir", str(d))
    line = one_line_error(r, 1)
    assert f"already answers on 127.0.0.1:{parts.port}" in line and "--port" in line
    assert r.stdout == "" and not (d / "server.json").exists()
    assert raw.info("server")["process_id"] == pid and raw.get(marker) == b"untouched"
    assert "no Redis" in cli(None, "down", "--dir", str(d)).stdout
    assert raw.ping()


@pytest.fixture(params=["redis", "redis-with-password", "not-redis"])
def occupied(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A port something else listens on: a Redis, one with a password, or a socket
    that accepts connections and never answers."""
    kind: str = request.param
    if kind == "not-redis":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            yield kind, s.getsockname()[1]
        return
    server = EmbeddedRedis(
        dir=tmp_path / "other",
        port=free_port(),
        appendonly=False,
        password="s3cret" if kind == "redis-with-password" else None,
    )
    server.start()
    try:
        yield kind, server.port
    finally:
        server.stop()


def test_up_on_a_port_another_server_holds_says_what_is_there(
    occupied: tuple[str, int], tmp_path: Path
) -> None:
    kind, port = occupied
    d = tmp_path / "redis"
    r = cli(None, "up", "--port", str(port), "--dir", str(d))
    line = one_line_error(r, 1)
    assert r.stdout == "" and not (d / "server.json").exists()
    assert "start swarmstream's own on another port with --port " in line
    where = f"127.0.0.1:{port}"
    if kind == "redis":
        with redis.Redis(port=port) as client:
            version = client.info("server")["redis_version"]
        assert line.startswith(
            f"error: a Redis server (version {version}) already answers on {where} and was not "
            f"started by 'swarmstream up' in {d.resolve()}: use it with "
            f"export SWARMSTREAM_REDIS_URL=redis://{where}/0, or "
        )
    elif kind == "redis-with-password":
        assert "asks for a password (it answered NOAUTH)" in line
        assert f"export SWARMSTREAM_REDIS_URL=redis://:PASSWORD@{where}/0" in line
    else:
        assert f"port {port} on 127.0.0.1 is taken by something that is not Redis" in line
    suggested = int(line.rsplit("--port ", 1)[1].split()[0])
    assert suggested != port
