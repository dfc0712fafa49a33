"""The Dramatiq broker and no-op actor of the peer benchmark (worker and driver).

Configured from the environment: ``PEER_URL`` and ``PEER_PREFIX`` (the broker's
namespace and queue name; results go to the namespace ``<prefix>-results`` with
readable keys, so a run's keys can be found and deleted).
"""

from __future__ import annotations

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

URL = os.environ.get("PEER_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("PEER_PREFIX", "peer-dramatiq")

#: redis-py 8's connection pools hold at most 100 connections; with gevent every
#: greenlet may hold one, so the pools are sized to the worker's thread count.
MAX_CONNECTIONS = int(os.environ.get("PEER_MAX_CONNECTIONS", "1100"))


def _client() -> redis.Redis:
    return redis.Redis(
        connection_pool=redis.ConnectionPool.from_url(URL, max_connections=MAX_CONNECTIONS)
    )


broker = RedisBroker(client=_client(), namespace=PREFIX)
backend = RedisBackend(
    client=_client(), namespace=f"{PREFIX}-results", use_namespace_prefix_keys=True
)
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop", queue_name=PREFIX, store_results=True, max_retries=0)
def noop() -> None:
    """The benchmark's task: does nothing."""
    return None
