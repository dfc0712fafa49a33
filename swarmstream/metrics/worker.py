"""A worker's own metrics: a ``WorkerHooks`` that counts what one worker process does.

``WorkerMetrics`` keeps its metrics on a ``CollectorRegistry`` of its own (with the
process's CPU, memory and GC metrics), served by ``worker --metrics-port``:

- ``swarmstream_worker_tasks_total{spec,outcome}``: executions by how they ended
  (done, duplicate, retried, failed, dead, lost);
- ``swarmstream_worker_handler_duration_seconds{spec,outcome}``: how long the handler
  ran, in buckets from 10 ms to 30 minutes (an LLM call takes seconds to minutes);
- ``swarmstream_worker_lease_events_total{spec,event}``: leases renewed, lost,
  reclaimed from dead workers, recovered after a lost reply, released at exit (each
  entry counts once);
- ``swarmstream_worker_reconnects_total``;
- ``swarmstream_worker_state{state}``: 1 for the worker's current state, 0 for the others;
- ``swarmstream_worker_tokens_total{spec,model,type}`` and
  ``swarmstream_worker_cost_usd_total{spec,model}``: what the attempts reported spending;
- ``swarmstream_worker_info{worker,host}``: 1, to tell the worker's series apart.

Every metric carries ``namespace``. The hooks run on the worker's event loop, so
each does a few dictionary lookups and counter increments, nothing more.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from swarmstream.models import WorkerState
from swarmstream.worker.hooks import LeaseEvent, OutcomeEvent, WorkerHooks

#: handler duration buckets (seconds): 10 ms to 30 min
DURATION_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1200.0,
    1800.0,
)
#: distinct model names kept as label values; more are counted as "other"
MAX_MODELS = 50
#: ``type`` label value -> attribute (or key) of a usage report
TOKEN_FIELDS = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write", "cache_write_tokens"),
)


def _field(usage: Any, name: str) -> Any:
    if isinstance(usage, Mapping):
        return usage.get(name)
    return getattr(usage, name, None)


def _amount(value: Any) -> float:
    """A usage figure as a non-negative finite number (anything else counts 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) and number > 0 else 0.0


class WorkerMetrics(WorkerHooks):
    """Prometheus metrics of one worker process, fed by the worker's hooks.

    Pass it to the worker (``EphemeralWorker(..., hooks=[metrics])``) and serve
    ``metrics.registry`` (``swarmstream.metrics.server.MetricsServer``)."""

    def __init__(
        self,
        namespace: str = "",
        worker: str = "",
        *,
        registry: CollectorRegistry | None = None,
        process: bool = True,
    ) -> None:
        """``process``: add the process's CPU, memory, file descriptor and GC metrics."""
        self.namespace = namespace
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        ns = ["namespace"]
        self.tasks = Counter(
            "swarmstream_worker_tasks",
            "Task executions of this worker, by how they ended.",
            [*ns, "spec", "outcome"],
            registry=reg,
        )
        self.duration = Histogram(
            "swarmstream_worker_handler_duration_seconds",
            "Seconds the handler ran, by how the execution ended.",
            [*ns, "spec", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.lease_events = Counter(
            "swarmstream_worker_lease_events",
            "Lease bookkeeping, in entries: renewed, lost, reclaimed, recovered, released.",
            [*ns, "spec", "event"],
            registry=reg,
        )
        self.reconnects = Counter(
            "swarmstream_worker_reconnects",
            "Times the connection to Redis failed and was re-established.",
            ns,
            registry=reg,
        )
        self.state_gauge = Gauge(
            "swarmstream_worker_state",
            "1 for the worker's current state, 0 for the others.",
            [*ns, "state"],
            registry=reg,
        )
        self.tokens = Counter(
            "swarmstream_worker_tokens",
            "Tokens the attempts of this worker reported, by model and type.",
            [*ns, "spec", "model", "type"],
            registry=reg,
        )
        self.cost = Counter(
            "swarmstream_worker_cost_usd",
            "Cost in USD the attempts of this worker reported, by model.",
            [*ns, "spec", "model"],
            registry=reg,
        )
        self.info = Gauge(
            "swarmstream_worker_info",
            "1, labelled with the worker's name and host.",
            [*ns, "worker", "host"],
            registry=reg,
        )
        self.reconnects.labels(namespace)  # served as 0 from the start
        self._models: set[str] = set()
        for state in WorkerState:
            self.state_gauge.labels(namespace, state.value).set(0)
        self.state_gauge.labels(namespace, WorkerState.STARTING.value).set(1)
        if worker:
            self.identify(worker)
        if process:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)

    def identify(self, worker: str, host: str | None = None) -> None:
        """Name the worker in ``swarmstream_worker_info``."""
        self.info.clear()
        self.info.labels(self.namespace, worker, host or socket.gethostname()).set(1)

    # -- hooks --------------------------------------------------------------

    def outcome(self, event: OutcomeEvent) -> None:
        kind = event.kind.value
        self.tasks.labels(self.namespace, event.spec, kind).inc()
        if event.duration is not None and event.duration >= 0:
            self.duration.labels(self.namespace, event.spec, kind).observe(event.duration)
        if event.usage is not None:
            self._spent(event.spec, event.usage)

    def state(self, old: WorkerState, new: WorkerState) -> None:
        self.state_gauge.labels(self.namespace, old.value).set(0)
        self.state_gauge.labels(self.namespace, new.value).set(1)

    def lease(self, event: LeaseEvent) -> None:
        self.lease_events.labels(self.namespace, event.spec, event.kind.value).inc(event.count)

    def reconnect(self) -> None:
        self.reconnects.labels(self.namespace).inc()

    # -- usage --------------------------------------------------------------

    def _model(self, usage: Any) -> str:
        model = _field(usage, "model")
        if not isinstance(model, str) or not model:
            return ""
        if model not in self._models:
            if len(self._models) >= MAX_MODELS:
                return "other"
            self._models.add(model)
        return model

    def _spent(self, spec: str, usage: Any) -> None:
        model = self._model(usage)
        for label, name in TOKEN_FIELDS:
            if amount := _amount(_field(usage, name)):
                self.tokens.labels(self.namespace, spec, model, label).inc(amount)
        if cost := _amount(_field(usage, "cost_usd")):
            self.cost.labels(self.namespace, spec, model).inc(cost)
