"""Running a worker: in this process (with signal handling) or as a subprocess."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from swarmstream.errors import ConfigError
from swarmstream.handlers.base import Handler
from swarmstream.settings import Settings
from swarmstream.worker.execution import ContextProvider
from swarmstream.worker.worker import EphemeralWorker, WorkerSummary


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
) -> WorkerSummary:
    """Run a worker in this process until it stops (blocking)."""
    worker = EphemeralWorker(specs, handler, settings, name=name, context=context)
    return asyncio.run(serve(worker))


def worker_argv(
    specs: Sequence[str],
    handler: str | None,
    settings: Settings,
    *,
    name: str | None = None,
    extra: Sequence[str] = (),
    exec_command: str | None = None,
) -> list[str]:
    """The command line of a worker subprocess (``python -m swarmstream worker``).

    ``handler`` is a ``--handler`` reference; ``exec_command`` runs an external command
    instead (``--exec``; pass ``handler=None`` with it). Neither means ``echo``.
    """
    if handler is not None and exec_command is not None:
        raise ConfigError("give a handler or an exec command, not both")
    if handler is not None:
        chosen = ["--handler", handler]
    elif exec_command is not None:
        chosen = ["--exec", exec_command]
    else:
        chosen = []
    cfg = settings.worker
    argv = [
        sys.executable,
        "-m",
        "swarmstream",
        "--redis-url",
        settings.redis.url,
        "--namespace",
        settings.redis.namespace,
        "worker",
        *specs,
        *chosen,
        "--concurrency",
        str(cfg.concurrency),
        "--claim-idle",
        str(cfg.claim_idle),
    ]
    if name:
        argv += ["--name", name]
    if cfg.once:
        argv.append("--once")
    if cfg.max_tasks is not None:
        argv += ["--max-tasks", str(cfg.max_tasks)]
    if cfg.idle_exit is not None:
        argv += ["--idle-exit", str(cfg.idle_exit)]
    return argv + list(extra)


def settings_env(settings: Settings) -> dict[str, str]:
    """``SWARMSTREAM_*`` variables carrying the worker and retention settings that
    have no command-line flag, so a subprocess resolves the same settings."""
    flags = {"concurrency", "claim_idle", "once", "max_tasks", "idle_exit"}
    out: dict[str, str] = {}
    for section in (settings.worker, settings.retention):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if f.name not in flags and value is not None:
                out[f"SWARMSTREAM_{f.name.upper()}"] = str(value)
    return out


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

    ``exec_command`` (with ``handler=None``) makes it run that command per task."""
    full_env = {**os.environ, **settings_env(settings), **(env or {})}
    return subprocess.Popen(
        worker_argv(specs, handler, settings, name=name, extra=extra, exec_command=exec_command),
        env=full_env,
        start_new_session=True,
        **popen,
    )
