"""Tasks that record the context version they ask about, and the answer prompt.

Every task an ask posts carries ``data.context_version``: the shard's context version
when the task was posted, so its citations are later checked against the version the
worker borrowed (a finding that reports ``context_version`` itself wins; a worker
that runs after a reload borrows the newer version).

A shard-answer task asks the worker (an ``--exec`` agent reading
``SWARMSTREAM_CONTEXT_FILE``) to answer from its context and print the answer object
(``ANSWER_INSTRUCTIONS``). Its text holds the question, the map of the context file
(which document holds which of the file's lines, and which lines of the document
those are), and the instructions; its data holds ``question``, ``format`` and
``context_version``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from swarmstream.answers.citations import CitationChecker, ContextView
from swarmstream.client import Swarm
from swarmstream.keys import validate_name
from swarmstream.models import DEFAULT_MAX_ATTEMPTS, Finding, Task

#: ``data.format`` of the tasks that ask for the answer object.
ANSWER_FORMAT = "swarmstream.answer/1"
#: Most documents the context map in a task lists (the task entry is at most 1 MiB).
MAX_MAP_ROWS = 5000
#: Most characters of the context map in a task.
MAX_MAP_CHARS = 400_000

_INSTRUCTIONS = """\
Print exactly one JSON object on stdout, and nothing else:
{"answer": "the answer, in a few words (\\"\\" when not found)",
 "rationale": "why, in one or two sentences",
 "confidence": 0.0 to 1.0,
 "found": true, or false when the text does not answer the question,
 "citations": [{"source": "path:line or path:first-last", "quote": "exact words of those lines"}]%s}
Cite every line the answer rests on, by the document's own line numbers. Name the
list "citations" (a top-level "sources" key makes the object a different format)."""


def answer_instructions(context_version: int | None = None) -> str:
    """How to print the answer object (``swarmstream.answers.shard_answers``); with a
    context version, the object is asked to report it."""
    extra = "" if context_version is None else f',\n "context_version": {context_version}'
    return _INSTRUCTIONS % extra


def _version_of(data: Any) -> int | None:
    value = data.get("context_version") if isinstance(data, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def task_version(task: Task) -> int | None:
    """The context version a task recorded (``data.context_version``)."""
    return _version_of(task.data)


def finding_version(finding: Finding | None, task: Task | None = None) -> int | None:
    """The context version to check a finding's citations against: the one the
    finding reports (``data.context_version``), else the one its task recorded, else
    None (the current version)."""
    reported = _version_of(finding.data) if finding is not None else None
    if reported is not None:
        return reported
    return task_version(task) if task is not None else None


async def versioned_tasks(
    swarm: Swarm,
    text: str,
    shards: Sequence[str],
    spec: str,
    *,
    data: Mapping[str, Any] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timeout: float | None = None,
) -> list[Task]:
    """One task per shard (as ``MemoryShard.post`` makes them), each recording its
    shard's current context version in ``data.context_version``; the versions are
    read in one round trip. A shard without context gets no version."""
    ids = [validate_name("shard", s) for s in dict.fromkeys(shards)]
    versions = await swarm.transport.shards.context_versions(ids)
    base = dict(data or {})
    return [
        Task(
            validate_name("spec", spec),
            text,
            data=base if versions[s] is None else {**base, "context_version": versions[s]},
            shard=s,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        for s in ids
    ]


def document_map(view: ContextView, max_rows: int = MAX_MAP_ROWS) -> list[str]:
    """Rows ``[path] lines F-L = context-file lines A-B``: which lines of the context
    file (the documents concatenated) hold which lines of which document."""
    rows: list[str] = []
    size = 0
    line = 1
    docs = view.context.documents
    for i, doc in enumerate(docs):
        n = view.line_count(i)
        if not n:
            continue
        last = doc.first_line + n - 1
        row = (
            f"[{doc.path}] lines {doc.first_line}-{last} = context-file lines {line}-{line + n - 1}"
        )
        line += n
        size += len(row) + 1
        if len(rows) >= max_rows or size > MAX_MAP_CHARS:
            rows.append(f"... and {len(docs) - i} more documents, not listed")
            break
        rows.append(row)
    return rows


def answer_prompt(question: str, view: ContextView | None, shard: str) -> str:
    """The text of a shard-answer task (see the module docstring)."""
    head = [
        "Answer the question from your context only: the text of the file named by the "
        "environment variable SWARMSTREAM_CONTEXT_FILE.",
        "",
        f"Question: {question}",
        "",
    ]
    version = None if view is None else view.context.version
    if view is None:
        head += [f"Shard {shard} has no context loaded: answer with found false.", ""]
    else:
        head += [
            f"Your context is shard {shard}'s context version {version}: these documents, "
            "concatenated in this order.",
            *document_map(view),
            "",
        ]
    return "\n".join(head) + answer_instructions(version) + "\n"


async def answer_tasks(
    swarm: Swarm,
    question: str,
    shards: Sequence[str],
    spec: str,
    *,
    checker: CitationChecker | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timeout: float | None = None,
) -> list[Task]:
    """One shard-answer task per shard (not posted): its text is ``answer_prompt``,
    its data ``{"question", "format", "context_version"}``. Reads the shards' current
    versions in one round trip and their contexts (for the map) through ``checker``,
    whose cache then serves the citation checks."""
    checker = checker or CitationChecker.of(swarm)
    ids = [validate_name("shard", s) for s in dict.fromkeys(shards)]
    versions = await checker.current_versions(ids)
    got = await asyncio.gather(*(_view(checker, s, versions[s]) for s in ids))
    tasks: list[Task] = []
    for s, view in zip(ids, got, strict=True):
        data: dict[str, Any] = {"question": question, "format": ANSWER_FORMAT}
        if view is not None:
            data["context_version"] = view.context.version
        tasks.append(
            Task(
                validate_name("spec", spec),
                answer_prompt(question, view, s),
                data=data,
                shard=s,
                max_attempts=max_attempts,
                timeout=timeout,
            )
        )
    return tasks


async def _view(checker: CitationChecker, shard: str, version: int | None) -> ContextView | None:
    if version is None:
        return None
    got = await checker.view(shard, version)
    return got if isinstance(got, ContextView) else None
