"""swarmstream: swarms of AI agents sharing work and memory through Redis Streams.

The library API::

    from swarmstream import Swarm, EphemeralWorker, Settings

    async with Swarm(settings) as swarm:
        task = await swarm.submit("research", "What limits throughput?")
        finding = await swarm.wait(task, timeout=60)

The names below are imported on first use (PEP 562), so that importing one
submodule (the CLI imports ``swarmstream.cli.app`` on every call) does not import
redis-py, the worker and everything else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarmstream.client import Swarm
    from swarmstream.errors import SwarmstreamError
    from swarmstream.models import (
        DeadLetter,
        Delivery,
        Finding,
        Result,
        Status,
        Task,
        WorkerInfo,
        WorkerState,
    )
    from swarmstream.settings import RedisSettings, Retention, Settings, WorkerSettings
    from swarmstream.worker import EphemeralWorker, WorkerSummary
    from swarmstream.worker.process import run_worker, spawn_worker
    from swarmstream.worker.shared_redis import SharedRedis, worker_redis

__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE = {
    "Swarm": "swarmstream.client",
    "SwarmstreamError": "swarmstream.errors",
    "DeadLetter": "swarmstream.models",
    "Delivery": "swarmstream.models",
    "Finding": "swarmstream.models",
    "Result": "swarmstream.models",
    "Status": "swarmstream.models",
    "Task": "swarmstream.models",
    "WorkerInfo": "swarmstream.models",
    "WorkerState": "swarmstream.models",
    "RedisSettings": "swarmstream.settings",
    "Retention": "swarmstream.settings",
    "Settings": "swarmstream.settings",
    "WorkerSettings": "swarmstream.settings",
    "EphemeralWorker": "swarmstream.worker",
    "WorkerSummary": "swarmstream.worker",
    "run_worker": "swarmstream.worker.process",
    "spawn_worker": "swarmstream.worker.process",
    "SharedRedis": "swarmstream.worker.shared_redis",
    "worker_redis": "swarmstream.worker.shared_redis",
}

__all__ = [
    "DeadLetter",
    "Delivery",
    "EphemeralWorker",
    "Finding",
    "RedisSettings",
    "Result",
    "Retention",
    "Settings",
    "SharedRedis",
    "Status",
    "Swarm",
    "SwarmstreamError",
    "Task",
    "WorkerInfo",
    "WorkerSettings",
    "WorkerState",
    "WorkerSummary",
    "__version__",
    "run_worker",
    "spawn_worker",
    "worker_redis",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'swarmstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next use is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
