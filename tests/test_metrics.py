"""Prometheus metrics: the swarm exporter (``swarmstream metrics``) and a worker's own
endpoint (``worker --metrics-port``), end to end against real Redis and real
processes, scraped over HTTP and parsed with prometheus_client's parser; the metric
families of constructed snapshots (pure); the Grafana dashboard against both."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import kill9, spawn, stop, wait_until
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from swarmstream import Settings, Swarm, Task
from swarmstream.accounting import Budget, BudgetState, SpecUsage, Totals
from swarmstream.embedded import EmbeddedRedis, free_port
from swarmstream.keys import Keys
from swarmstream.metrics.server import swarm_registry
from swarmstream.metrics.source import Reading, SnapshotSource
from swarmstream.metrics.swarm import SwarmCollector, all_families
from swarmstream.metrics.worker import DURATION_BUCKETS, MAX_MODELS, WorkerMetrics
from swarmstream.models import WorkerInfo, WorkerState
from swarmstream.monitor.snapshot import ShardStats, Snapshot, SpecStats
from swarmstream.worker.hooks import Kind, LeaseEvent, LeaseKind, OutcomeEvent

DASHBOARD = Path(__file__).resolve().parent.parent / "configs" / "grafana-dashboard.json"


# -- scraping ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    """One /metrics answer, parsed: (sample name, labels) -> value."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    families: frozenset[str]
    text: str

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        names = set()
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        return cls(samples, frozenset(names), text)

    def get(self, name: str, **labels: str) -> float | None:
        """The sum of the samples ``name`` whose labels include ``labels`` (None: none)."""
        found = [
            v for (n, ls), v in self.samples.items() if n == name and set(labels.items()) <= set(ls)
        ]
        return sum(found) if found else None

    def names(self) -> set[str]:
        return {n for n, _ in self.samples}


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=15) as reply:
        assert reply.status == 200
        return Scrape.parse(reply.read().decode())


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def scrape_until(url: str, check: Any, what: str, timeout: float = 30.0) -> Scrape:
    """Scrape until ``check(scrape)`` holds; fail with the last scrape after ``timeout``."""
    last: list[Scrape] = []

    def ok() -> bool:
        last[:] = [scrape(url)]
        return bool(check(last[0]))

    try:
        wait_until(ok, timeout, what)
    except AssertionError as exc:
        body = "\n".join(
            line for line in (last[0].text if last else "").splitlines() if line[:1] != "#"
        )
        raise AssertionError(f"{exc}; last scrape:\n{body[-4000:]}") from None
    return last[0]


@contextlib.contextmanager
def exporter(url: str, namespace: str, tmp_path: Path, *extra: str) -> Iterator[ExporterProc]:
    """``swarmstream metrics`` as a subprocess on a free port, until it answers."""
    port = free_port()
    log = tmp_path / f"metrics-{port}.log"
    argv = [sys.executable, "-m", "swarmstream", "--redis-url", url, "--namespace", namespace]
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*argv, "metrics", "--port", str(port), "--min-interval", "0.1", *extra],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    handle = ExporterProc(proc, f"http://127.0.0.1:{port}/metrics", log)
    try:
        wait_until(lambda: proc.poll() is not None or _answers(handle.url), 30, "exporter")
        assert proc.poll() is None, f"exporter exited: {handle.stderr()}"
        yield handle
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                kill9(proc)
                raise


@dataclass
class ExporterProc:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def _submit(settings: Settings, tasks: list[Task]) -> None:
    async def go() -> None:
        async with Swarm(settings) as swarm:
            await swarm.submit_many(tasks)

    asyncio.run(go())


def _redis7(url: str) -> bool:
    r = redis.Redis.from_url(url)
    try:
        return int(str(r.info("server")["redis_version"]).split(".")[0]) >= 7
    finally:
        r.close()


# -- the swarm exporter, end to end -------------------------------------------------


def test_exporter_serves_backlog_pending_completions_and_workers(
    settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    ns = settings.redis.namespace
    _submit(settings, [Task(spec="done", text=f"d{i}") for i in range(3)])
    _submit(settings, [Task(spec="queued", text=f"q{i}") for i in range(4)])
    _submit(settings, [Task(spec="held", text=f"h{i}") for i in range(3)])
    idle = spawn(settings, ["done"], "echo", name="w-idle")
    busy = spawn(settings, ["held"], "workload:hang", ("--concurrency", "2"), name="w-busy")
    try:
        with exporter(redis_url, ns, tmp_path) as exp:

            def settled(s: Scrape) -> bool:
                return (
                    s.get("swarmstream_tasks_completed_total", spec="done") == 3
                    and s.get("swarmstream_pending_tasks", spec="held") == 2
                    and s.get("swarmstream_workers", state="busy") == 1
                    and s.get("swarmstream_workers", state="idle") == 1
                    and s.get("swarmstream_workers_running_tasks") == 2
                )

            s = scrape_until(exp.url, settled, "3 completed, 2 pending, a busy and an idle worker")
            assert s.get("swarmstream_up") == 1
            assert s.get("swarmstream_up", namespace=ns) == 1
            assert s.get("swarmstream_specs") == 3
            assert s.get("swarmstream_stream_entries", spec="queued") == 4
            assert s.get("swarmstream_pending_tasks", spec="queued") == 0
            assert s.get("swarmstream_pending_tasks", spec="done") == 0
            if _redis7(redis_url):  # the group's lag: Redis 7+
                assert s.get("swarmstream_backlog_tasks", spec="queued") == 4
                assert s.get("swarmstream_backlog_tasks", spec="held") == 1
                assert s.get("swarmstream_backlog_tasks", spec="done") == 0
            assert s.get("swarmstream_tasks_failed_total", spec="done") == 0
            assert s.get("swarmstream_dead_letters", spec="done") == 0
            assert (s.get("swarmstream_oldest_pending_age_seconds", spec="held") or 0) > 0
            assert s.get("swarmstream_oldest_pending_age_seconds", spec="queued") == 0
            assert s.get("swarmstream_workers") == 2  # summed over states
            assert s.get("swarmstream_spec_workers", spec="held") == 1
            assert s.get("swarmstream_spec_workers", spec="queued") == 0
            assert s.get("swarmstream_paused", spec="held") == 0
            assert (s.get("swarmstream_scrape_duration_seconds") or 0) > 0
            # bounded labels: no worker names, no task ids
            assert "w-idle" not in s.text and "w-busy" not in s.text
            # every family served is one the exporter documents
            documented = {f.full_name for f in all_families()}
            served = {f for f in s.families if f.startswith("swarmstream_")}
            assert served <= documented, served - documented
            # the completed counter goes on from there: one more task
            _submit(settings, [Task(spec="done", text="d3")])
            scrape_until(
                exp.url,
                lambda s: s.get("swarmstream_tasks_completed_total", spec="done") == 4,
                "a 4th completion",
            )
            assert exp.proc.poll() is None
        assert exp.proc.returncode == 0, exp.stderr()  # SIGTERM: a clean exit
        assert "Traceback" not in exp.stderr()
    finally:
        kill9(busy)
        stop(idle)


def test_exporter_serves_up_0_while_redis_is_away_and_recovers(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = EmbeddedRedis(dir=tmp_path / "redis", port=port, appendonly=False)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        # nothing listens on the port when the exporter starts
        with exporter(url, "away", tmp_path, "--timeout", "1") as exp:
            s = scrape(exp.url)
            assert s.get("swarmstream_up") == 0
            assert s.get("swarmstream_specs") is None  # no data, not zeros
            assert (s.get("swarmstream_snapshot_errors_total") or 0) >= 1
            wait_until(lambda: "serving swarmstream_up 0" in exp.stderr(), 10, "the reason")
            server.start()
            _submit(
                Settings.from_flat({"url": url, "namespace": "away"}),
                [Task(spec="research", text="hello")],
            )
            s = scrape_until(
                exp.url,
                lambda s: (
                    s.get("swarmstream_up") == 1
                    and s.get("swarmstream_stream_entries", spec="research") == 1
                ),
                "up again",
            )
            server.stop()
            s = scrape_until(exp.url, lambda s: s.get("swarmstream_up") == 0, "down again")
            assert s.get("swarmstream_stream_entries") is None
            assert s.get("swarmstream_snapshot_timestamp_seconds") is not None  # last good one
            assert exp.proc.poll() is None  # still serving
        assert exp.proc.returncode == 0, exp.stderr()
        assert "Traceback" not in exp.stderr()
    finally:
        server.stop()


def _busy_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


def test_a_port_in_use_is_one_line_and_exit_1(settings: Settings) -> None:
    sock, port = _busy_port()
    base = [sys.executable, "-m", "swarmstream", "--redis-url", settings.redis.url]
    base += ["--namespace", settings.redis.namespace]
    try:
        for command in (
            ["metrics", "--port", str(port)],
            ["worker", "x", "--metrics-port", str(port)],
        ):
            done = subprocess.run(
                [*base, *command], capture_output=True, text=True, timeout=60, check=False
            )
            assert done.returncode == 1, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
            assert "in use" in lines[0] and str(port) in lines[0]
    finally:
        sock.close()


# -- the exporter in this process: usage, budgets, caching, timeouts ------------------


def test_usage_and_budgets_from_redis(raw: redis.Redis, settings: Settings) -> None:
    ns = settings.redis.namespace
    keys = Keys(ns)
    _submit(settings, [Task(spec="research", text="t")])
    # the fields the Lua steps write (swarmstream.accounting), and budgets
    raw.hset(
        keys.spec("research").usage,
        mapping={
            "input": "1000",
            "output": "200",
            "cost": "0.5",
            "attempts": "3",
            "model:claude-x:input": "600",
            "model:claude-x:output": "150",
            "model:claude-x:cost": "0.4",
            "shard:kb-1:input": "300",
            "shard:kb-1:cost": "0.1",
        },
    )
    raw.hset(keys.spec("research").budget, mapping={"usd": "2.0", "tokens": "5000"})
    raw.hset(keys.budget, mapping={"usd": "0.25"})
    source = SnapshotSource(settings, min_interval=0.0).start()
    try:
        s = Scrape.parse(generate_latest(swarm_registry(source)).decode())
    finally:
        source.close()
    assert s.get("swarmstream_up") == 1
    assert s.get("swarmstream_tokens_total", spec="research", type="input") == 1000
    assert s.get("swarmstream_tokens_total", spec="research") == 1200
    assert s.get("swarmstream_cost_usd_total", spec="research") == 0.5
    assert s.get("swarmstream_usage_attempts_total", spec="research") == 3
    assert s.get("swarmstream_model_tokens_total", model="claude-x", type="output") == 150
    assert s.get("swarmstream_model_cost_usd_total", model="claude-x") == 0.4
    assert s.get("swarmstream_shard_tokens_total", shard="kb-1", type="input") == 300
    assert s.get("swarmstream_shard_cost_usd_total", shard="kb-1") == 0.1
    assert s.get("swarmstream_budget_limit_usd", spec="research") == 2.0
    assert s.get("swarmstream_budget_left_usd", spec="research") == 1.5
    assert s.get("swarmstream_budget_left_tokens", spec="research") == 3800
    assert s.get("swarmstream_namespace_budget_limit_usd") == 0.25
    assert s.get("swarmstream_namespace_budget_left_usd") == 0.0
    assert s.get("swarmstream_namespace_budget_left_tokens") is None  # no token limit
    assert s.get("swarmstream_paused", spec="research") == 1  # the namespace's is spent


def test_scrapes_share_one_snapshot_per_min_interval(settings: Settings) -> None:
    source = SnapshotSource(settings, min_interval=60.0).start()
    readings: list[Reading] = []
    try:
        threads = [
            threading.Thread(target=lambda: readings.append(source.get())) for _ in range(16)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(readings) == 16 and all(r.ok for r in readings)
        assert {r.snapshots for r in readings} == {1}  # one snapshot for 16 scrapes
        assert source.get().snapshots == 1
    finally:
        source.close()
    again = SnapshotSource(settings, min_interval=0.0).start()
    try:
        assert [again.get().snapshots for _ in range(3)] == [1, 2, 3]
    finally:
        again.close()


def test_a_redis_that_never_answers_costs_a_scrape_at_most_the_timeout(tmp_path: Path) -> None:
    """A server that accepts connections and never replies (a hung Redis)."""
    sock, port = _busy_port()  # the kernel completes the handshake; nobody reads
    settings = Settings.from_flat({"url": f"redis://127.0.0.1:{port}/0", "namespace": "hung"})
    source = SnapshotSource(settings, min_interval=0.0, timeout=0.5).start()
    try:
        for _ in range(2):
            started = time.monotonic()
            reading = source.get()
            assert time.monotonic() - started < 3.0
            assert not reading.ok and reading.snapshot is None
            assert reading.error is not None
        s = Scrape.parse(generate_latest(swarm_registry(source)).decode())
        assert s.get("swarmstream_up") == 0
        assert s.names() <= {
            "swarmstream_up",
            "swarmstream_scrape_duration_seconds",
            "swarmstream_snapshots_total",
            "swarmstream_snapshot_errors_total",
        }
    finally:
        source.close()
        sock.close()


# -- a worker's own metrics ------------------------------------------------------------


def test_worker_metrics_port_counts_outcomes_and_durations(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    _submit(settings, [Task(spec="research", text=f"t{i}") for i in range(3)])
    with (tmp_path / "worker.log").open("wb") as err:
        w = spawn(
            settings,
            ["research"],
            "workload:fail_first",  # attempt 1 fails (retried), attempt 2 is done
            ("--metrics-port", str(port)),
            name="metrics-w",
            stderr=err,
        )
    try:
        wait_until(lambda: w.poll() is not None or _answers(url), 30, "worker metrics")
        assert w.poll() is None, (tmp_path / "worker.log").read_text()
        s = scrape_until(
            url,
            lambda s: s.get("swarmstream_worker_tasks_total", outcome="done") == 3,
            "3 tasks done",
        )
        ns = settings.redis.namespace
        assert s.get("swarmstream_worker_tasks_total", outcome="retried", spec="research") == 3
        assert s.get("swarmstream_worker_tasks_total", namespace=ns) == 6
        assert s.get("swarmstream_worker_handler_duration_seconds_count", outcome="done") == 3
        assert s.get("swarmstream_worker_handler_duration_seconds_count") == 6
        inf = s.get("swarmstream_worker_handler_duration_seconds_bucket", le="+Inf")
        assert inf == 6
        assert s.get("swarmstream_worker_handler_duration_seconds_bucket", le="1800.0") == 6
        # the retries were taken back once their backoff passed
        assert s.get("swarmstream_worker_lease_events_total", event="reclaimed") == 3
        assert s.get("swarmstream_worker_reconnects_total") == 0
        assert s.get("swarmstream_worker_info", worker="metrics-w") == 1
        scrape_until(
            url, lambda s: s.get("swarmstream_worker_state", state="idle") == 1, "worker idle"
        )
        assert s.get("swarmstream_worker_state") == 1  # exactly one state at a time
        assert s.get("process_resident_memory_bytes") is not None
        assert "swarmstream_worker_tasks_created" not in s.names()
    finally:
        out = stop(w)
    assert "Traceback" not in (tmp_path / "worker.log").read_text() + out


@dataclass(frozen=True)
class FakeUsage:
    """What ``OutcomeEvent.usage`` carries (``swarmstream.usage.Usage``-like)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    model: str | None = None


def test_worker_hook_counts_usage_defensively() -> None:
    m = WorkerMetrics("ns", "w1", process=False)
    m.outcome(OutcomeEvent(Kind.DONE, "s", "t1", 1, 0.5, FakeUsage(100, 20, 0.01, "m1")))
    m.outcome(OutcomeEvent(Kind.DONE, "s", "t2", 1, 2.0, {"input_tokens": 5, "model": "m1"}))
    for junk in (
        FakeUsage(-5, math.nan, math.inf, None),  # type: ignore[arg-type]
        {"input_tokens": "12", "output_tokens": True, "cost_usd": None},
        object(),
        42,
    ):
        m.outcome(OutcomeEvent(Kind.RETRIED, "s", "t3", 1, None, junk))
    for i in range(MAX_MODELS + 5):
        m.outcome(OutcomeEvent(Kind.DONE, "s", f"x{i}", 1, 0.1, FakeUsage(1, 0, 0.0, f"m{i}x")))
    m.lease(LeaseEvent(LeaseKind.RENEWED, "s", 7))
    m.reconnect()
    m.state(WorkerState.STARTING, WorkerState.BUSY)
    s = Scrape.parse(generate_latest(m.registry).decode())
    assert s.get("swarmstream_worker_tokens_total", model="m1", type="input") == 105
    assert s.get("swarmstream_worker_tokens_total", model="m1", type="output") == 20
    assert s.get("swarmstream_worker_cost_usd_total", model="m1") == 0.01
    assert s.get("swarmstream_worker_tasks_total", outcome="retried") == 4
    assert s.get("swarmstream_worker_handler_duration_seconds_count", outcome="retried") is None
    assert s.get("swarmstream_worker_handler_duration_seconds_count", outcome="done") == 2 + (
        MAX_MODELS + 5
    )
    models = {
        dict(ls).get("model") for n, ls in s.samples if n == "swarmstream_worker_tokens_total"
    }
    assert len(models) <= MAX_MODELS + 1 and "other" in models
    assert s.get("swarmstream_worker_lease_events_total", event="renewed") == 7
    assert s.get("swarmstream_worker_reconnects_total", namespace="ns") == 1
    assert s.get("swarmstream_worker_state", state="busy") == 1
    assert s.get("swarmstream_worker_state") == 1
    assert s.get("swarmstream_worker_handler_duration_seconds_bucket", le="0.5") == 1 + (
        MAX_MODELS + 5
    )
    assert DURATION_BUCKETS[0] == 0.01 and DURATION_BUCKETS[-1] == 1800.0


# -- the metric families of a snapshot (pure) ----------------------------------------


def _snapshot() -> Snapshot:
    """A snapshot with every kind of data the exporter turns into metrics."""
    usage = SpecUsage(
        total=Totals(input_tokens=10, output_tokens=5, cost_usd=0.2, attempts=2, unpriced=1),
        models={"m": Totals(input_tokens=10, output_tokens=5, cost_usd=0.2)},
        shards={"kb": Totals(input_tokens=10)},
    )
    spec = SpecStats(
        name="research",
        stream="ns:spec:{research}:tasks",
        length=9,
        backlog=None,  # Redis 6.2
        pending=2,
        oldest_pending_ms=1500,
        consumers=1,
        dead=1,
        delivered=None,
        completed=5,
        failed=1,
        retried=2,
        redelivered=1,
        usage=usage,
        budget=BudgetState(Budget(usd=1.0, tokens=100), usage.total),
        paused_by=None,
    )
    worker = WorkerInfo(
        name="w-secret",
        host="h",
        pid=1,
        specs=("research",),
        state=WorkerState.PAUSED,
        concurrency=4,
        current=(),
        busy_since=None,
        done=0,
        failed=0,
        started=0.0,
        heartbeat=0.0,
    )
    shard = ShardStats(
        id="kb",
        spec="research",
        tokens=1234,
        version=1,
        pass_no=2,
        progress="",
        collected=3,
        heartbeat=None,
    )
    return Snapshot(
        time=1000.0,
        specs=(spec,),
        workers=(worker,),
        shards=(shard,),
        namespace="ns",
        budget=BudgetState(Budget(tokens=1000), usage.total),
    )


class StaticSource:
    """A snapshot source that always has the same snapshot (no Redis involved)."""

    namespace = "ns"

    def __init__(self, reading: Reading) -> None:
        self._reading = reading

    def get(self) -> Reading:
        return self._reading


def _collect(reading: Reading) -> Scrape:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SwarmCollector(StaticSource(reading)))
    return Scrape.parse(generate_latest(registry).decode())


def test_families_of_a_snapshot() -> None:
    s = _collect(Reading(_snapshot(), ok=True, duration=0.01, age=0.5, snapshots=3, errors=1))
    assert s.get("swarmstream_up", namespace="ns") == 1
    assert s.get("swarmstream_snapshot_timestamp_seconds") == 1000.0
    assert s.get("swarmstream_snapshots_total") == 3
    assert s.get("swarmstream_backlog_tasks") is None  # unknown on Redis 6.2: left out
    assert s.get("swarmstream_tasks_delivered_total") is None
    assert s.get("swarmstream_oldest_pending_age_seconds", spec="research") == 1.5
    assert s.get("swarmstream_tasks_failed_total", spec="research") == 1
    assert s.get("swarmstream_workers", state="paused") == 1
    assert s.get("swarmstream_workers", state="busy") == 0
    assert s.get("swarmstream_workers_concurrency") == 4
    assert s.get("swarmstream_unpriced_attempts_total", spec="research") == 1
    assert s.get("swarmstream_budget_left_usd", spec="research") == pytest.approx(0.8)
    assert s.get("swarmstream_budget_left_tokens", spec="research") == 85
    assert s.get("swarmstream_namespace_budget_left_tokens") == 985
    assert s.get("swarmstream_namespace_budget_limit_usd") is None
    assert s.get("swarmstream_shard_context_tokens", shard="kb", spec="research") == 1234
    assert s.get("swarmstream_shard_pass", shard="kb") == 2
    assert s.get("swarmstream_shard_findings_collected_total", shard="kb") == 3
    assert s.get("swarmstream_shards") == 1
    assert "w-secret" not in s.text
    served = {f for f in s.families if f.startswith("swarmstream_")}
    assert served == {f.full_name for f in all_families()}  # all_families() is complete

    down = _collect(Reading(_snapshot(), ok=False, duration=0.2, age=30.0, snapshots=4, errors=2))
    assert down.get("swarmstream_up") == 0
    assert down.get("swarmstream_pending_tasks") is None  # no stale levels while down
    assert down.get("swarmstream_snapshot_age_seconds") == 30.0


class BrokenSource(StaticSource):
    def get(self) -> Reading:
        raise RuntimeError("boom")


def test_a_source_that_raises_still_serves_up_0(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SwarmCollector(BrokenSource(Reading(None, ok=False))))
    s = Scrape.parse(generate_latest(registry).decode())
    assert s.get("swarmstream_up", namespace="ns") == 0
    assert "boom" in caplog.text


# -- the Grafana dashboard --------------------------------------------------------------


def _exposed_names() -> set[str]:
    """Every sample name the two exporters can serve, from real registry collects."""
    names = _collect(Reading(_snapshot(), ok=True, duration=0.01, snapshots=1)).names()
    for family in all_families():  # families a snapshot may leave empty
        names.add(family.full_name + ("_total" if family.kind == "counter" else ""))
    worker = WorkerMetrics("ns", "w", process=False)
    worker.outcome(OutcomeEvent(Kind.DONE, "s", "t", 1, 0.2, FakeUsage(1, 1, 0.1, "m")))
    worker.lease(LeaseEvent(LeaseKind.RENEWED, "s"))
    worker.reconnect()
    names |= Scrape.parse(generate_latest(worker.registry).decode()).names()
    return names


def _expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)


def test_dashboard_queries_only_metrics_the_exporters_expose() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for p in panels:
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert p["targets"], p["title"]
    expressions = list(_expressions(dashboard))
    used = {m for e in expressions for m in re.findall(r"\bswarmstream_[a-z0-9_]+", e)}
    exposed = _exposed_names()
    assert used, "the dashboard queries nothing"
    assert used <= exposed, f"not exposed: {sorted(used - exposed)}"
    # the panels the issue asks for
    for needed in (
        "swarmstream_backlog_tasks",
        "swarmstream_pending_tasks",
        "swarmstream_tasks_completed_total",
        "swarmstream_tasks_failed_total",
        "swarmstream_dead_letters",
        "swarmstream_oldest_pending_age_seconds",
        "swarmstream_workers",
        "swarmstream_model_tokens_total",
        "swarmstream_model_cost_usd_total",
        "swarmstream_budget_left_usd",
        "swarmstream_worker_handler_duration_seconds_bucket",
        "swarmstream_worker_lease_events_total",
        "swarmstream_worker_reconnects_total",
    ):
        assert needed in used, needed
    assert any("histogram_quantile(0.95" in e for e in expressions)
    assert any("histogram_quantile(0.5" in e for e in expressions)
