"""swarmstream: swarms of AI agents sharing work and memory through Redis Streams.

The library API::

    from swarmstream import Swarm, EphemeralWorker, Settings

    async with Swarm(settings) as swarm:
        task = await swarm.submit("research", "What limits throughput?")
        finding = await swarm.wait(task, timeout=60)
"""

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

__version__ = "0.1.0"

__all__ = [
    "DeadLetter",
    "Delivery",
    "EphemeralWorker",
    "Finding",
    "RedisSettings",
    "Result",
    "Retention",
    "Settings",
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
]
