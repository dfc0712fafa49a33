"""The swarm exporter's metrics: one monitor snapshot as Prometheus metric families.

``families(snapshot)`` is pure (no Redis, no clock), so it is tested on constructed
snapshots; ``SwarmCollector`` asks a ``SnapshotSource`` for the current snapshot on
every scrape and adds the exporter's own health (``swarmstream_up`` and friends).

Every metric carries ``namespace``; per-spec ones add ``spec``, usage adds ``model``,
``shard`` and ``type`` (input, output, cache_read, cache_write), workers are counted
by ``state``. No label holds a task id or a worker name: the number of series grows
with specs, models, shards and states, never with tasks or workers. Counters come
from the stats and usage hashes Redis keeps (they only go back when Redis loses its
data); levels are gauges. A value Redis cannot give (a backlog on Redis 6.2) is left
out rather than exported as 0.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from swarmstream.accounting import BudgetState, Totals
from swarmstream.metrics.source import Reading
from swarmstream.models import WorkerState
from swarmstream.monitor.snapshot import ShardStats, Snapshot, SpecStats

log = logging.getLogger(__name__)

PREFIX = "swarmstream_"
#: token measures of ``Totals``, by the value of the ``type`` label
TOKEN_TYPES: tuple[tuple[str, str], ...] = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write", "cache_write_tokens"),
)

Value = float | int | None


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family of the exporter: name (without the prefix), kind, help."""

    name: str
    kind: Literal["gauge", "counter"]
    doc: str
    labels: tuple[str, ...]

    @property
    def full_name(self) -> str:
        """The exposed name (counters get ``_total`` on their sample)."""
        return PREFIX + self.name

    def new(self) -> GaugeMetricFamily | CounterMetricFamily:
        cls = GaugeMetricFamily if self.kind == "gauge" else CounterMetricFamily
        return cls(self.full_name, self.doc, labels=list(self.labels))


NS = ("namespace",)
SPEC = ("namespace", "spec")


def _oldest_seconds(s: SpecStats) -> Value:
    if s.oldest_pending_ms is not None:
        return s.oldest_pending_ms / 1000.0
    return 0.0 if s.pending == 0 else None


#: per spec: (family, value); None leaves the spec's sample out
SPEC_METRICS: tuple[tuple[Family, Callable[[SpecStats], Value]], ...] = (
    (
        Family("stream_entries", "gauge", "Entries in the spec's task stream (XLEN).", SPEC),
        lambda s: s.length,
    ),
    (
        Family(
            "backlog_tasks",
            "gauge",
            "Tasks no worker has been given yet (the consumer group's lag; Redis 7+).",
            SPEC,
        ),
        lambda s: s.backlog,
    ),
    (
        Family("pending_tasks", "gauge", "Tasks delivered to a worker, not yet acked.", SPEC),
        lambda s: s.pending,
    ),
    (
        Family(
            "oldest_pending_age_seconds",
            "gauge",
            "How long the oldest pending task has been in flight since its first delivery.",
            SPEC,
        ),
        _oldest_seconds,
    ),
    (
        Family("consumers", "gauge", "Consumers of the spec's consumer group.", SPEC),
        lambda s: s.consumers,
    ),
    (
        Family("dead_letters", "gauge", "Entries in the spec's dead-letter stream.", SPEC),
        lambda s: s.dead,
    ),
    (
        Family(
            "paused",
            "gauge",
            "1 while workers do not claim the spec's tasks (its budget or the namespace's "
            "is spent), else 0.",
            SPEC,
        ),
        lambda s: 1 if s.paused_by is not None else 0,
    ),
    (
        Family(
            "tasks_delivered",
            "counter",
            "Deliveries: first deliveries (Redis 7+) plus redeliveries.",
            SPEC,
        ),
        lambda s: s.delivered,
    ),
    (
        Family("tasks_completed", "counter", "Tasks whose finding is ok.", SPEC),
        lambda s: s.completed,
    ),
    (
        Family(
            "tasks_failed",
            "counter",
            "Tasks that ended failed or dead (final findings that are not ok).",
            SPEC,
        ),
        lambda s: s.failed,
    ),
    (
        Family("tasks_retried", "counter", "Failed attempts that were scheduled again.", SPEC),
        lambda s: s.retried,
    ),
    (
        Family(
            "tasks_redelivered",
            "counter",
            "Entries taken over from a dead or releasing worker.",
            SPEC,
        ),
        lambda s: s.redelivered,
    ),
)
#: live workers serving each spec (from the workers' heartbeats, not the group)
SPEC_WORKERS = Family("spec_workers", "gauge", "Live workers serving the spec.", SPEC)

#: usage counters per prefix: (suffix, help, value of a Totals)
USAGE_EXTRA: tuple[tuple[str, str, Callable[[Totals], Value]], ...] = (
    ("cost_usd", "Cost in USD, reported or computed from the price table.", lambda t: t.cost_usd),
    (
        "cost_computed_usd",
        "The part of the cost computed from the price table.",
        lambda t: t.cost_computed_usd,
    ),
    ("usage_attempts", "Attempts that reported usage.", lambda t: t.attempts),
    (
        "unpriced_attempts",
        "Attempts with tokens but no known cost (the cost is a floor).",
        lambda t: t.unpriced,
    ),
)

#: the usage breakdowns: family prefix, extra label, whose usage, how many of
#: USAGE_EXTRA (per model and per shard: the cost only, to keep the series few)
USAGE_SCOPES: tuple[tuple[str, str | None, str, int], ...] = (
    ("", None, "the spec", len(USAGE_EXTRA)),
    ("model_", "model", "the spec and model", 1),
    ("shard_", "shard", "the spec and memory shard", 1),
)


def _usage_family(prefix: str, suffix: str, doc: str, extra: str | None) -> Family:
    labels = (*SPEC, extra) if extra else SPEC
    return Family(f"{prefix}{suffix}", "counter", doc, labels)


def _token_family(prefix: str, extra: str | None, whose: str) -> Family:
    labels = (*SPEC, *((extra,) if extra else ()), "type")
    doc = f"Tokens used by {whose}, by type (input, output, cache_read, cache_write)."
    return Family(f"{prefix}tokens", "counter", doc, labels)


BUDGET_METRICS: tuple[tuple[str, str], ...] = (
    ("budget_limit_usd", "The budget in USD (only where one is set)."),
    ("budget_limit_tokens", "The budget in tokens (only where one is set)."),
    ("budget_left_usd", "USD left of the budget (never below 0)."),
    ("budget_left_tokens", "Tokens left of the budget (never below 0)."),
)

EXPORTER_METRICS: tuple[Family, ...] = (
    Family("up", "gauge", "1 if the last snapshot of the swarm succeeded, else 0.", NS),
    Family(
        "scrape_duration_seconds",
        "gauge",
        "Seconds the last snapshot of the swarm took (two pipelined round trips).",
        NS,
    ),
    Family(
        "snapshot_timestamp_seconds",
        "gauge",
        "When the snapshot served was taken (Redis server clock, Unix seconds).",
        NS,
    ),
    Family(
        "snapshot_age_seconds",
        "gauge",
        "Age of the snapshot served (snapshots are reused for --min-interval).",
        NS,
    ),
    Family("snapshots", "counter", "Snapshots the exporter took.", NS),
    Family("snapshot_errors", "counter", "Snapshots that failed (Redis away, timeout).", NS),
)

SPECS = Family("specs", "gauge", "Registered specializations.", NS)
WORKERS = Family("workers", "gauge", "Live workers, by state.", (*NS, "state"))
WORKERS_CONCURRENCY = Family("workers_concurrency", "gauge", "Task slots of live workers.", NS)
WORKERS_RUNNING = Family("workers_running_tasks", "gauge", "Tasks live workers are running.", NS)
SHARD = (*SPEC, "shard")
SHARDS = Family("shards", "gauge", "Registered memory shards.", NS)
SHARD_TOKENS = Family("shard_context_tokens", "gauge", "Tokens of a shard's context.", SHARD)
SHARD_PASS = Family("shard_pass", "gauge", "The workflow pass a shard is on.", SHARD)
SHARD_COLLECTED = Family(
    "shard_findings_collected", "counter", "Findings collected by a shard.", SHARD
)
SWARM_METRICS: tuple[Family, ...] = (
    SPECS,
    WORKERS,
    WORKERS_CONCURRENCY,
    WORKERS_RUNNING,
    SHARDS,
    SHARD_TOKENS,
    SHARD_PASS,
    SHARD_COLLECTED,
)


def all_families() -> list[Family]:
    """Every family the swarm exporter can expose (for docs and the dashboard test)."""
    out = [*EXPORTER_METRICS, *SWARM_METRICS, *(f for f, _ in SPEC_METRICS), SPEC_WORKERS]
    for prefix, extra, whose, n in USAGE_SCOPES:
        out.append(_token_family(prefix, extra, whose))
        out.extend(_usage_family(prefix, s, d, extra) for s, d, _ in USAGE_EXTRA[:n])
    for name, doc in BUDGET_METRICS:
        out.append(Family(name, "gauge", doc, SPEC))
        out.append(Family(f"namespace_{name}", "gauge", doc + " Namespace budget.", NS))
    return out


def families(snap: Snapshot) -> Iterator[Metric]:
    """The metrics of one snapshot (without the exporter's own health)."""
    ns = snap.namespace
    yield from _specs(snap, ns)
    yield from _usage(snap.specs, ns)
    yield from _budgets(snap, ns)
    yield from _workers(snap, ns)
    yield from _shards(snap.shards, ns)


def _specs(snap: Snapshot, ns: str) -> Iterator[Metric]:
    for family, value in SPEC_METRICS:
        metric = family.new()
        for s in snap.specs:
            if (v := value(s)) is not None:
                metric.add_metric([ns, s.name], v)
        yield metric
    serving = Counter(spec for w in snap.workers for spec in w.specs)
    workers = SPEC_WORKERS.new()
    for s in snap.specs:
        workers.add_metric([ns, s.name], serving[s.name])
    yield workers
    specs = SPECS.new()
    specs.add_metric([ns], len(snap.specs))
    yield specs


def _breakdown(s: SpecStats, extra: str | None) -> Mapping[str, Totals]:
    if extra is None:
        return {"": s.usage.total}
    return s.usage.models if extra == "model" else s.usage.shards


def _usage(specs: Iterable[SpecStats], ns: str) -> Iterator[Metric]:
    specs = list(specs)
    for prefix, extra, whose, n in USAGE_SCOPES:
        tokens = _token_family(prefix, extra, whose).new()
        others = [(_usage_family(prefix, s, d, extra).new(), f) for s, d, f in USAGE_EXTRA[:n]]
        for s in specs:
            for key, totals in _breakdown(s, extra).items():
                base = [ns, s.name, key] if extra else [ns, s.name]
                for label, attr in TOKEN_TYPES:
                    tokens.add_metric([*base, label], getattr(totals, attr))
                for metric, value in others:
                    metric.add_metric(base, value(totals) or 0)
        yield tokens
        for metric, _ in others:
            yield metric


def _budget_values(state: BudgetState) -> tuple[Value, Value, Value, Value]:
    usd_left, tokens_left = state.budget.left(state.spent)
    return state.budget.usd, state.budget.tokens, usd_left, tokens_left


def _budgets(snap: Snapshot, ns: str) -> Iterator[Metric]:
    for i, (name, doc) in enumerate(BUDGET_METRICS):
        per_spec = Family(name, "gauge", doc, SPEC).new()
        for s in snap.specs:
            if s.budget is not None and (v := _budget_values(s.budget)[i]) is not None:
                per_spec.add_metric([ns, s.name], v)
        yield per_spec
        whole = Family(f"namespace_{name}", "gauge", doc + " Namespace budget.", NS).new()
        if snap.budget is not None and (v := _budget_values(snap.budget)[i]) is not None:
            whole.add_metric([ns], v)
        yield whole


def _workers(snap: Snapshot, ns: str) -> Iterator[Metric]:
    by_state = {state: 0 for state in WorkerState}
    for w in snap.workers:
        by_state[w.state] += 1
    workers, slots, running = WORKERS.new(), WORKERS_CONCURRENCY.new(), WORKERS_RUNNING.new()
    for state, count in by_state.items():
        workers.add_metric([ns, state.value], count)
    slots.add_metric([ns], sum(w.concurrency for w in snap.workers))
    running.add_metric([ns], sum(len(w.current) for w in snap.workers))
    yield from (workers, slots, running)


def _shards(shards: Iterable[ShardStats], ns: str) -> Iterator[Metric]:
    count, tokens = SHARDS.new(), SHARD_TOKENS.new()
    pass_no, collected = SHARD_PASS.new(), SHARD_COLLECTED.new()
    n = 0
    for h in shards:
        n += 1
        labels = [ns, h.spec, h.id]
        tokens.add_metric(labels, h.tokens)
        if h.pass_no is not None:
            pass_no.add_metric(labels, h.pass_no)
        collected.add_metric(labels, h.collected)
    count.add_metric([ns], n)
    yield from (count, tokens, pass_no, collected)


def exporter_families(reading: Reading, namespace: str) -> Iterator[Metric]:
    """The exporter's own health: up, how long the snapshot took, how old it is."""
    up, duration, stamp, age, snapshots, errors = (f.new() for f in EXPORTER_METRICS)
    up.add_metric([namespace], 1 if reading.ok else 0)
    if reading.duration is not None:
        duration.add_metric([namespace], reading.duration)
    if reading.snapshot is not None:
        stamp.add_metric([namespace], reading.snapshot.time)
        age.add_metric([namespace], reading.age)
    snapshots.add_metric([namespace], reading.snapshots)
    errors.add_metric([namespace], reading.errors)
    yield from (up, duration, stamp, age, snapshots, errors)


class SwarmCollector(Collector):
    """A Prometheus collector over the snapshots of a ``SnapshotSource``.

    Register it on a ``CollectorRegistry`` of its own (never the global one): each
    scrape (``collect()``, in the HTTP server's request thread) asks the source for
    a snapshot, which takes a new one at most every ``min_interval`` seconds. While
    Redis is away only the exporter's own metrics are served, with ``swarmstream_up 0``.
    """

    def __init__(self, source: Source) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        try:
            reading = self.source.get()
        except Exception as exc:  # a scrape answers, whatever happened: up 0, never a 500
            log.exception("taking a snapshot failed")
            reading = Reading(snapshot=None, ok=False, error=exc)
        yield from exporter_families(reading, self.source.namespace)
        if reading.ok and reading.snapshot is not None:
            yield from families(reading.snapshot)


class Source(Protocol):
    """What ``SwarmCollector`` needs of a snapshot source (``SnapshotSource``)."""

    @property
    def namespace(self) -> str: ...

    def get(self) -> Reading: ...
