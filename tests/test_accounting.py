"""Usage totals, attempt history, deliveries and budgets, against real Redis.

Totals are kept by the Lua steps that record findings, retries and dead letters;
the tests check them against the findings themselves, including after kill -9.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
from dataclasses import replace
from typing import Any

import pytest
import redis
from helpers import await_until, kill9, spawn, stop, wait_until
from typer.testing import CliRunner
from workload import spender

from swarmstream import Settings, Task
from swarmstream.accounting import Budget, Totals
from swarmstream.cli.app import app
from swarmstream.client import Swarm
from swarmstream.codec import attempt_history
from swarmstream.models import Finding, Status, WorkerState
from swarmstream.monitor.snapshot import Snapshot, collect
from swarmstream.usage import Usage
from swarmstream.worker import EphemeralWorker
from swarmstream.worker.hooks import Kind, OutcomeEvent, WorkerHooks

SPEC = "research"


def _usage(model: str, inp: int, out: int, cost: float | None) -> dict[str, Any]:
    u: dict[str, Any] = {"model": model, "input_tokens": inp, "output_tokens": out}
    if cost is not None:
        u["cost_usd"] = cost
    return u


async def _snapshot(swarm: Swarm) -> Snapshot:
    return await collect(swarm.transport.stats)


def _spec(snap: Snapshot, name: str = SPEC) -> Any:
    return next(s for s in snap.specs if s.name == name)


def _spent(findings: list[Finding]) -> Totals:
    """What the findings say was spent: each attempt of each task, once."""
    total = Totals()
    for f in findings:
        for record in attempt_history(f):
            u = Usage.from_dict(record["usage"]) if record.get("usage") else None
            if u is None:
                continue
            total = total + Totals(
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cost_usd=u.cost_usd or 0.0,
                attempts=1,
            )
    return total


async def _run_until(worker: EphemeralWorker, cond: Any, timeout: float = 30.0) -> None:
    runner = asyncio.create_task(worker.run())
    try:
        await await_until(cond, timeout=timeout, what="the worker's work")
    finally:
        worker.stop()
        await runner


class Recorder(WorkerHooks):
    def __init__(self) -> None:
        self.events: list[OutcomeEvent] = []
        self.states: list[WorkerState] = []

    def outcome(self, event: OutcomeEvent) -> None:
        self.events.append(event)

    def state(self, old: WorkerState, new: WorkerState) -> None:
        self.states.append(new)


class Broken(WorkerHooks):
    def outcome(self, event: OutcomeEvent) -> None:
        raise RuntimeError("a broken hook")


@pytest.mark.contract
async def test_totals_per_spec_model_shard_and_worker(swarm: Swarm, settings: Settings) -> None:
    plan = [
        ("alpha", "s1", _usage("claude-x", 100, 10, 0.01)),
        ("alpha", "s2", _usage("claude-x", 200, 20, 0.02)),
        ("beta", "s1", _usage("gpt-y", 1000, 5, 0.5)),
        ("beta", None, {"input_tokens": 7}),  # tokens, no model, no cost: unpriced
    ]
    tasks = [
        Task(spec=SPEC, text=f"t{i}", shard=shard, data={"usage": u})
        for i, (_, shard, u) in enumerate(plan)
    ]
    await swarm.submit_many(tasks)
    hooks = Recorder()
    worker = EphemeralWorker(SPEC, spender, settings, name="w1", hooks=[hooks, Broken()])

    async def done() -> bool:
        return len(await swarm.findings(SPEC)) == len(tasks)

    await _run_until(worker, done)
    snap = await _snapshot(swarm)
    usage = _spec(snap).usage
    assert usage.total.input_tokens == 1307
    assert usage.total.output_tokens == 35
    assert usage.total.cost_usd == pytest.approx(0.53)
    assert usage.total.attempts == 4 and usage.total.unpriced == 1
    assert usage.models["claude-x"].input_tokens == 300
    assert usage.models["claude-x"].cost_usd == pytest.approx(0.03)
    assert usage.models["gpt-y"].cost_usd == pytest.approx(0.5)
    assert usage.shards["s1"].input_tokens == 1100
    assert usage.shards["s2"].cost_usd == pytest.approx(0.02)
    assert "" not in usage.shards and "" not in usage.models
    assert snap.usage.tokens == 1342
    out = snap.to_json()
    assert out["specs"][0]["usage"]["models"]["gpt-y"]["input_tokens"] == 1000
    assert out["usage"]["cost_usd"] == pytest.approx(0.53)
    per_worker = await swarm.transport.stats.worker_usage([SPEC])
    assert per_worker["w1"].input_tokens == 1307
    # every finding carries its attempt's usage; the hooks saw every outcome with it,
    # and the broken hook did not stop anything
    findings = await swarm.findings(SPEC)
    assert {f.usage["model"] for f in findings if f.usage and "model" in f.usage} == {
        "claude-x",
        "gpt-y",
    }
    assert [e.kind for e in hooks.events] == [Kind.DONE] * 4
    assert sum(e.usage.input_tokens for e in hooks.events if e.usage) == 1307
    assert all(e.duration is not None and e.duration >= 0 for e in hooks.events)
    assert WorkerState.BUSY in hooks.states and hooks.states[-1] is WorkerState.STOPPED


@pytest.mark.contract
async def test_failed_attempts_keep_their_spend_and_history(
    swarm: Swarm, settings: Settings
) -> None:
    u = _usage("m", 50, 5, 0.002)
    retried = Task(spec=SPEC, text="retried", data={"usage": u, "fail_until": 3})
    doomed = Task(spec=SPEC, text="doomed", max_attempts=2, data={"usage": u, "fail_until": 9})
    await swarm.submit_many([retried, doomed])
    worker = EphemeralWorker(SPEC, spender, settings, name="w2")

    async def done() -> bool:
        return len(await swarm.findings(SPEC)) == 2

    await _run_until(worker, done)
    ok = await swarm.finding(SPEC, retried.id)
    assert ok is not None and ok.status is Status.OK and ok.attempt == 3
    history = attempt_history(ok)
    assert [h["attempt"] for h in history] == [1, 2, 3]
    assert [h["outcome"] for h in history] == ["retried", "retried", "ok"]
    assert all(h["usage"]["cost_usd"] == pytest.approx(0.002) for h in history)
    assert "attempt 1 fails after spending" in history[0]["error"]
    assert history[0]["worker"] == "w2" and history[0]["finished"] >= history[0]["started"]
    failed = await swarm.finding(SPEC, doomed.id)
    assert failed is not None and failed.status is Status.FAILED
    assert [h["outcome"] for h in attempt_history(failed)] == ["retried", "failed"]
    assert failed.usage is not None and failed.usage["input_tokens"] == 50
    # the totals hold every attempt once: 3 + 2 attempts
    total = _spec(await _snapshot(swarm)).usage.total
    assert total.attempts == 5
    assert total.input_tokens == 250
    assert total.cost_usd == pytest.approx(0.01)
    assert _spent([ok, failed]).cost_usd == pytest.approx(total.cost_usd)
    # the history keys are gone once the finding holds them
    k = swarm.keys.spec(SPEC)
    assert not await swarm.client.exists(k.history(retried.id), k.history(doomed.id))


async def test_prices_fill_in_a_missing_cost(swarm: Swarm, settings: Settings) -> None:
    priced = replace(settings, prices={"claude-sonnet-4-5": {"input": 3.0, "output": 15.0}})
    tasks = [
        Task(
            spec=SPEC,
            text="a",
            data={"usage": _usage("claude-sonnet-4-5-20250929", 1_000_000, 0, None)},
        ),
        Task(spec=SPEC, text="b", data={"usage": _usage("claude-sonnet-4-5", 0, 1000, 0.5)}),
    ]
    await swarm.submit_many(tasks)
    worker = EphemeralWorker(SPEC, spender, priced, name="w3")

    async def done() -> bool:
        return len(await swarm.findings(SPEC)) == 2

    await _run_until(worker, done)
    a = await swarm.finding(SPEC, tasks[0].id)
    b = await swarm.finding(SPEC, tasks[1].id)
    assert a is not None and a.usage is not None and b is not None and b.usage is not None
    assert a.usage["cost_usd"] == pytest.approx(3.0) and a.usage["cost_source"] == "computed"
    assert b.usage["cost_usd"] == pytest.approx(0.5) and b.usage["cost_source"] == "reported"
    total = _spec(await _snapshot(swarm)).usage.total
    assert total.cost_usd == pytest.approx(3.5)
    assert total.cost_computed_usd == pytest.approx(3.0)
    assert total.unpriced == 0


def test_totals_equal_the_findings_after_a_kill9_storm(
    raw: redis.Redis, settings: Settings
) -> None:
    """Workers are killed mid-task again and again: every task ends in one finding,
    redeliveries are counted as deliveries, and the totals equal what the findings
    say was spent (an attempt recorded once, whatever was redelivered)."""
    rng = random.Random(7)
    n = 40
    tasks = [
        Task(
            spec=SPEC,
            text=f"t{i}",
            max_attempts=10,
            data={
                "seconds": rng.uniform(0.1, 0.4),
                "usage": _usage(rng.choice(["m1", "m2"]), 100 + i, 10, 0.001 * (i + 1)),
                "fail_until": 2 if i % 4 == 0 else 0,
            },
        )
        for i in range(n)
    ]

    async def submit() -> None:
        async with Swarm(settings) as swarm:
            await swarm.submit_many(tasks)

    asyncio.run(submit())
    procs: list[subprocess.Popen[bytes]] = []
    kills = 0

    def done() -> int:
        key = f"{settings.redis.namespace}:spec:{{{SPEC}}}:findings"
        return int(raw.xlen(key))

    try:
        procs = [spawn(settings, [SPEC], "workload:spender", extra=("-c", "3")) for _ in range(3)]
        while kills < 6 and done() < n:
            target = min(n, (kills + 1) * 4)
            wait_until(lambda t=target: done() >= t, timeout=60)  # type: ignore[misc]
            victim = procs.pop(rng.randrange(len(procs)))
            kill9(victim)
            kills += 1
            procs.append(spawn(settings, [SPEC], "workload:spender", extra=("-c", "3")))
        wait_until(lambda: done() >= n, timeout=120, what="every finding")
    finally:
        for p in procs:
            stop(p)

    async def check() -> tuple[list[Finding], Snapshot]:
        async with Swarm(settings) as swarm:
            return await swarm.findings(SPEC, count=None), await _snapshot(swarm)

    findings, snap = asyncio.run(check())
    assert sorted(f.task_id for f in findings) == sorted(t.id for t in tasks)
    assert all(f.status is Status.OK for f in findings)
    row = _spec(snap)
    total = row.usage.total
    spent = _spent(findings)
    assert total.attempts == spent.attempts
    assert total.input_tokens == spent.input_tokens
    assert total.output_tokens == spent.output_tokens
    assert total.cost_usd == pytest.approx(spent.cost_usd)
    # 10 tasks fail their first attempt on purpose (a killed first attempt leaves no
    # record): more attempts than tasks, each counted once
    assert total.attempts == n + sum(len(f.attempts) for f in findings) > n
    # deliveries count redeliveries: a retry or a killed worker's task is delivered
    # again by XAUTOCLAIM
    assert row.redelivered >= 10
    if row.delivered is not None:  # Redis 7+
        assert row.delivered == n + row.redelivered
    assert sum(f.attempt for f in findings) == row.delivered or row.delivered is None


@pytest.mark.contract
async def test_a_budget_pauses_a_spec_and_raising_it_resumes(
    swarm: Swarm, settings: Settings
) -> None:
    n = 20
    tasks = [
        Task(spec=SPEC, text=f"t{i}", data={"usage": _usage("m", 10, 1, 0.01)}) for i in range(n)
    ]
    await swarm.submit_many(tasks)
    await swarm.transport.budgets.set(SPEC, Budget(usd=0.05))
    hooks = Recorder()
    worker = EphemeralWorker(
        SPEC, spender, settings.with_worker(concurrency=1), name="wb", hooks=[hooks]
    )
    runner = asyncio.create_task(worker.run())
    try:
        await await_until(lambda: _paused(worker), timeout=20, what="the worker paused")
        first = len(await swarm.findings(SPEC))
        assert 5 <= first <= 6  # the fifth crosses $0.05; one more may be in flight
        snap = await _snapshot(swarm)
        row = _spec(snap)
        assert row.paused_by is not None and "spec budget" in row.paused_by
        assert row.backlog in (None, n - first)  # still queued: nothing lost
        assert row.pending == 0 and row.dead == 0
        assert snap.to_json()["specs"][0]["budget"]["usd_left"] == 0.0
        await asyncio.sleep(1.0)  # a paused worker claims nothing
        assert len(await swarm.findings(SPEC)) == first
        await swarm.transport.budgets.set(SPEC, Budget(usd=1.0))

        async def all_done() -> bool:
            return len(await swarm.findings(SPEC)) == n

        await await_until(all_done, timeout=30, what="the rest after raising the budget")
    finally:
        worker.stop()
        await runner
    assert WorkerState.PAUSED in hooks.states
    assert _spec(await _snapshot(swarm)).paused_by is None


async def _paused(worker: EphemeralWorker) -> bool:
    return worker.state is WorkerState.PAUSED


@pytest.mark.contract
async def test_a_namespace_token_budget_pauses_every_spec(swarm: Swarm, settings: Settings) -> None:
    tasks = [
        Task(spec=s, text=f"{s}{i}", data={"usage": _usage("m", 100, 10, None)})
        for i in range(10)
        for s in (SPEC, "other")
    ]
    await swarm.submit_many(tasks)
    await swarm.transport.budgets.set(None, Budget(tokens=500))
    one = settings.with_worker(concurrency=1)  # one read still takes one task per spec
    worker = EphemeralWorker([SPEC, "other"], spender, one, name="wn")
    runner = asyncio.create_task(worker.run())
    try:
        await await_until(lambda: _paused(worker), timeout=20, what="the worker paused")
        snap = await _snapshot(swarm)
        assert snap.budget is not None and snap.budget.paused_by is not None
        assert all(s.paused_by and "namespace budget" in s.paused_by for s in snap.specs)
        # 500 tokens are spent by the fifth task (110 each); what was read before
        # the worker had booked it (one task per spec per read) finishes too
        assert 5 <= sum(s.completed for s in snap.specs) < len(tasks) - 4
        await asyncio.sleep(1.0)  # the tally's interval: still paused, nothing claimed
        assert sum(s.completed for s in (await _snapshot(swarm)).specs) == sum(
            s.completed for s in snap.specs
        )
        await swarm.transport.budgets.set(None, Budget())

        async def all_done() -> bool:
            snap = await _snapshot(swarm)
            return sum(s.completed for s in snap.specs) == len(tasks)

        await await_until(all_done, timeout=30, what="the rest after clearing the budget")
    finally:
        worker.stop()
        await runner


def test_budget_cli_and_status_show_cost(settings: Settings) -> None:
    env = {
        "SWARMSTREAM_REDIS_URL": settings.redis.url,
        "SWARMSTREAM_NAMESPACE": settings.redis.namespace,
    }
    runner = CliRunner()
    r = runner.invoke(app, ["budget", "set", SPEC, "--usd", "2.5"], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["budget", "set", "*", "--tokens", "1000000"], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["budget", "show", "--json"], env=env)
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    assert shown[SPEC]["usd"] == 2.5 and shown[SPEC]["paused"] is False
    assert shown["*"]["tokens"] == 1_000_000
    r = runner.invoke(app, ["budget", "set", SPEC], env=env)
    assert r.exit_code == 2 and "--usd" in r.output
    r = runner.invoke(app, ["budget", "set", "bad{name", "--usd", "1"], env=env)
    assert r.exit_code != 0 and "Traceback" not in r.output
    r = runner.invoke(app, ["budget", "clear", SPEC], env=env)
    assert r.exit_code == 0
    r = runner.invoke(app, ["budget", "show", "--json"], env=env)
    assert SPEC not in json.loads(r.stdout)


def test_the_usage_block_is_the_same_in_every_script(repo_root: Any) -> None:
    """complete, retry and bury.lua each carry the usage block (a script is loaded on
    its own): the three copies must not drift apart."""
    blocks = []
    for name in ("complete", "retry", "bury"):
        text = (repo_root / "swarmstream" / "lua" / f"{name}.lua").read_text()
        start = text.index("-- Usage totals (swarmstream.accounting)")
        end = text.index("  return '[' .. table.concat(out, ',') .. ']'\nend\n", start)
        blocks.append(text[start:end])
    assert blocks[0] == blocks[1] == blocks[2]


def test_prices_and_budgets_in_the_config(settings: Settings, tmp_path: Any) -> None:
    env = {
        "SWARMSTREAM_REDIS_URL": settings.redis.url,
        "SWARMSTREAM_NAMESPACE": settings.redis.namespace,
    }
    runner = CliRunner()
    good = tmp_path / "good.toml"
    good.write_text(
        '[prices."claude-sonnet-4-5"]\ninput = 3.0\noutput = 15.0\n'
        '[budgets.research]\nusd = 5.0\n[budgets."*"]\ntokens = 20000000\n'
    )
    r = runner.invoke(app, ["--config", str(good), "budget", "apply"], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["budget", "show", "--json"], env=env)
    shown = json.loads(r.stdout)
    assert shown[SPEC]["usd"] == 5.0 and shown["*"]["tokens"] == 20_000_000
    # spawned workers get the price table through the environment
    loaded = Settings.load(good, env={})
    assert Settings.load(None, env=loaded.to_env()).prices == loaded.prices
    for text, needle in [
        ('[prices."m"]\ninput = "cheap"\noutput = 1.0\n', "prices"),
        ("[budgets.research]\nusd = -1\n", "usd"),
        ("[budgets.research]\ndollars = 5\n", "dollars"),
        ('[budgets."bad{name"]\nusd = 1\n', "spec name"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        r = runner.invoke(app, ["--config", str(bad), "config"], env=env)
        assert r.exit_code == 2, (text, r.output)
        assert needle in r.output and "Traceback" not in r.output
