"""Built-in handlers that need no LLM: ``echo`` and ``sleep``."""

from __future__ import annotations

import asyncio
from typing import Any

from swarmstream.handlers.base import ContextLike
from swarmstream.models import Result, Task


class Echo:
    """Returns the task's text as the finding's content."""

    name = "echo"
    needs_context = False

    async def __call__(self, task: Task, context: ContextLike | None) -> Result:
        return Result(content=task.text)


def sleep_seconds(task: Task, default: float = 1.0) -> float:
    """Duration for ``sleep``: ``data.seconds`` or ``data.ms``, else the text as seconds."""
    data: Any = task.data
    if isinstance(data, dict):
        if isinstance(data.get("seconds"), int | float):
            return max(0.0, float(data["seconds"]))
        if isinstance(data.get("ms"), int | float):
            return max(0.0, float(data["ms"]) / 1000.0)
    try:
        return max(0.0, float(task.text))
    except ValueError:
        return default


class Sleep:
    """Simulates work of a given duration, then echoes the text."""

    name = "sleep"
    needs_context = False

    def __init__(self, default: float = 1.0) -> None:
        self.default = default

    async def __call__(self, task: Task, context: ContextLike | None) -> Result:
        seconds = sleep_seconds(task, self.default)
        await asyncio.sleep(seconds)
        return Result(content=f"slept {seconds:g}s: {task.text}")
