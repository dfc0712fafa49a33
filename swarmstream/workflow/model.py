"""Pass workflows: a TOML file describing passes of tasks over a memory shard.

A workflow posts the tasks of one pass, waits for their findings until the pass
deadline, synthesizes them into knowledge, and hands that knowledge to the tasks
of the next pass. This module holds the frozen model, the loader and the task
planner; ``swarmstream.workflow.runner`` runs it. A file looks like::

    name = "demo"
    shard = "demo"
    spec = "research"
    domains = ["storage", "network"]
    deadline = 120                     # defaults for every pass
    on_failure = "partial"             # or "abort"

    [[pass]]
    name = "Signal Capture"
    templates = ["Collect the strongest signals about {domain}."]

    [[pass]]
    name = "Analysis"
    tasks = 4                          # or a count instead of templates
    deadline = 300

Template placeholders: ``{domain}``, ``{i}`` (1-based task number in the pass),
``{n}`` (tasks in the pass), ``{pass}``, ``{pass_name}``, ``{workflow}`` and
``{previous}`` (the previous pass's synthesis, from pass 2 on).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from swarmstream.errors import ConfigError, SwarmstreamError
from swarmstream.keys import validate_name
from swarmstream.models import DEFAULT_MAX_ATTEMPTS

OnFailure = Literal["partial", "abort"]
ON_FAILURE: tuple[OnFailure, ...] = ("partial", "abort")
PLACEHOLDERS = ("domain", "i", "n", "pass", "pass_name", "workflow", "previous")
DEFAULT_DEADLINE = 600.0
DEFAULT_PREVIOUS_CHARS = 4000
MAX_TASKS_PER_PASS = 10_000

_PASS_KEYS = {
    "name", "spec", "tasks", "templates", "deadline", "on_failure", "max_attempts", "timeout",
    "data",
}  # fmt: skip
_DEFAULT_KEYS = {"deadline", "on_failure", "max_attempts", "timeout", "data"}
_TOP_KEYS = {
    "name", "description", "shard", "spec", "context", "domains", "synthesizer",
    "previous_chars", "pass", *_DEFAULT_KEYS,
}  # fmt: skip
_Bad = Callable[[str], ConfigError]


class WorkflowError(SwarmstreamError):
    """A workflow cannot run as asked (for example another run holds its shard)."""


class WorkflowAborted(WorkflowError):
    """A pass with ``on_failure = "abort"`` lost tasks; the workflow stopped."""


@dataclass(frozen=True, slots=True)
class PassSpec:
    """One pass of a workflow (``number`` is 1-based)."""

    number: int
    name: str
    spec: str
    tasks: int | None = None
    templates: tuple[str, ...] = ()
    deadline: float = DEFAULT_DEADLINE
    on_failure: OnFailure = "partial"
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: float | None = None
    data: dict[str, Any] = field(default_factory=dict, hash=False)

    def label(self) -> str:
        return f"pass {self.number} ({self.name!r})"


@dataclass(frozen=True, slots=True)
class Workflow:
    """A pass workflow, as loaded from TOML."""

    name: str
    shard: str
    spec: str
    passes: tuple[PassSpec, ...]
    domains: tuple[str, ...] = ()
    context: tuple[Path, ...] = ()
    description: str = ""
    synthesizer: str | None = None
    previous_chars: int = DEFAULT_PREVIOUS_CHARS
    source: Path | None = field(default=None, compare=False)

    def with_shard(self, shard: str) -> Workflow:
        return replace(self, shard=validate_name("shard", shard))

    @property
    def fingerprint(self) -> str:
        """A hash of what shapes the tasks (not deadlines or failure policy): a
        resumed run must match the run it resumes."""
        shape = {
            "spec": self.spec,
            "domains": self.domains,
            "previous_chars": self.previous_chars,
            "passes": [
                {k: v for k, v in asdict(p).items() if k not in ("deadline", "on_failure")}
                for p in self.passes
            ],
        }
        raw = json.dumps(shape, sort_keys=True, default=str).encode()
        return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class PlannedTask:
    """A task of one pass, before posting: its deterministic id, text and data."""

    id: str
    text: str
    domain: str | None
    index: int


def task_id(run_id: str, pass_no: int, index: int) -> str:
    """The deterministic id of task ``index`` (1-based) of a pass of a run."""
    return f"{run_id}-p{pass_no}-{index}"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so when it was cut."""
    return text if len(text) <= limit else text[:limit].rstrip() + "\n[... truncated]"


def plan(workflow: Workflow, p: PassSpec, run_id: str, previous: str | None) -> list[PlannedTask]:
    """The tasks of pass ``p``: one per (domain, template), or ``tasks`` of them
    cycling over the domains. Same inputs, same ids and texts."""
    domains: Sequence[str | None] = workflow.domains or (None,)
    if p.templates:
        pairs = [(d, t) for d in domains for t in p.templates]
    else:
        default = "{pass_name}: task {i} of {n}" + (" on {domain}" if workflow.domains else "")
        pairs = [(domains[k % len(domains)], default) for k in range(p.tasks or 0)]
    prev = clip(previous, workflow.previous_chars) if previous else ""
    out = []
    for k, (domain, template) in enumerate(pairs, start=1):
        values = {
            "domain": domain or "",
            "i": k,
            "n": len(pairs),
            "pass": p.number,
            "pass_name": p.name,
            "workflow": workflow.name,
            "previous": prev,
        }
        out.append(PlannedTask(task_id(run_id, p.number, k), template.format(**values), domain, k))
    return out


# -- loading -----------------------------------------------------------------


def load_workflow(path: str | Path) -> Workflow:
    """Read and validate a workflow TOML file; raises ConfigError saying what is wrong."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"workflow file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"workflow file {path}: is a directory, not a file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"workflow file {path}: not valid TOML: {exc}") from None
    return parse_workflow(raw, path)


def parse_workflow(raw: Mapping[str, Any], path: Path | None = None) -> Workflow:
    """Validate a parsed workflow document (``path`` names it in errors and anchors
    relative context paths)."""
    where = f"workflow file {path}" if path else "workflow"

    def bad(message: str) -> ConfigError:
        return ConfigError(f"{where}: {message}")

    _unknown(raw, _TOP_KEYS, "at the top level", bad)
    name = _text(raw, "name", "the workflow", bad)
    try:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:64] or "workflow"
        shard = validate_name("shard", raw.get("shard", slug))
        spec = validate_name("spec", raw.get("spec", "research"))
    except ConfigError as exc:
        raise bad(str(exc)) from None
    domains = _strings(raw, "domains", "the workflow", bad)
    if len(set(domains)) != len(domains):
        raise bad("'domains' lists a domain twice")
    base = path.resolve().parent if path else Path.cwd()
    context = tuple((base / c) for c in _strings(raw, "context", "the workflow", bad))
    for c in context:
        if not c.exists():
            raise bad(f"context path not found: {c}")
    synthesizer = raw.get("synthesizer")
    if synthesizer is not None and (not isinstance(synthesizer, str) or not synthesizer):
        raise bad("'synthesizer' must be a handler name or 'module:function'")
    previous_chars = _number(raw, "previous_chars", "the workflow", bad, DEFAULT_PREVIOUS_CHARS)
    defaults = _pass_fields(raw, "the workflow", bad, PassSpec(0, "", spec))
    entries = raw.get("pass")
    if not isinstance(entries, list) or not entries:
        raise bad("no passes: add at least one [[pass]] table")
    passes = []
    for number, entry in enumerate(entries, start=1):
        label = f"pass {number}"
        if not isinstance(entry, dict):
            raise bad(f"{label} must be a [[pass]] table")
        _unknown(entry, _PASS_KEYS, f"in {label}", bad)
        pname = _text(entry, "name", label, bad)
        p = _pass_fields(entry, f"{label} ({pname!r})", bad, replace(defaults, number=number))
        passes.append(replace(p, name=pname))
    wf = Workflow(
        name=name,
        shard=shard,
        spec=spec,
        passes=tuple(passes),
        domains=tuple(domains),
        context=context,
        description=str(raw.get("description", "")),
        synthesizer=synthesizer,
        previous_chars=int(previous_chars),
        source=path,
    )
    for p in wf.passes:
        _check_tasks(wf, p, bad)
    return wf


def _pass_fields(raw: Mapping[str, Any], label: str, bad: _Bad, base: PassSpec) -> PassSpec:
    """Read the per-pass fields present in ``raw`` over ``base``."""
    spec = raw.get("spec", base.spec)
    try:
        validate_name("spec", spec)
    except ConfigError as exc:
        raise bad(f"{label}: {exc}") from None
    on_failure = raw.get("on_failure", base.on_failure)
    if on_failure not in ON_FAILURE:
        raise bad(f'{label}: on_failure must be "partial" or "abort", got {on_failure!r}')
    timeout = _number(raw, "timeout", label, bad, base.timeout)
    data = raw.get("data", {})
    if not isinstance(data, dict):
        raise bad(f"{label}: 'data' must be a table")
    tasks = raw.get("tasks")
    if tasks is not None and (isinstance(tasks, bool) or not isinstance(tasks, int)):
        raise bad(f"{label}: 'tasks' must be a whole number, got {tasks!r}")
    if tasks is not None and not 1 <= tasks <= MAX_TASKS_PER_PASS:
        raise bad(f"{label}: 'tasks' must be between 1 and {MAX_TASKS_PER_PASS}, got {tasks}")
    attempts = raw.get("max_attempts", base.max_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise bad(f"{label}: 'max_attempts' must be a whole number >= 1, got {attempts!r}")
    return replace(
        base,
        spec=spec,
        tasks=tasks,
        templates=tuple(_strings(raw, "templates", label, bad)),
        deadline=float(_number(raw, "deadline", label, bad, base.deadline)),
        on_failure=on_failure,
        max_attempts=attempts,
        timeout=timeout,
        data={**base.data, **data},
    )


def _check_tasks(wf: Workflow, p: PassSpec, bad: _Bad) -> None:
    label = p.label()
    if p.tasks is not None and p.templates:
        raise bad(f"{label}: use either 'tasks' (a count) or 'templates', not both")
    if p.tasks is None and not p.templates:
        raise bad(f"{label}: say how many tasks: 'tasks = N' or 'templates = [...]'")
    count = p.tasks or len(p.templates) * max(1, len(wf.domains))
    if count > MAX_TASKS_PER_PASS:
        raise bad(f"{label}: {count} tasks; at most {MAX_TASKS_PER_PASS} per pass")
    for k, template in enumerate(p.templates, start=1):
        where = f"{label}, template {k}"
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            raise bad(f"{where}: {exc} (write {{{{ and }}}} for literal braces)") from None
        for f in fields:
            if f not in PLACEHOLDERS:
                known = ", ".join("{" + x + "}" for x in PLACEHOLDERS)
                raise bad(f"{where}: unknown placeholder {{{f}}}; known: {known}")
        if "domain" in fields and not wf.domains:
            raise bad(f"{where}: uses {{domain}} but the workflow lists no 'domains'")
        if "previous" in fields and p.number == 1:
            raise bad(f"{where}: uses {{previous}}, but pass 1 has no previous pass")
    try:
        plan(wf, p, "check", "previous synthesis")
    except (ValueError, KeyError, IndexError) as exc:
        raise bad(f"{label}: a template cannot be rendered: {exc}") from None


def _unknown(raw: Mapping[str, Any], known: set[str], where: str, bad: _Bad) -> None:
    extra = sorted(set(raw) - known)
    if extra:
        raise bad(f"unknown key {extra[0]!r} {where} (known: {', '.join(sorted(known))})")


def _text(raw: Mapping[str, Any], key: str, label: str, bad: _Bad) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise bad(f"{label} needs a {key!r} (a non-empty string)")
    return value.strip()


def _strings(raw: Mapping[str, Any], key: str, label: str, bad: _Bad) -> list[str]:
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise bad(f"{label}: {key!r} must be a list of non-empty strings")
    return list(value)


def _number(raw: Mapping[str, Any], key: str, label: str, bad: _Bad, default: Any) -> Any:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise bad(f"{label}: {key!r} must be a positive number, got {value!r}")
    return value
