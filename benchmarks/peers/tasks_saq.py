"""The saq worker settings of ``peer_saq.py``: a Redis queue and one no-op function.

``saq tasks_saq.settings`` imports this module by name, so it is configured from the
environment that ``peer_saq.py`` sets for the worker: ``PEER_URL``,
``PEER_PREFIX`` (the queue name, so every key is ``saq:<prefix>:...`` or
``saq:job:<prefix>:...``) and ``PEER_CONCURRENCY`` (default 10, saq's own default).
"""

from __future__ import annotations

import os
from typing import Any

from saq import Queue

REDIS_URL = os.environ.get("PEER_URL", "redis://localhost:6379/0")
PREFIX = os.environ.get("PEER_PREFIX", "peers-saq")
#: saq.Worker's default ``concurrency``
CONCURRENCY = int(os.environ.get("PEER_CONCURRENCY", "10"))


async def noop(ctx: dict[str, Any]) -> None:
    """The no-op task: returns at once."""


# Everything else is saq's default: dequeue_timeout=0 (BLMOVE blocks until a job
# comes), timers (schedule 1 s, worker_info 10 s, sweep 60 s, abort 1 s), job ttl 600 s.
settings: dict[str, Any] = {
    "queue": Queue.from_url(REDIS_URL, name=PREFIX),
    "functions": [noop],
    "concurrency": CONCURRENCY,
}
