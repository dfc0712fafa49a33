"""The background Redis of ``swarmstream up`` and ``swarmstream down``.

One daemonized redis-server per data directory (default ``~/.swarmstream/redis``,
or ``$SWARMSTREAM_HOME/redis``), bound to loopback and persisting with AOF. A state
file in the directory (``server.json``) records its port, pid and URL. A server
counts as ours only while the Redis answering on the recorded port reports the
recorded pid, so ``up`` never takes over, and ``down`` never stops, anything else.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from swarmstream.embedded import (
    EmbeddedRedis,
    Listener,
    free_port_near,
    identify,
    process_alive,
    server_pid,
)
from swarmstream.errors import ConfigError, EmbeddedServerError

#: Port of ``swarmstream up`` without ``--port``: the port of the default Redis URL,
#: so that every other command finds the server without further configuration.
DEFAULT_PORT = 6379
HOST = "127.0.0.1"
STATE_FILE = "server.json"


class ServerState(enum.StrEnum):
    STARTED = "started"  # up started a new server
    RUNNING = "running"  # up found ours already running and reused it
    STOPPED = "stopped"  # down stopped it
    ABSENT = "absent"  # down found nothing of ours running


@dataclass(frozen=True, slots=True)
class Status:
    """What ``up`` or ``down`` did, and where the server is (or was)."""

    state: ServerState
    dir: Path
    port: int | None = None
    pid: int | None = None
    url: str | None = None
    forced: bool = False  # down had to SIGKILL a server that ignored SIGTERM


@dataclass(frozen=True, slots=True)
class _Record:
    port: int
    pid: int
    url: str
    host: str
    started: float


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """The default data directory: ``$SWARMSTREAM_HOME/redis`` or ``~/.swarmstream/redis``."""
    env = os.environ if env is None else env
    return Path(env.get("SWARMSTREAM_HOME") or "~/.swarmstream").expanduser() / "redis"


def up(dir: Path | None = None, port: int | None = None, timeout: float = 15.0) -> Status:
    """Start our server in ``dir`` (on ``port``, default 6379), or reuse the running one.

    Raises EmbeddedServerError when anything else listens on the port, saying
    whether it is a Redis (and how to use it instead) or something else.
    """
    d = _resolve(dir)
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"invalid port {port}: use 1-65535")
    with _locked(d, create=True):
        rec = _read(d)
        if rec is not None and _ours(rec):
            if port is not None and port != rec.port:
                raise EmbeddedServerError(
                    f"the swarmstream Redis in {d} already runs on port {rec.port}; "
                    f"stop it with 'swarmstream down --dir {d}' to start it on port {port}"
                )
            return Status(ServerState.RUNNING, d, rec.port, rec.pid, rec.url)
        if rec is not None and _stuck(d, rec):
            raise EmbeddedServerError(
                f"redis-server pid {rec.pid} from an earlier 'swarmstream up' still runs in {d} "
                f"but does not answer on port {rec.port}; stop it with 'swarmstream down --dir {d}'"
            )
        _forget(d)
        chosen = port or DEFAULT_PORT
        found = identify(chosen, HOST)
        if found is not None:
            raise EmbeddedServerError(_occupied(found, chosen, d))
        server = EmbeddedRedis(dir=d, port=chosen, host=HOST, appendonly=True)
        url = server.start(daemonize=True, timeout=timeout)
        pid = server_pid(chosen, HOST) or server.read_pid()
        try:
            if pid is None:
                raise EmbeddedServerError(f"redis-server on port {chosen} did not report its pid")
            _write(d, _Record(chosen, pid, url, HOST, time.time()))
        except (OSError, EmbeddedServerError) as exc:
            server.stop()
            raise EmbeddedServerError(f"cannot record the server started in {d}: {exc}") from None
        return Status(ServerState.STARTED, d, chosen, pid, url)


def down(dir: Path | None = None, timeout: float = 30.0) -> Status:
    """Stop our server in ``dir`` (SIGTERM, then SIGKILL after ``timeout``); keep its data."""
    d = _resolve(dir)
    if not d.is_dir():
        return Status(ServerState.ABSENT, d)
    with _locked(d):
        rec = _read(d)
        if rec is None:
            return Status(ServerState.ABSENT, d)
        if not (_ours(rec) or _stuck(d, rec)):
            _forget(d)  # stale: the server is gone (or the pid now belongs to someone else)
            return Status(ServerState.ABSENT, d, rec.port)
        forced = _terminate(rec.pid, timeout)
        _forget(d)
        return Status(ServerState.STOPPED, d, rec.port, rec.pid, rec.url, forced)


def _occupied(found: Listener, port: int, d: Path) -> str:
    """Why ``up`` will not start on ``port``, and what to do instead."""
    other = f"start swarmstream's own on another port with --port {free_port_near(port, HOST)}"
    where = f"{HOST}:{port}"
    if not found.redis:
        return (
            f"port {port} on {HOST} is taken by something that is not Redis (it did not "
            f"answer PING); {other}"
        )
    if found.needs_auth:
        what = "a Redis server that asks for a password (it answered NOAUTH)"
        url = f"redis://:PASSWORD@{where}/0"
    else:
        what = f"a Redis server (version {found.version})" if found.version else "a Redis server"
        url = f"redis://{where}/0"
    return (
        f"{what} already answers on {where} and was not started by 'swarmstream up' in {d}: "
        f"use it with export SWARMSTREAM_REDIS_URL={url}, or {other}"
    )


def _resolve(dir: Path | None) -> Path:
    return (dir or home_dir()).expanduser().resolve()


@contextlib.contextmanager
def _locked(d: Path, create: bool = False) -> Iterator[None]:
    """Serialize ``up``/``down`` on one directory across processes."""
    try:
        if create:
            d.mkdir(parents=True, exist_ok=True)
        fh = (d / ".lock").open("a")
    except OSError as exc:
        raise EmbeddedServerError(f"cannot use {d} as the data directory: {exc}") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(d: Path) -> _Record | None:
    try:
        raw = json.loads((d / STATE_FILE).read_text("utf-8"))
        return _Record(
            port=int(raw["port"]),
            pid=int(raw["pid"]),
            url=str(raw["url"]),
            host=str(raw.get("host") or HOST),
            started=float(raw.get("started") or 0.0),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(d: Path, rec: _Record) -> None:
    tmp = d / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(rec), indent=2) + "\n", "utf-8")
    os.replace(tmp, d / STATE_FILE)


def _forget(d: Path) -> None:
    for name in (STATE_FILE, "redis.pid"):
        (d / name).unlink(missing_ok=True)


def _ours(rec: _Record) -> bool:
    """The Redis answering on the recorded port is the recorded process."""
    return server_pid(rec.port, rec.host) == rec.pid


def _stuck(d: Path, rec: _Record) -> bool:
    """Our redis-server still runs (per its pidfile and /proc) but does not answer."""
    try:
        pidfile = int((d / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return False
    return pidfile == rec.pid and process_alive(rec.pid) and _is_redis(rec.pid)


def _is_redis(pid: int) -> bool:
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False  # no /proc (or gone): never signal a process we cannot identify


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM and wait (Redis flushes its AOF on the way out); SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while process_alive(pid):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        else:
            return sig is signal.SIGKILL
    raise EmbeddedServerError(f"redis-server pid {pid} did not stop")
