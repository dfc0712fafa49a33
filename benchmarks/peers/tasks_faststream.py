"""The FastStream app of ``peer_faststream.py``: one subscriber on a Redis stream,
reading through a consumer group, with a no-op handler.

``faststream run tasks_faststream:app`` imports this module by name, so it is
configured from the environment that ``peer_faststream.py`` sets for the worker:
``PEER_URL``, ``PEER_PREFIX`` (the stream is ``<prefix>:faststream``) and
``PEER_CONCURRENCY`` (the subscriber's ``max_workers``).
"""

from __future__ import annotations

import logging
import os

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub

REDIS_URL = os.environ.get("PEER_URL", "redis://localhost:6379/0")
PREFIX = os.environ.get("PEER_PREFIX", "peers-faststream")
CONCURRENCY = int(os.environ.get("PEER_CONCURRENCY", "10"))

STREAM = f"{PREFIX}:faststream"
GROUP = "workers"
CONSUMER = "worker-1"

# log_level is the level of FastStream's per-message "Received"/"Processed" lines:
# DEBUG keeps them out of the log (the logger stays at INFO; handler errors are still
# logged at ERROR). `faststream run --log-level` would set both to the same level.
broker = RedisBroker(REDIS_URL, log_level=logging.DEBUG)
app = FastStream(broker)


# StreamSub defaults: XREADGROUP with BLOCK 100 ms (polling_interval) and no COUNT
# (max_records=None), ack after the handler returns (AckPolicy.REJECT_ON_ERROR).
@broker.subscriber(
    stream=StreamSub(STREAM, group=GROUP, consumer=CONSUMER), max_workers=CONCURRENCY
)
async def noop() -> None:
    """The no-op handler: returns at once (a request gets an empty reply)."""
