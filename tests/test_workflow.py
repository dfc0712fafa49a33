"""Pass workflows: loading and validating TOML, passes that survive a worker's kill -9,
a coordinator killed and resumed, and poison tasks (partial synthesis or abort)."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from helpers import await_until, busy_task, kill9, spawn, stop, wait_until

from swarmstream import Settings, Swarm
from swarmstream.codec import decode_finding
from swarmstream.errors import ConfigError
from swarmstream.keys import Keys
from swarmstream.models import Finding, Status
from swarmstream.shard import MemoryShard
from swarmstream.workflow import (
    Progress,
    WorkflowAborted,
    WorkflowError,
    WorkflowRunner,
    load_workflow,
)
from swarmstream.workflow.model import plan, task_id

SPEC = "wf"


def _write(tmp_path: Path, body: str, name: str = "wf.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def _findings(raw: redis.Redis, settings: Settings, spec: str) -> list[Finding]:
    key = Keys(settings.redis.namespace).spec(spec).findings
    return [decode_finding(i.decode(), f) for i, f in raw.xrange(key)]


def _state(raw: redis.Redis, settings: Settings, shard: str) -> dict[str, str]:
    key = Keys(settings.redis.namespace).shard(shard).workflow
    return {a.decode(): b.decode() for a, b in raw.hgetall(key).items()}


def _one_finding_per_task(found: list[Finding], ids: list[str]) -> dict[str, Finding]:
    counts = collections.Counter(f.task_id for f in found)
    assert {t: counts[t] for t in ids} == dict.fromkeys(ids, 1)
    return {f.task_id: f for f in found if f.task_id in ids}


# -- loading and validation ------------------------------------------------------


def test_shipped_configs_load(repo_root: Path) -> None:
    eight = load_workflow(repo_root / "configs" / "workflow-8pass.toml")
    names = [p.name for p in eight.passes]
    assert names == [
        "Signal Capture",
        "Analysis",
        "Rigor",
        "Cross-Domain",
        "Integration",
        "Validation",
        "Synthesis",
        "Plateau",
    ]
    assert eight.spec == "research" and len(eight.domains) == 8
    for p in eight.passes:
        tasks = plan(eight, p, "r1", "PREVIOUS SYNTHESIS")
        assert len(tasks) == 40 and len({t.text for t in tasks}) == 40
        assert [t.id for t in tasks] == [task_id("r1", p.number, i) for i in range(1, 41)]
        assert all(("PREVIOUS SYNTHESIS" in t.text) == (p.number > 1) for t in tasks)
        assert p.on_failure == "partial" and p.deadline >= 600
    three = load_workflow(repo_root / "configs" / "workflow-3pass.toml")
    assert [len(plan(three, p, "r", "x")) for p in three.passes] == [6, 6, 6]


def test_defaults_overrides_and_counted_tasks(tmp_path: Path) -> None:
    wf = load_workflow(
        _write(
            tmp_path,
            """
name = "Counted Tasks"
domains = ["a", "b"]
deadline = 30
max_attempts = 2
data = { seconds = 0.5, tag = "x" }

[[pass]]
name = "first"
tasks = 3

[[pass]]
name = "second"
spec = "other"
on_failure = "abort"
deadline = 5
timeout = 2.5
data = { seconds = 1 }
templates = ["{pass_name} {i}/{n} of {workflow} on {domain}: {previous}"]
""",
        )
    )
    assert wf.shard == "Counted-Tasks" and wf.spec == "research"
    first, second = wf.passes
    assert (first.deadline, first.on_failure, first.max_attempts) == (30.0, "partial", 2)
    assert (second.spec, second.deadline, second.on_failure, second.timeout) == (
        "other", 5.0, "abort", 2.5,
    )  # fmt: skip
    assert second.data == {"seconds": 1, "tag": "x"}
    texts = [t.text for t in plan(wf, first, "r", None)]
    assert texts == [
        "first: task 1 of 3 on a",
        "first: task 2 of 3 on b",
        "first: task 3 of 3 on a",
    ]
    assert [t.text for t in plan(wf, second, "r", "PREV")] == [
        "second 1/2 of Counted Tasks on a: PREV",
        "second 2/2 of Counted Tasks on b: PREV",
    ]
    assert plan(wf, second, "r", "PREV") == plan(wf, second, "r", "PREV"), "deterministic"


GOOD_PASS = '[[pass]]\nname = "p"\ntemplates = ["look around"]\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('name = "x"\nshard = [', "not valid TOML: "),
        ('name = "x"\n', "no passes: add at least one [[pass]] table"),
        ('shard = "s"\n' + GOOD_PASS, "the workflow needs a 'name'"),
        ('name = "x"\n[[pass]]\ntasks = 2\n', "pass 1 needs a 'name'"),
        ('name = "x"\ndeadlin = 3\n' + GOOD_PASS, "unknown key 'deadlin' at the top level"),
        ('name = "x"\n[[pass]]\nname = "p"\ntask = 2\n', "unknown key 'task' in pass 1"),
        ('name = "x"\nshard = "a b"\n' + GOOD_PASS, "invalid shard name 'a b'"),
        ('name = "x"\nspec = "a:b"\n' + GOOD_PASS, "invalid spec name 'a:b'"),
        (
            'name = "x"\ndomains = ["d"]\n[[pass]]\nname = "p"\ntasks = 2\ntemplates = ["t"]\n',
            "pass 1 ('p'): use either 'tasks' (a count) or 'templates', not both",
        ),
        ('name = "x"\n[[pass]]\nname = "p"\n', "pass 1 ('p'): say how many tasks"),
        ('name = "x"\n[[pass]]\nname = "p"\ntasks = 0\n', "'tasks' must be between 1 and"),
        ('name = "x"\n[[pass]]\nname = "p"\ntasks = "9"\n', "'tasks' must be a whole number"),
        (
            'name = "x"\ndomains = ["d"]\n[[pass]]\nname = "p"\ntemplates = ["{topic}"]\n',
            "pass 1 ('p'), template 1: unknown placeholder {topic}; known: {domain}",
        ),
        (
            'name = "x"\n[[pass]]\nname = "p"\ntemplates = ["on {domain}"]\n',
            "uses {domain} but the workflow lists no 'domains'",
        ),
        (
            'name = "x"\n[[pass]]\nname = "p"\ntemplates = ["from {previous}"]\n',
            "uses {previous}, but pass 1 has no previous pass",
        ),
        (
            'name = "x"\n[[pass]]\nname = "p"\ntemplates = ["unclosed {"]\n',
            "template 1: Single '{' encountered",
        ),
        (
            'name = "x"\n[[pass]]\nname = "p"\ntasks = 1\non_failure = "retry"\n',
            'on_failure must be "partial" or "abort", got \'retry\'',
        ),
        ('name = "x"\ndeadline = -5\n' + GOOD_PASS, "'deadline' must be a positive number"),
        ('name = "x"\nmax_attempts = 0\n' + GOOD_PASS, "'max_attempts' must be a whole number"),
        ('name = "x"\ndomains = ["d", "d"]\n' + GOOD_PASS, "'domains' lists a domain twice"),
        ('name = "x"\ncontext = ["nowhere"]\n' + GOOD_PASS, "context path not found"),
    ],
)
def test_bad_workflow_files_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_workflow(path)
    assert str(err.value).startswith(f"workflow file {path}: ")
    assert message in str(err.value)


def test_missing_file_and_cli_bad_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workflow file not found: "):
        load_workflow(tmp_path / "nope.toml")
    bad = _write(tmp_path, 'name = "x"\n[[pass]]\nname = "p"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "swarmstream", "run", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith(f"error: workflow file {bad}: pass 1 ('p'): say how many")
    helped = subprocess.run(
        [sys.executable, "-m", "swarmstream", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert helped.returncode == 0 and "Example: swarmstream run" in helped.stdout


# -- real workers, real kills -------------------------------------------------------

THREE_PASSES = """
name = "three"
shard = "three"
spec = "wf"
domains = ["alpha", "beta", "gamma"]
deadline = 45
data = { seconds = SECONDS }

[[pass]]
name = "capture"
templates = ["capture {domain}", "question {domain}"]

[[pass]]
name = "analyse"
templates = ["analyse {domain} given [{previous}]", "answer {domain} given [{previous}]"]

[[pass]]
name = "conclude"
templates = ["conclude {domain}", "doubt {domain}"]
"""


@pytest.mark.contract
async def test_three_passes_complete_when_a_worker_is_killed(
    swarm: Swarm, settings: Settings, raw: redis.Redis, tmp_path: Path
) -> None:
    wf = load_workflow(_write(tmp_path, THREE_PASSES.replace("SECONDS", "1.0")))
    cfg = settings.with_worker(concurrency=3)
    victim = spawn(cfg, [SPEC], "workload:nap", name="victim")
    survivor = spawn(cfg, [SPEC], "workload:nap", name="survivor")
    events: list[Progress] = []
    runner = WorkflowRunner(swarm, wf, run_id="kill", on_progress=events.append)
    job = asyncio.create_task(runner.run())
    try:

        async def victim_on_pass_2() -> bool:
            return (busy_task(raw, settings, "victim") or "").startswith("kill-p2-")

        await await_until(victim_on_pass_2, timeout=30, what="the victim running pass 2")
        kill9(victim)
        summary = await asyncio.wait_for(job, 60)
    finally:
        job.cancel()
        kill9(victim)
        stop(survivor)
    outcome = [(p.tasks, p.ok, p.missing, p.partial) for p in summary.passes]
    assert outcome == [(6, 6, (), False)] * 3
    found = _findings(raw, settings, SPEC)
    ids = [task_id("kill", n, i) for n in (1, 2, 3) for i in range(1, 7)]
    by_id = _one_finding_per_task(found, ids)
    assert all(f.status is Status.OK for f in by_id.values())
    assert len(found) == 18
    reclaimed = [f for f in by_id.values() if f.attempt >= 2]
    assert reclaimed and all(f.worker == "survivor" and f.pass_no == 2 for f in reclaimed)
    shard = MemoryShard(swarm, "three", SPEC)
    for n in (1, 2, 3):
        k = await shard.knowledge(n)
        assert k is not None and not k.partial and len(k.items) == 6
    pass2 = [f.content for f in by_id.values() if f.pass_no == 2]
    assert all("capture alpha by" in c for c in pass2), "pass 2 saw pass 1's synthesis"
    assert (await runner.state())["state"] == "done"
    seen = {(e.pass_no, e.state) for e in events}
    assert {(n, s) for n in (1, 2, 3) for s in ("posted", "synthesized")} <= seen
    assert any(e.state == "waiting" and e.pass_no == 2 and 0 < e.findings < 6 for e in events)


def _coordinator(settings: Settings, config: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "swarmstream", "--redis-url", settings.redis.url]
    argv += ["--namespace", settings.redis.namespace, "run", str(config)]
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.contract
def test_coordinator_killed_mid_workflow_resumes(
    settings: Settings, raw: redis.Redis, repo_root: Path, tmp_path: Path
) -> None:
    config = repo_root / "configs" / "workflow-3pass.toml"
    spec, shard = "demo", "demo"
    worker = spawn(settings.with_worker(concurrency=1), [spec], "sleep", name="slow")
    first = _coordinator(settings, config, tmp_path / "first.log")
    second = None
    try:
        wait_until(
            lambda: (
                (s := _state(raw, settings, shard)).get("pass") == "2"
                and s.get("state") in ("posted", "waiting")
            ),
            timeout=30,
            what="pass 2 posted",
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        before = _state(raw, settings, shard)
        assert before["pass"] == "2" and before["state"] in ("posted", "waiting")
        run_id = before["run"]
        second = _coordinator(settings, config, tmp_path / "second.log")
        assert second.wait(60) == 0, (tmp_path / "second.log").read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        stop(worker)
    output = (tmp_path / "second.log").read_text()
    assert f"run {run_id}: resuming at pass 2" in output
    assert f"run {run_id} on shard demo: 3 passes, 18/18 findings" in output
    after = _state(raw, settings, shard)
    assert (after["run"], after["state"], after["pass"]) == (run_id, "done", "3")
    ids = [task_id(run_id, n, i) for n in (1, 2, 3) for i in range(1, 7)]
    found = _findings(raw, settings, spec)
    assert all(f.ok for f in _one_finding_per_task(found, ids).values())
    assert len(found) == 18
    knowledge = Keys(settings.redis.namespace).shard(shard).knowledge
    assert sorted(int(k) for k in raw.hkeys(knowledge)) == [1, 2, 3]
    info = raw.xinfo_stream(Keys(settings.redis.namespace).spec(spec).tasks)
    if "entries-added" in info:  # Redis 7+: pass 2 was not posted a second time
        assert info["entries-added"] == 18


POISON = """
name = "poisoned"
shard = "poisoned"
spec = "wf"
domains = ["alpha", "beta", "poison"]
deadline = 30
max_attempts = 2
on_failure = "POLICY"
data = { seconds = 0.05 }

[[pass]]
name = "Probe"
templates = ["{domain} probe"]

[[pass]]
name = "Follow-up"
tasks = 2
"""


async def test_poison_task_gives_a_partial_synthesis(
    swarm: Swarm, settings: Settings, raw: redis.Redis, tmp_path: Path
) -> None:
    wf = load_workflow(_write(tmp_path, POISON.replace("POLICY", "partial")))
    worker = spawn(settings, [SPEC], "workload:nap_or_poison")
    try:
        summary = await asyncio.wait_for(WorkflowRunner(swarm, wf, run_id="px").run(), 40)
    finally:
        stop(worker)
    first, second = summary.passes
    assert (first.tasks, first.ok, first.missing, first.partial) == (3, 2, ("px-p1-3",), True)
    assert (second.tasks, second.ok, second.partial) == (2, 2, False)
    assert summary.partial and summary.missing == ("px-p1-3",)
    shard = MemoryShard(swarm, "poisoned", SPEC)
    k1 = await shard.knowledge(1)
    assert k1 is not None and k1.missing == ("px-p1-3",) and k1.partial
    assert "partial: 1 task(s)" in k1.summary and len(k1.items) == 2
    poisoned = await swarm.finding(SPEC, "px-p1-3")
    assert poisoned is not None and poisoned.status is Status.FAILED and poisoned.attempt == 2
    assert "poisoned: poison probe" in (poisoned.error or "")
    state = _state(raw, settings, "poisoned")
    assert state["state"] == "done" and '"missing": ["px-p1-3"]' in state["pass:1"]


async def test_abort_policy_stops_the_workflow_with_a_clear_error(
    swarm: Swarm, settings: Settings, raw: redis.Redis, tmp_path: Path
) -> None:
    wf = load_workflow(_write(tmp_path, POISON.replace("POLICY", "abort")))
    worker = spawn(settings, [SPEC], "workload:nap_or_poison")
    try:
        with pytest.raises(WorkflowAborted) as err:
            await asyncio.wait_for(WorkflowRunner(swarm, wf, run_id="ab").run(), 40)
    finally:
        stop(worker)
    message = str(err.value)
    assert message.startswith(
        "pass 1 ('Probe') aborted (on_failure = \"abort\"): 1 of 3 task(s) failed: "
        "ab-p1-3: failed on all 2 attempts: RuntimeError: poisoned: poison probe"
    )
    state = _state(raw, settings, "poisoned")
    assert (state["state"], state["pass"], state["error"]) == ("aborted", "1", message)
    assert not [f for f in _findings(raw, settings, SPEC) if f.pass_no == 2], "pass 2 never ran"
    with pytest.raises(WorkflowAborted, match=r"pass 1 .* aborted"):
        await WorkflowRunner(swarm, wf, run_id="ab").run()  # the same run stays aborted
    elsewhere = wf.with_shard("elsewhere")
    with pytest.raises(WorkflowError, match=r"run id ab was used before \(task ab-p1-1 already"):
        await WorkflowRunner(swarm, elsewhere, run_id="ab").run()  # would replay old findings


async def test_deadline_miss_is_partial_and_another_workflow_cannot_take_the_shard(
    swarm: Swarm, settings: Settings, tmp_path: Path
) -> None:
    body = 'name = "late"\nshard = "late"\nspec = "nobody"\n'
    body += '[[pass]]\nname = "one"\ntasks = 2\ndeadline = 0.5\n'
    body += '[[pass]]\nname = "two"\ntasks = 1\ndeadline = 600\n'
    wf = load_workflow(_write(tmp_path, body))
    runner = WorkflowRunner(swarm, wf, run_id="late")
    job = asyncio.create_task(runner.run())  # no worker serves "nobody"

    async def on_pass_2() -> bool:
        return (await runner.state()).get("pass") == "2"

    started = time.monotonic()
    await await_until(on_pass_2, timeout=10, what="pass 2 after pass 1's deadline")
    assert time.monotonic() - started < 5
    job.cancel()  # the coordinator dies in pass 2
    with pytest.raises(asyncio.CancelledError):
        await job
    k1 = await MemoryShard(swarm, "late", "nobody").knowledge(1)
    assert k1 is not None and k1.missing == ("late-p1-1", "late-p1-2") and k1.findings == 0
    other = load_workflow(_write(tmp_path, body.replace("tasks = 1", "tasks = 3"), "other.toml"))
    with pytest.raises(WorkflowError, match="shard late has an unfinished run late of a diff"):
        await WorkflowRunner(swarm, other).run()
