"""The arq worker settings and no-op job of the peer benchmark (worker and driver).

Configured from the environment: ``PEER_URL``, ``PEER_PREFIX`` (the queue name) and
``PEER_ARQ_POLL_DELAY`` (the worker's poll delay, default arq's own 0.5 s).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.logs import default_log_config

URL = os.environ.get("PEER_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("PEER_PREFIX", "peer-arq")
POLL_DELAY = float(os.environ.get("PEER_ARQ_POLL_DELAY", "0.5"))
MAX_JOBS = int(os.environ.get("PEER_CONCURRENCY", "10"))


async def noop(ctx: dict[str, Any]) -> None:
    """The benchmark's job: does nothing."""
    return None


#: arq's own log config at WARNING (``--custom-log-dict``): no line per job
LOG_CONFIG = default_log_config(False)
LOG_CONFIG["handlers"]["arq.standard"]["level"] = "WARNING"
LOG_CONFIG["loggers"]["arq"]["level"] = "WARNING"


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop]
    redis_settings = RedisSettings.from_dsn(URL)
    queue_name = PREFIX
    max_jobs = MAX_JOBS
    poll_delay = POLL_DELAY
