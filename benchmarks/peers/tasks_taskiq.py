"""The taskiq app of ``peer_taskiq.py``: taskiq-redis's stream broker, its Redis result
backend and one no-op task.

``taskiq worker tasks_taskiq:broker`` imports this module by name, so it is configured
from the environment that ``peer_taskiq.py`` sets for the worker (and for itself):
``PEER_URL`` and ``PEER_PREFIX``. Every key it creates starts with the prefix,
except the lock ``autoclaim:<group>:<stream>`` that the broker takes around XAUTOCLAIM.
"""

from __future__ import annotations

import os

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

REDIS_URL = os.environ.get("PEER_URL", "redis://localhost:6379/0")
PREFIX = os.environ.get("PEER_PREFIX", "peers-taskiq")

#: the task stream (``queue_name``); the consumer group keeps its default name
STREAM = f"{PREFIX}:taskiq"
GROUP = "taskiq"
#: results are stored as ``<RESULT_PREFIX>:<task_id>``
RESULT_PREFIX = f"{PREFIX}:result"

# Every other setting is the library's default: xread_count=100, xread_block=2000 ms,
# idle_timeout=600 s for XAUTOCLAIM, no MAXLEN; results kept without expiry.
broker = RedisStreamBroker(url=REDIS_URL, queue_name=STREAM).with_result_backend(
    RedisAsyncResultBackend(REDIS_URL, prefix_str=RESULT_PREFIX)
)


@broker.task
async def noop() -> None:
    """The no-op task: returns at once."""
