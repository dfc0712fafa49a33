"""Shared helpers for the peer adapters (``peer_<name>.py``).

Dependency-free except for redis-py, so every peer venv can import it. An adapter
is run as a script (``python benchmarks/peers/peer_x.py ...``), so this folder is
``sys.path[0]`` and ``import harness`` works without installing anything.

The contract every adapter follows::

    <python> benchmarks/peers/peer_<name>.py --url REDIS_URL --mode throughput|latency \
        --n N --prefix PREFIX --workdir DIR [--warmup W]

and prints exactly one JSON object on its last stdout line (see ``result``)::

    {"peer": "celery", "label": "Celery 5.5.3 (Redis broker)", "version": "5.5.3",
     "mode": "throughput", "n": N, "seconds": S, "tasks_per_s": X,
     "samples_ms": [...],              # latency mode only
     "settings": {"concurrency": ..., "pool": ..., "prefetch": ..., ...},
     "completion": "how completion is observed, one sentence", "notes": "..."}

On failure (worker died, timeout, ...) an adapter exits non-zero with one line on
stderr (``run_main`` does that for any exception).

Interpreters (chosen by run.py): the peers run with ``.venv-peers/bin/python``, saq
with ``.venv-peers-saq/bin/python`` (see setup.py), swarmstream and raw with the
main venv's. The worker's console scripts are found next to the interpreter
(``bin_path``).

Typical adapter::

    def main(args: argparse.Namespace) -> dict[str, Any]:
        proc = harness.start_worker([...], args.workdir, env=harness.worker_env())
        try:
            harness.wait_until(lambda: ..., 30, "worker ready", proc=proc)
            ... warm up, measure with measure_throughput / measure_latency ...
            return harness.result(args, peer=..., label=..., version=..., ...)
        finally:
            harness.stop_worker(proc)
            harness.delete_keys(args.url, [f"{args.prefix}*", ...])

    if __name__ == "__main__":
        harness.run_main(main)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import redis

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

#: how often completion is polled in throughput mode (seconds)
POLL = 0.005
#: a throughput run fails when the completed count does not move for this long
STALL = 60.0
#: a latency sample fails after this long
TASK_TIMEOUT = 30.0
#: the worker must be ready within this long
READY_TIMEOUT = 60.0

now = time.perf_counter


class PeerError(RuntimeError):
    """A failure an adapter reports as its one-line error."""


# -- arguments and output -------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None, description: str = "") -> argparse.Namespace:
    """The contract's command line. ``workdir`` is created; ``n`` is at least 1."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", required=True, help="Redis URL (broker and result backend)")
    p.add_argument("--mode", choices=("throughput", "latency"), required=True)
    p.add_argument("--n", type=int, required=True, help="tasks (throughput) or requests")
    p.add_argument(
        "--prefix", required=True, help="prefix of every queue name / key this run creates"
    )
    p.add_argument("--workdir", required=True, type=Path, help="worker logs and scratch files")
    p.add_argument("--warmup", type=int, default=20, help="untimed tasks before measuring")
    args = p.parse_args(argv)
    if args.n < 1 or args.warmup < 0:
        p.error("--n must be at least 1 and --warmup at least 0")
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def pct(xs: Sequence[float], q: float) -> float:
    """Percentile by linear interpolation between closest ranks (q in 0..100)."""
    s = sorted(xs)
    if not s:
        raise ValueError("no samples")
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def result(
    args: argparse.Namespace,
    *,
    peer: str,
    label: str,
    version: str,
    settings: dict[str, Any],
    completion: str,
    seconds: float | None = None,
    samples: Sequence[float] | None = None,
    notes: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """The result object of the contract.

    Throughput mode: give ``seconds`` (first enqueue to last completion).
    Latency mode: give ``samples`` in seconds (one per request); ``seconds`` is
    their sum unless given, and ``tasks_per_s`` is ``n / seconds``.
    """
    out: dict[str, Any] = {"peer": peer, "label": label, "version": version, "mode": args.mode}
    if args.mode == "latency":
        if samples is None:
            raise ValueError("latency mode needs samples")
        out["n"] = len(samples)
        seconds = sum(samples) if seconds is None else seconds
        out["samples_ms"] = [round(s * 1000, 4) for s in samples]
        out["p50_ms"] = round(pct(samples, 50) * 1000, 4)
        out["p99_ms"] = round(pct(samples, 99) * 1000, 4)
    else:
        if seconds is None:
            raise ValueError("throughput mode needs seconds")
        out["n"] = args.n
    out["seconds"] = seconds
    out["tasks_per_s"] = out["n"] / seconds if seconds > 0 else 0.0
    out["settings"] = settings
    out["completion"] = completion
    out["notes"] = notes
    out.update(extra)
    return out


def emit(res: dict[str, Any]) -> None:
    """Print the result as the last stdout line (one JSON object)."""
    sys.stdout.flush()
    sys.stdout.write(json.dumps(res, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit non-zero."""
    sys.stderr.write(" ".join(str(message).split())[:2000] + "\n")
    sys.stderr.flush()
    raise SystemExit(code)


def run_main(main: Callable[[argparse.Namespace], dict[str, Any]], description: str = "") -> None:
    """Parse the contract's arguments, run ``main``, emit its result; any exception
    becomes a one-line error on stderr and exit code 1. SIGTERM unwinds like Ctrl-C,
    so ``finally`` blocks stop the worker and delete the keys."""

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    args = parse_args(description=description)
    try:
        res = main(args)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except SystemExit:
        raise
    except BaseException as exc:
        fail(f"{type(exc).__name__}: {exc}")
    emit(res)


# -- waiting ----------------------------------------------------------------------


def check_alive(proc: subprocess.Popen[bytes] | None) -> None:
    """Raise PeerError (with the tail of its log) if the worker process has exited."""
    if proc is not None and proc.poll() is not None:
        raise PeerError(f"worker exited early (rc {proc.returncode}); {log_tail(proc)}")


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    interval: float = 0.01,
    proc: subprocess.Popen[bytes] | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); raise
    PeerError after ``timeout`` seconds or when ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        check_alive(proc)
        if time.monotonic() > deadline:
            raise PeerError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


async def await_until(
    predicate: Callable[[], Awaitable[Any]],
    timeout: float,
    what: str,
    *,
    interval: float = 0.01,
    proc: subprocess.Popen[bytes] | None = None,
) -> Any:
    """``wait_until`` for an async predicate."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        check_alive(proc)
        if time.monotonic() > deadline:
            raise PeerError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


def poll_until_count(
    count: Callable[[], int],
    n: int,
    *,
    stall: float = STALL,
    interval: float = POLL,
    proc: subprocess.Popen[bytes] | None = None,
    what: str = "completed tasks",
) -> int:
    """Poll ``count()`` until it reaches ``n`` (returns the last count). Raise
    PeerError when it does not move for ``stall`` seconds or ``proc`` exits."""
    last, last_change = -1, time.monotonic()
    while True:
        done = count()
        if done >= n:
            return done
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > stall:
            raise PeerError(f"stalled for {stall:g}s at {done} of {n} {what}")
        check_alive(proc)
        time.sleep(interval)


async def apoll_until_count(
    count: Callable[[], Awaitable[int]],
    n: int,
    *,
    stall: float = STALL,
    interval: float = POLL,
    proc: subprocess.Popen[bytes] | None = None,
    what: str = "completed tasks",
) -> int:
    """``poll_until_count`` for an async counter."""
    last, last_change = -1, time.monotonic()
    while True:
        done = await count()
        if done >= n:
            return done
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > stall:
            raise PeerError(f"stalled for {stall:g}s at {done} of {n} {what}")
        check_alive(proc)
        await asyncio.sleep(interval)


# -- measuring ----------------------------------------------------------------------


def measure_throughput(
    enqueue: Callable[[int], Any],
    count: Callable[[], int],
    n: int,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    stall: float = STALL,
    interval: float = POLL,
) -> float:
    """Seconds from the start of ``enqueue(n)`` (which submits all n tasks) until
    ``count()`` reports n completed. ``count`` must count only this batch (take a
    baseline before, or use fresh keys)."""
    t0 = now()
    enqueue(n)
    poll_until_count(count, n, stall=stall, interval=interval, proc=proc)
    return now() - t0


async def ameasure_throughput(
    enqueue: Callable[[int], Awaitable[Any]],
    count: Callable[[], Awaitable[int]],
    n: int,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    stall: float = STALL,
    interval: float = POLL,
) -> float:
    """``measure_throughput`` with async callables."""
    t0 = now()
    await enqueue(n)
    await apoll_until_count(count, n, stall=stall, interval=interval, proc=proc)
    return now() - t0


def measure_latency(
    roundtrip: Callable[[int], Any],
    n: int,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    before: Callable[[int], Any] | None = None,
) -> list[float]:
    """Seconds of ``n`` sequential calls of ``roundtrip(i)`` (submit one task and
    wait for its result), one in flight; the worker is checked between calls.
    ``before(i)``, if given, runs untimed before each call (e.g. a random pause, so
    requests do not phase-lock with a worker that polls at a fixed interval)."""
    samples: list[float] = []
    for i in range(n):
        if before is not None:
            before(i)
        t0 = now()
        roundtrip(i)
        samples.append(now() - t0)
        check_alive(proc)
    return samples


async def ameasure_latency(
    roundtrip: Callable[[int], Awaitable[Any]],
    n: int,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    before: Callable[[int], Awaitable[Any]] | None = None,
) -> list[float]:
    """``measure_latency`` with an async round trip (and an async ``before``)."""
    samples: list[float] = []
    for i in range(n):
        if before is not None:
            await before(i)
        t0 = now()
        await roundtrip(i)
        samples.append(now() - t0)
        check_alive(proc)
    return samples


# -- the worker process -------------------------------------------------------------


def worker_env(
    extra: dict[str, str] | None = None, path: Iterable[Path] = (HERE,)
) -> dict[str, str]:
    """The environment for a worker: this one, with this folder (where the task
    modules live) first on PYTHONPATH, unbuffered output, and ``extra``."""
    env = dict(os.environ)
    parts = [str(p) for p in path]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if extra:
        env.update(extra)
    return env


def bin_path(name: str) -> str:
    """A console script of the running interpreter's venv (``celery``, ``rq``, ...)."""
    cand = Path(sys.executable).parent / name
    if not cand.exists():
        raise PeerError(f"{name} not found next to {sys.executable}")
    return str(cand)


def start_worker(
    argv: Sequence[str],
    workdir: Path,
    env: dict[str, str] | None = None,
    *,
    name: str = "worker",
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start the worker in its own session (so it and its children can be stopped
    together), stdout+stderr to ``workdir/<name>.log``, stdin closed."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env if env is not None else worker_env(),
            cwd=str(cwd or HERE),
            start_new_session=True,
        )
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


def log_tail(proc: subprocess.Popen[bytes], chars: int = 400) -> str:
    """The end of a worker's log, on one line."""
    path: Path | None = getattr(proc, "log_path", None)
    if path is None or not path.exists():
        return "no log"
    text = path.read_text(errors="replace")[-chars:]
    return f"log {path}: ..." + " | ".join(ln for ln in text.splitlines() if ln.strip())


def stop_worker(
    proc: subprocess.Popen[bytes] | None, timeout: float = 10.0, sig: int = signal.SIGTERM
) -> int | None:
    """SIGTERM the worker (warm shutdown in every framework here), wait up to
    ``timeout`` s, then SIGKILL its whole process group (its own session, so only
    processes it started). Returns its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    # children (prefork pools, work horses) of a worker that exited or hung
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout)
    return proc.returncode


# -- Redis keys ---------------------------------------------------------------------


def redis_client(url: str) -> redis.Redis:
    """A sync client with bytes replies."""
    return redis.Redis.from_url(url)


def scan_keys(url: str, patterns: Iterable[str]) -> list[bytes]:
    """Keys matching any of the SCAN MATCH patterns."""
    client = redis_client(url)
    try:
        found: set[bytes] = set()
        for pattern in patterns:
            found.update(client.scan_iter(match=pattern, count=5000))
        return sorted(found)
    finally:
        client.close()


def delete_keys(url: str, patterns: Iterable[str]) -> int:
    """UNLINK every key matching any of the patterns (SCAN MATCH; never FLUSH)."""
    client = redis_client(url)
    removed = 0
    try:
        for pattern in patterns:
            batch: list[bytes] = []
            for key in client.scan_iter(match=pattern, count=5000):
                batch.append(key)
                if len(batch) >= 1000:
                    removed += int(client.unlink(*batch))
                    batch.clear()
            if batch:
                removed += int(client.unlink(*batch))
    finally:
        client.close()
    return removed


def client_names(url: str) -> list[str]:
    """Names of the connections open on the server (CLIENT LIST), for readiness checks."""
    client = redis_client(url)
    try:
        return [str(c.get("name", "")) for c in client.client_list()]
    finally:
        client.close()


def blocked_clients(url: str, cmd: str | None = None) -> list[dict[str, Any]]:
    """Connections blocked in a command (flag ``b``), optionally of one command."""
    client = redis_client(url)
    try:
        return [
            c
            for c in client.client_list()
            if "b" in str(c.get("flags", "")) and (cmd is None or c.get("cmd") == cmd)
        ]
    finally:
        client.close()


def package_version(dist: str) -> str:
    """The installed version of a distribution, or ``"?"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"
