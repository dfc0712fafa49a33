"""Running a worker: in this process (with signal handling) or as a subprocess."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from swarmstream.errors import ConfigError
from swarmstream.handlers.base import Handler
from swarmstream.settings import Settings, env_names
from swarmstream.worker.execution import ContextProvider
from swarmstream.worker.hooks import WorkerHooks
from swarmstream.worker.worker import EphemeralWorker, WorkerSummary

#: gen0 threshold of the cyclic GC in a worker process (Python's default is 700)
GC_GEN0 = 10_000


def tune_gc() -> None:
    """Tune the cyclic GC for a worker process (not for a worker embedded in an app).

    A worker allocates a few short-lived objects per task while up to ``concurrency``
    tasks are in flight; with Python's default threshold the collector traverses all
    of them every few hundred allocations, which cost ~10% of a no-op task's CPU
    (benchmarks/throughput.py). Objects alive after start-up are frozen out of it."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0, gen1, gen2)


async def serve(worker: EphemeralWorker) -> WorkerSummary:
    """Run a worker until it stops; SIGTERM/SIGINT drain it, a second one forces."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal() -> None:
        worker.stop(force=worker.state.value == "draining")

    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        return await worker.run()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def run_worker(
    specs: Sequence[str] | str,
    handler: Handler | Callable[..., Any],
    settings: Settings | None = None,
    *,
    name: str | None = None,
    context: ContextProvider | None = None,
    hooks: Sequence[WorkerHooks] = (),
) -> WorkerSummary:
    """Run a worker in this process until it stops (blocking); the process is the
    worker's, so its GC is tuned (``tune_gc``). ``hooks`` hear what it does."""
    worker = EphemeralWorker(specs, handler, settings, name=name, context=context, hooks=hooks)
    tune_gc()
    return asyncio.run(serve(worker))


def worker_argv(
    specs: Sequence[str],
    handler: str | None,
    *,
    name: str | None = None,
    extra: Sequence[str] = (),
    exec_command: str | None = None,
) -> list[str]:
    """The command line of a worker subprocess (``python -m swarmstream worker``).

    ``handler`` is a ``--handler`` reference; ``exec_command`` runs an external command
    instead (``--exec``; pass ``handler=None`` with it). Neither means ``echo``. The
    settings do not appear here (``ps`` would show the URL's password): the child
    reads them from its environment (``worker_env``).
    """
    if handler is not None and exec_command is not None:
        raise ConfigError("give a handler or an exec command, not both")
    if handler is not None:
        chosen = ["--handler", handler]
    elif exec_command is not None:
        chosen = ["--exec", exec_command]
    else:
        chosen = []
    argv = [sys.executable, "-m", "swarmstream", "worker", *specs, *chosen]
    if name:
        argv += ["--name", name]
    return argv + list(extra)


def worker_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker subprocess: ``base`` (default: this process's)
    without any ``SWARMSTREAM_*`` setting variable of its own, plus one variable per
    setting of ``settings`` (``Settings.to_env``), so that the child resolves exactly
    these settings, password and timeouts included."""
    inherited = os.environ if base is None else base
    names = env_names()
    kept = {k: v for k, v in inherited.items() if k not in names}
    return {**kept, **settings.to_env()}


def spawn_worker(
    specs: Sequence[str],
    handler: str | None,
    settings: Settings,
    *,
    name: str | None = None,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    exec_command: str | None = None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start a worker as a subprocess (its own process group); returns the Popen.

    The settings travel in the child's environment (``worker_env``), never on its
    command line; ``env`` adds or overrides variables, ``extra`` adds arguments
    (flags win over the environment). ``exec_command`` (with ``handler=None``) makes
    it run that command per task."""
    return subprocess.Popen(
        worker_argv(specs, handler, name=name, extra=extra, exec_command=exec_command),
        env={**worker_env(settings), **(env or {})},
        start_new_session=True,
        **popen,
    )
