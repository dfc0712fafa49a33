"""The external-command handler (``--exec``): stdin, environment, structured and
plain output, failures with stderr, killing the whole process group on timeout,
the borrowed context as a file, and no shell anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import kill9, running_worker, stop, wait_until

from swarmstream import Settings, Status, Swarm, Task
from swarmstream.embedded import process_alive
from swarmstream.errors import ConfigError, HandlerError
from swarmstream.handlers.exec import ExecHandler, parse_output
from swarmstream.models import Result
from swarmstream.shard import MemoryShard
from swarmstream.worker.process import spawn_worker, worker_argv

SPEC = "agents"
CLI = (sys.executable, "-m", "swarmstream", "--redis-url", "redis://127.0.0.1:1/0")
INTERESTING = (
    "SWARMSTREAM_TASK_ID",
    "SWARMSTREAM_SPEC",
    "SWARMSTREAM_SHARD",
    "SWARMSTREAM_ATTEMPT",
    "SWARMSTREAM_PASS",
    "SWARMSTREAM_CONTEXT_FILE",
    "SWARMSTREAM_CONTEXT_VERSION",
)

# Reports what it saw as a structured finding: stdin, argv, environment, and the
# context file (its text and identity, to prove it is not rewritten per task).
# With FAIL_ON_ATTEMPT set, that attempt fails (exit 1) with a message on stderr.
REPORT = f"""
import json, os, sys
text = sys.stdin.read()
if os.environ.get("SWARMSTREAM_ATTEMPT") == os.environ.get("FAIL_ON_ATTEMPT"):
    sys.stderr.write("attempt " + os.environ["SWARMSTREAM_ATTEMPT"] + " fails on purpose\\n")
    sys.exit(1)
seen = {{
    "stdin": text,
    "argv": sys.argv[1:],
    "env": {{k: os.environ.get(k) for k in {INTERESTING!r}}},
}}
path = os.environ.get("SWARMSTREAM_CONTEXT_FILE")
if path:
    st = os.stat(path)
    with open(path, encoding="utf-8") as f:
        seen["context"] = f.read()
    seen["context_id"] = [st.st_ino, st.st_mtime_ns]
print(json.dumps({{"content": "seen", "data": seen}}))
"""

# Starts a child that ignores SIGTERM (so only SIGKILL ends it), records both pids
# once the child is ready, then sleeps far past any timeout.
SPAWNER = """
import os, subprocess, sys, time
CHILD = '''
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(sys.argv[2] + " " + str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(100)
'''
subprocess.Popen([sys.executable, "-c", CHILD, sys.argv[1], str(os.getpid())])
time.sleep(100)
"""


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _command(script: Path, *args: str) -> str:
    return shlex.join([sys.executable, str(script), *args])


def _pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


def _spawn_exec(
    settings: Settings, command: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A real ``swarmstream worker SPEC --exec COMMAND`` process."""
    cfg = settings.worker
    return spawn_worker(
        [SPEC],
        None,
        settings,
        exec_command=command,
        extra=("--grace", str(cfg.grace), *extra),
        env={
            "SWARMSTREAM_RECLAIM_INTERVAL": str(cfg.reclaim_interval),
            "SWARMSTREAM_HEARTBEAT_INTERVAL": str(cfg.heartbeat_interval),
            "SWARMSTREAM_RETRY_BASE": str(cfg.retry_base),
            "SWARMSTREAM_RETRY_MAX": str(cfg.retry_max),
            "SWARMSTREAM_BLOCK": str(cfg.block),
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _stop(proc: subprocess.Popen[bytes]) -> str:
    err = await asyncio.to_thread(stop, proc)
    assert proc.returncode == 0, err
    return err


def _task(text: str = "q", **kw: Any) -> Task:
    return Task(spec=SPEC, text=text, **kw)


# -- real worker processes ---------------------------------------------------


async def test_stdin_and_environment_reach_the_command(
    swarm: Swarm, settings: Settings, tmp_path: Path
) -> None:
    report = _script(tmp_path, "report.py", REPORT)
    text = "line one\nline two: ünïcode 日本 \"quoted\" 'single'\n"
    task = await swarm.submit(SPEC, text, pass_no=3, max_attempts=2)
    proc = _spawn_exec(
        settings, _command(report, "--flag", "two words"), env={"FAIL_ON_ATTEMPT": "1"}
    )
    try:
        finding = await swarm.wait(task, timeout=30)
        await _stop(proc)
    finally:
        kill9(proc)
    assert finding.status is Status.OK, finding.error
    assert finding.attempt == 2  # attempt 1 failed on purpose
    assert finding.content == "seen"
    seen = finding.data
    assert seen["stdin"] == text
    assert seen["argv"] == ["--flag", "two words"]
    assert seen["env"] == {
        "SWARMSTREAM_TASK_ID": task.id,
        "SWARMSTREAM_SPEC": SPEC,
        "SWARMSTREAM_SHARD": "",
        "SWARMSTREAM_ATTEMPT": "2",
        "SWARMSTREAM_PASS": "3",
        "SWARMSTREAM_CONTEXT_FILE": None,  # unset, not "": the task has no shard
        "SWARMSTREAM_CONTEXT_VERSION": None,
    }


async def test_timeout_kills_the_whole_process_group(
    swarm: Swarm, settings: Settings, tmp_path: Path
) -> None:
    spawner = _script(tmp_path, "spawner.py", SPAWNER)
    pidfile = tmp_path / "pids"
    task = await swarm.submit(SPEC, "never finishes", timeout=5.0, max_attempts=1)
    proc = _spawn_exec(settings, _command(spawner, str(pidfile)))
    pids: list[int] = []
    try:
        wait_until(pidfile.exists, timeout=20, what="the command and its child to start")
        pids = _pids(pidfile)
        assert len(pids) == 2 and all(process_alive(p) for p in pids)
        finding = await swarm.wait(task, timeout=30)
        # the attempt fails only once the group is terminated, killed and reaped
        assert finding.status is Status.FAILED
        assert finding.error is not None and "timed out after 5s" in finding.error
        wait_until(
            lambda: not any(process_alive(p) for p in pids), timeout=10, what="the group to be gone"
        )
        assert proc.poll() is None, "the worker itself survives"
        await _stop(proc)
    finally:
        kill9(proc)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


async def test_shell_metacharacters_are_never_interpreted(
    swarm: Swarm, settings: Settings, tmp_path: Path
) -> None:
    report = _script(tmp_path, "report.py", REPORT)
    victim = tmp_path / "x"
    victim.mkdir()
    (victim / "keep").write_text("keep me")
    pwned = [tmp_path / f"pwned{i}" for i in range(4)]
    text = (
        f"; rm -rf {victim} $(touch {pwned[0]}) `touch {pwned[1]}` && echo hi | "
        f"tee {pwned[2]} > /dev/null; exit 1\n"
    )
    argument = f"$(touch {pwned[3]}); rm -rf {victim}"
    task = await swarm.submit(SPEC, text, max_attempts=1)
    proc = _spawn_exec(settings, _command(report, argument))
    try:
        finding = await swarm.wait(task, timeout=30)
        await _stop(proc)
    finally:
        kill9(proc)
    assert finding.status is Status.OK, finding.error
    assert finding.data["stdin"] == text  # verbatim, on stdin only
    assert finding.data["argv"] == [argument]  # one literal argument
    assert (victim / "keep").read_text() == "keep me"
    assert not any(p.exists() for p in pwned)


# -- output, failures, context (in-process workers) -------------------------


async def test_json_stdout_becomes_a_structured_finding(
    swarm: Swarm, settings: Settings, tmp_path: Path
) -> None:
    payload = {
        "content": "shipments stall at customs",
        "sources": ["notes/a.md:3-4", "b.md:1"],
        "usage": {"input_tokens": 1200, "output_tokens": 80},
        "data": {"confidence": 0.8},
        "other": "ignored",
    }
    script = _script(
        tmp_path,
        "structured.py",
        f"import json, sys\nsys.stdin.read()\nprint('  ' + json.dumps({payload!r}) + '\\n')\n",
    )
    bad = _script(tmp_path, "bad.py", 'print(\'{"content": "x", "sources": "a.md:1"}\')\n')
    async with running_worker(SPEC, ExecHandler.from_command(_command(script)), settings):
        good = await swarm.wait(await swarm.submit(SPEC, "where?"), timeout=30)
    async with running_worker(SPEC, ExecHandler.from_command(_command(bad)), settings):
        wrong = await swarm.wait(await swarm.submit(SPEC, "where?", max_attempts=1), timeout=30)
    assert good.status is Status.OK, good.error
    assert good.content == payload["content"]
    assert good.sources == tuple(payload["sources"])
    assert good.usage == payload["usage"]
    assert good.data == payload["data"]
    assert wrong.status is Status.FAILED
    assert wrong.error is not None and "'sources' must be a list of strings" in wrong.error


async def test_plain_stdout_is_the_content(swarm: Swarm, settings: Settings) -> None:
    text = "first line\n  indented {not json}\n\n"
    async with running_worker(SPEC, ExecHandler.from_command("cat"), settings):
        finding = await swarm.wait(await swarm.submit(SPEC, text), timeout=30)
    assert finding.status is Status.OK, finding.error
    assert finding.content == text  # the whole stdout, verbatim


def test_parse_output() -> None:
    assert parse_output("just text\n") == Result(content="just text\n")
    assert parse_output('{"answer": 42}') == Result(content='{"answer": 42}')
    assert parse_output("[1, 2]") == Result(content="[1, 2]")
    assert parse_output("{not json}") == Result(content="{not json}")
    assert parse_output('\n{"usage": {"tokens": 3}}\n') == Result(content="", usage={"tokens": 3})
    assert parse_output('{"content": 7, "sources": []}') == Result(content="7")
    # an answer object that names its list "sources" keeps all its keys
    kept = parse_output('{"answer": "42", "confidence": 0.9, "sources": ["a.md:3"]}')
    assert kept.sources == ("a.md:3",) and kept.data == {"answer": "42", "confidence": 0.9}
    assert json.loads(kept.content)["answer"] == "42"
    with pytest.raises(HandlerError):
        parse_output('{"content": "x", "usage": 3}')
    with pytest.raises(HandlerError):
        parse_output('{"content": "x", "sources": [1]}')


async def test_nonzero_exit_fails_with_stderr_then_dead_letters(
    swarm: Swarm, settings: Settings, tmp_path: Path
) -> None:
    script = _script(
        tmp_path,
        "fail.py",
        """
        import os, sys
        sys.stdin.read()
        print("partial output")
        sys.stderr.write("noise " * 2000 + "\\n")
        sys.stderr.write("BOOM on attempt " + os.environ["SWARMSTREAM_ATTEMPT"] + "\\n")
        sys.exit(3)
        """,
    )
    failer = ExecHandler.from_command(_command(script), name="failer")
    async with running_worker(SPEC, failer, settings):
        task = await swarm.submit(SPEC, "doomed", max_attempts=2)
        finding = await swarm.wait(task, timeout=30)
    assert finding.status is Status.FAILED
    assert finding.attempt == 2
    error = finding.error or ""
    assert "failed on all 2 attempts" in error
    assert "failer exited with code 3" in error
    assert "BOOM on attempt 2" in error
    assert len(error) < 2500  # only the tail of stderr
    dead = [d for d in await swarm.dead(SPEC) if d.task_id == task.id]
    assert len(dead) == 1
    assert dead[0].error is not None and "BOOM on attempt 2" in dead[0].error
    assert "exited with code 3" in dead[0].error


async def test_context_file_is_written_once_per_version_and_reused(
    swarm: Swarm, settings: Settings, tmp_path: Path
) -> None:
    report = _script(tmp_path, "report.py", REPORT)
    handler = ExecHandler.from_command(_command(report), max_context_files=1)
    shard = MemoryShard(swarm, "alpha", SPEC)
    await shard.load_documents([("notes/a.md", "alpha one\nalpha two\n"), ("b.md", "ünï beta")])
    v1 = await shard.context()
    assert v1 is not None
    async with running_worker(SPEC, handler, settings, concurrency=4):
        first = await shard.post(["q1", "q2", "q3", "q4"], pass_no=1)
        found = await swarm.wait_many(first, timeout=30)
        seen = [found[t.id].data for t in first]
        path = seen[0]["env"]["SWARMSTREAM_CONTEXT_FILE"]
        assert all(f.status is Status.OK for f in found.values())
        assert {s["env"]["SWARMSTREAM_SHARD"] for s in seen} == {"alpha"}
        assert {s["env"]["SWARMSTREAM_PASS"] for s in seen} == {"1"}
        assert {s["context"] for s in seen} == {v1.text}
        assert {s["env"]["SWARMSTREAM_CONTEXT_FILE"] for s in seen} == {path}
        assert {s["env"]["SWARMSTREAM_CONTEXT_VERSION"] for s in seen} == {str(v1.version)}
        assert len({tuple(s["context_id"]) for s in seen}) == 1, "the file was rewritten"
        assert handler.context_writes == 1
        folder = Path(path).parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert os.listdir(folder) == [Path(path).name]

        await shard.load_documents([("notes/a.md", "version two\n")])
        v2 = await shard.context()
        assert v2 is not None and v2.version != v1.version
        (task,) = await shard.post(["q5"], pass_no=2)
        later = (await swarm.wait(task, timeout=30)).data
        assert later["context"] == v2.text == "version two\n"
        assert later["env"]["SWARMSTREAM_CONTEXT_FILE"] != path
        assert handler.context_writes == 2
        # max_context_files=1: the old version's file is gone, only the new one is left
        assert os.listdir(folder) == [Path(later["env"]["SWARMSTREAM_CONTEXT_FILE"]).name]
        # a task without a shard gets no context file
        plain = await swarm.wait(await swarm.submit(SPEC, "no shard"), timeout=30)
        assert plain.data["env"]["SWARMSTREAM_CONTEXT_FILE"] is None  # unset
        assert "context" not in plain.data
    assert not folder.exists(), "the worker closes the handler, which removes the folder"


# -- the handler on its own --------------------------------------------------


async def test_children_of_a_timed_out_shell_command_are_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    handler = ExecHandler(
        [
            "sh",
            "-c",
            'sleep 100 & echo "$$ $!" > "$1.tmp"; mv "$1.tmp" "$1"; sleep 100',
            "sh",
            str(pidfile),
        ],
        kill_grace=0.5,
    )
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(handler(_task(), None), 1.5)
    assert time.monotonic() - started < 10
    pids = _pids(pidfile)
    assert len(pids) == 2
    await asyncio.to_thread(
        wait_until,
        lambda: not any(process_alive(p) for p in pids),
        10,
        "sh and its sleeps to be gone",
    )
    assert not handler._groups


async def test_leftover_children_do_not_hold_the_task(tmp_path: Path) -> None:
    """A command that exits but leaves a child holding stdout: the finding comes at
    once, and the child is killed."""
    pidfile = tmp_path / "pid"
    handler = ExecHandler(
        ["sh", "-c", 'sleep 100 & echo "$!" > "$1"; echo done', "sh", str(pidfile)],
        kill_grace=0.5,
    )
    started = time.monotonic()
    result = await asyncio.wait_for(handler(_task(), None), 20)
    assert result.content == "done\n"
    assert time.monotonic() - started < 10
    (pid,) = _pids(pidfile)
    await asyncio.to_thread(wait_until, lambda: not process_alive(pid), 10, "the leftover sleep")


async def test_large_input_and_output_do_not_deadlock() -> None:
    text = "".join(f"line {i} of a long task text\n" for i in range(100_000))  # ~3 MB
    result = await asyncio.wait_for(ExecHandler(["cat"])(_task(text), None), 60)
    assert result.content == text


async def test_output_is_capped() -> None:
    handler = ExecHandler(
        [sys.executable, "-c", "import sys; sys.stdout.write('x' * 1_000_000)"], max_output=1000
    )
    with pytest.raises(HandlerError, match="stdout exceeded 1000 bytes"):
        await asyncio.wait_for(handler(_task(), None), 30)


async def test_death_by_signal_is_reported() -> None:
    handler = ExecHandler(["sh", "-c", "echo dying >&2; kill -9 $$"])
    with pytest.raises(HandlerError, match=r"killed by SIGKILL; stderr: dying"):
        await asyncio.wait_for(handler(_task(), None), 30)


def test_construction_errors() -> None:
    for bad in ("", "   ", "claude 'unclosed"):
        with pytest.raises(ConfigError) as info:
            ExecHandler.from_command(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="command not found"):
        ExecHandler.from_command("surely-not-a-command-8f3a -p")
    with pytest.raises(ConfigError):
        ExecHandler("cat -n")  # type: ignore[arg-type]
    handler = ExecHandler.from_command("cat -n")
    assert handler.argv == ["cat", "-n"] and handler.name == "exec:cat"
    assert handler.needs_context is True


def test_worker_argv_exec_option() -> None:
    argv = worker_argv([SPEC], None, exec_command="claude -p --model x")
    at = argv.index("--exec")
    assert argv[at + 1] == "claude -p --model x" and "--handler" not in argv
    with pytest.raises(ConfigError):
        worker_argv([SPEC], "echo", exec_command="cat")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--handler", "echo", "--exec", "cat"], "mutually exclusive"),
        (["--exec", ""], "empty command"),
        (["--exec", "claude 'x"], "cannot parse command"),
        (["--exec", "surely-not-a-command-8f3a -p"], "command not found"),
    ],
)
def test_cli_exec_errors_are_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [*CLI, "worker", SPEC, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
