"""Outages never wedge a worker (issue 10, part 2): Redis down at start, Redis
stopped while a task runs, SIGTERM while Redis is down. Each test starts and stops
its own redis-server (AOF on, so a restart keeps the streams)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from helpers import TESTS, wait_until

from swarmstream import Settings, Task
from swarmstream.codec import encode_task
from swarmstream.embedded import EmbeddedRedis, free_port
from swarmstream.keys import GROUP, Keys
from swarmstream.worker.process import spawn_worker

SPEC = "outage"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own, not started yet."""
    srv = EmbeddedRedis(dir=tmp_path / "redis", port=free_port(), appendonly=True)
    yield srv
    srv.stop()


def _settings(server: EmbeddedRedis, **worker: object) -> Settings:
    flat = {
        "url": server.url,
        "namespace": "outage",
        "claim_idle": 2.0,
        "reclaim_interval": 0.2,
        "heartbeat_interval": 0.5,
        "block": 0.2,
        "grace": 3.0,
        **worker,
    }
    return Settings.from_flat(flat)


def _worker(
    settings: Settings, log: Path, handler: str = "echo", env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    with log.open("wb") as err:  # the child keeps its own copy of the descriptor
        return spawn_worker(
            [SPEC],
            handler,
            settings,
            extra=("--grace", str(settings.worker.grace)),
            env={"PYTHONPATH": path, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _submit(url: str, settings: Settings, task: Task) -> None:
    r = redis.Redis.from_url(url)
    r.xadd(Keys(settings.redis.namespace).spec(SPEC).tasks, encode_task(task))
    r.close()


def _done(url: str, settings: Settings, task_id: str) -> bool:
    r = redis.Redis.from_url(url)
    try:
        return bool(r.exists(Keys(settings.redis.namespace).spec(SPEC).done(task_id)))
    except redis.ConnectionError:
        return False
    finally:
        r.close()


def _end(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_a_worker_started_before_redis_serves_once_it_is_up(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    settings = _settings(server)
    log = tmp_path / "worker.log"
    proc = _worker(settings, log)
    try:
        wait_until(
            lambda: log.read_text().count("not reachable") >= 2, timeout=30, what="two tries"
        )
        assert proc.poll() is None, "the worker waits instead of exiting"
        server.start()
        up = time.monotonic()
        task = Task(spec=SPEC, text="after the outage")
        _submit(server.url, settings, task)
        wait_until(lambda: _done(server.url, settings, task.id), timeout=30, what="a finding")
        took = time.monotonic() - up
        print(f"\nRedis up -> first finding of a waiting worker: {took:.2f}s")
        assert took < 10
    finally:
        assert _end(proc) == 0


def test_connect_wait_bounds_the_wait(server: EmbeddedRedis, tmp_path: Path) -> None:
    settings = _settings(server)
    log = tmp_path / "worker.log"
    started = time.monotonic()
    proc = _worker(settings, log, env={"SWARMSTREAM_CONNECT_WAIT": "1.5"})
    assert proc.wait(30) == 3
    elapsed = time.monotonic() - started
    err = log.read_text()
    assert "cannot reach Redis" in err and "Traceback" not in err
    assert 1.5 <= elapsed < 10


def test_sigterm_while_redis_is_down_exits_within_grace(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    server.start()
    settings = _settings(server, grace=3.0)
    log = tmp_path / "worker.log"
    proc = _worker(settings, log)
    r = redis.Redis.from_url(server.url)
    wait_until(lambda: r.zcard(Keys("outage").workers) == 1, what="worker registered")
    r.close()
    server.stop()
    time.sleep(0.5)  # the worker notices: its reads fail
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    elapsed = time.monotonic() - started
    assert code == 0, log.read_text()[-2000:]
    assert elapsed < settings.worker.grace + 1.5, f"took {elapsed:.1f}s"


def test_a_finding_made_during_an_outage_is_recorded_when_redis_is_back(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    """The handler finishes while Redis is down, longer than claim_idle: the write
    keeps trying, and lands (attempt 1, nothing left pending) once Redis is back."""
    server.start()
    settings = _settings(server)
    log = tmp_path / "worker.log"
    proc = _worker(settings, log, handler="workload:nap")
    try:
        r = redis.Redis.from_url(server.url)
        wait_until(lambda: r.zcard(Keys("outage").workers) == 1, what="worker registered")
        task = Task(spec=SPEC, text="slow", data={"seconds": 1.5})
        _submit(server.url, settings, task)
        keys = Keys("outage").spec(SPEC)
        wait_until(lambda: r.xpending(keys.tasks, GROUP)["pending"] == 1, what="task taken")
        r.close()
        server.stop()
        time.sleep(settings.worker.claim_idle * 2)  # the handler ends; Redis is away
        server.start()
        wait_until(lambda: _done(server.url, settings, task.id), timeout=30, what="the finding")
        r = redis.Redis.from_url(server.url)
        [(_, fields)] = r.xrange(keys.findings)
        assert fields[b"status"] == b"ok"
        assert r.xpending(keys.tasks, GROUP)["pending"] == 0
        r.close()
    finally:
        assert _end(proc) == 0, log.read_text()[-2000:]
