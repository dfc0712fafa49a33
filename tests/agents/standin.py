"""Shared code of the stand-in agents: what a real ``--exec`` agent does, without an LLM.

An agent reads its task on stdin and its shard's context from the file named by
``SWARMSTREAM_CONTEXT_FILE``; the task's context map says which lines of that file
are which lines of which document. It prints one JSON answer object on stdout.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

MAP_ROW = re.compile(r"^\[(.+)\] lines (\d+)-(\d+) = context-file lines (\d+)-(\d+)$")
VERSION = re.compile(r"context version (\d+)")
CODE = re.compile(r"\b\d{4}-[A-Z]+\b")


def task() -> str:
    return sys.stdin.read()


def question(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("Question: "):
            return line[len("Question: ") :]
    return ""


def version(text: str) -> int | None:
    m = VERSION.search(text)
    return int(m.group(1)) if m else None


def located_lines(text: str) -> list[tuple[str, int, str]]:
    """Every line of the context file as (path, the document's line number, text)."""
    rows = [m.groups() for m in map(MAP_ROW.match, text.splitlines()) if m]
    with open(os.environ["SWARMSTREAM_CONTEXT_FILE"], encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = []
    for path, first, _last, a, b in rows:
        for i in range(int(a), int(b) + 1):
            out.append((path, int(first) + i - int(a), lines[i - 1]))
    return out


def best_line(text: str) -> tuple[str, int, str] | None:
    """The line holding a code (``4417-ZETA``) that shares most words with the question."""
    words = {w for w in re.findall(r"[a-z]+", question(text).lower()) if len(w) > 3}
    scored = [
        (len(words & set(re.findall(r"[a-z]+", line.lower()))), path, n, line)
        for path, n, line in located_lines(text)
        if CODE.search(line)
    ]
    if not scored:
        return None
    _, path, n, line = max(scored, key=lambda s: (s[0], -s[2]))
    return path, n, line


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj))
