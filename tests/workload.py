"""Handlers that tests load into worker processes as ``workload:NAME``."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from swarmstream import Task


def upper(task: Task) -> str:
    return task.text.upper()


def always_fail(task: Task) -> str:
    raise RuntimeError(f"cannot handle {task.text}")


def fail_first(task: Task) -> str:
    if task.attempt < 2:
        raise ValueError("first attempt always fails")
    return f"ok at attempt {task.attempt}"


def crash(task: Task) -> str:
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


async def nap(task: Task) -> dict[str, object]:
    """Sleeps data['seconds'] (default 0.02), reports pid and attempt."""
    seconds = (task.data or {}).get("seconds", 0.02)
    await asyncio.sleep(seconds)
    return {"content": f"{task.text} by {os.getpid()}", "sources": [f"pid:{os.getpid()}"]}


def blocking_nap(task: Task) -> str:
    time.sleep((task.data or {}).get("seconds", 0.02))
    return task.text


async def nap_or_poison(task: Task) -> dict[str, object]:
    """Like ``nap``, but fails on every attempt when the text starts with 'poison'."""
    if task.text.startswith("poison"):
        raise RuntimeError(f"poisoned: {task.text}")
    return await nap(task)


async def hang(task: Task) -> str:
    """Never finishes on its own (a wedged agent)."""
    await asyncio.Event().wait()
    return "unreachable"


def surrogate(task: Task) -> str:
    """Returns a string that is not valid Unicode (a lone surrogate)."""
    return "broken \ud800 output"


def exits(task: Task) -> str:
    raise SystemExit(3)


def unencodable(task: Task) -> dict[str, object]:
    return {"content": "fine", "data": {1, 2, 3}}


def scripted(task: Task) -> object:
    """Does what the task's data says (the fuzz test drives handler results this way):
    ``{"do": "return", "value": V}`` returns V, ``{"do": "raise"}`` raises,
    ``{"do": "exit"}`` raises SystemExit; anything else echoes the text."""
    data = task.data if isinstance(task.data, dict) else {}
    action = data.get("do")
    if action == "raise":
        raise RuntimeError(f"scripted failure {data.get('value')!r}")
    if action == "exit":
        raise SystemExit(7)
    if action == "return":
        return data.get("value")
    return task.text


async def spender(task: Task) -> dict[str, object]:
    """Spends what task.data says: ``usage`` (returned with the finding), after
    ``seconds``; with ``fail_until`` N, attempts below N record their usage with
    ``spend()`` and fail."""
    from swarmstream import usage

    data = task.data if isinstance(task.data, dict) else {}
    await asyncio.sleep(data.get("seconds", 0.0))
    spent = data.get("usage")
    if task.attempt < data.get("fail_until", 0):
        usage.spend(spent)
        raise RuntimeError(f"attempt {task.attempt} fails after spending")
    return {"content": f"{task.text} done", "usage": spent}
