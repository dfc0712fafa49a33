"""The Celery app and no-op task of the peer benchmark (imported by worker and driver).

Configured from the environment: ``PEER_URL`` (broker and result backend) and
``PEER_PREFIX`` (queue name, and the global key prefix of both the broker's and
the result backend's keys, so a run's keys can be found and deleted).
"""

from __future__ import annotations

import os

from celery import Celery

URL = os.environ.get("PEER_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("PEER_PREFIX", "peer-celery")

app = Celery("tasks_celery", broker=URL, backend=URL)
app.conf.update(
    task_default_queue=PREFIX,
    broker_transport_options={"global_keyprefix": f"{PREFIX}:"},
    result_backend_transport_options={"global_keyprefix": f"{PREFIX}:"},
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)


@app.task(name="noop")
def noop() -> None:
    """The benchmark's task: does nothing."""
    return None
