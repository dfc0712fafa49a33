"""The handler contract, and adapting plain callables to it.

A handler is any callable ``fn(task)`` or ``fn(task, context)``, sync or async,
that returns the content of a finding: a ``str``, a ``Result``, or a dict with
``content`` and optionally ``sources``, ``usage`` and ``data``. Raising means the
attempt failed. Sync callables run in a thread pool so they never block the
worker's Redis traffic; they run in a copy of the caller's context, so
``swarmstream.usage.spend()`` reaches the caller's meter from the thread too.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from swarmstream.errors import HandlerError
from swarmstream.models import Result, Task
from swarmstream.usage import Usage

log = logging.getLogger(__name__)


@runtime_checkable
class ContextLike(Protocol):
    """What a handler sees of its parent shard's borrowed context."""

    @property
    def text(self) -> str: ...


@runtime_checkable
class Handler(Protocol):
    """An adapted handler, as the worker calls it."""

    name: str
    needs_context: bool

    async def __call__(self, task: Task, context: ContextLike | None) -> Result: ...


def to_result(value: Any) -> Result:
    """Coerce what a callable returned into a Result, or raise HandlerError. A
    ``usage`` given as a ``swarmstream.usage.Usage`` becomes its ``to_dict()``; a
    usage dict is kept as it is."""
    if isinstance(value, Result):
        if isinstance(value.usage, Usage):  # typed dict, but a Usage is easy to pass
            return dataclasses.replace(value, usage=value.usage.to_dict() or None)
        return value
    if isinstance(value, str):
        return Result(content=value)
    if isinstance(value, dict):
        content = value.get("content", "")
        sources = value.get("sources") or ()
        usage = value.get("usage")
        if isinstance(usage, Usage):
            usage = usage.to_dict() or None
        if not isinstance(content, str):
            content = str(content)
        if isinstance(sources, str) or not all(isinstance(s, str) for s in sources):
            raise HandlerError("'sources' must be a list of strings")
        if usage is not None and not isinstance(usage, dict):
            raise HandlerError("'usage' must be an object")
        return Result(content=content, sources=tuple(sources), usage=usage, data=value.get("data"))
    if value is None:
        return Result(content="")
    raise HandlerError(f"handler returned {type(value).__name__}; expected str, dict or Result")


class CallableHandler:
    """Adapts a Python callable (sync or async, with or without context)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__qualname__", repr(fn)))
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - callable objects
        )
        try:
            params = inspect.signature(fn).parameters
            positional = [
                p
                for p in params.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
            ]
            self.needs_context = len(positional) >= 2 or any(
                p.kind is p.VAR_POSITIONAL for p in positional
            )
        except (TypeError, ValueError):
            self.needs_context = False
        self._pool: ThreadPoolExecutor | None = None

    def use_pool(self, pool: ThreadPoolExecutor) -> None:
        """Run sync calls in this pool (the worker sizes it to its concurrency)."""
        self._pool = pool

    async def __call__(self, task: Task, context: ContextLike | None) -> Result:
        args: tuple[Any, ...] = (task, context) if self.needs_context else (task,)
        if self.is_async:
            value = await self.fn(*args)
        else:
            loop = asyncio.get_running_loop()
            run = contextvars.copy_context().run  # the caller's meter, in the thread too
            value = await loop.run_in_executor(self._pool, run, self.fn, *args)
            if inspect.isawaitable(value):
                value = await value
        return to_result(value)


AsyncHandlerFn = Callable[[Task, ContextLike | None], Awaitable[Result]]


def as_handler(obj: Any, name: str | None = None) -> Handler:
    """Return ``obj`` if it already is a Handler, else wrap the callable."""
    if isinstance(obj, Handler) and not inspect.isfunction(obj):
        return obj
    if not callable(obj):
        raise HandlerError(f"handler {obj!r} is not callable")
    return CallableHandler(obj, name)


async def close_handler(handler: Any) -> None:
    """Call a handler's optional ``close()`` (sync or async) to release what it holds;
    a failure is logged, never raised."""
    close = getattr(handler, "close", None)
    if not callable(close):
        return
    try:
        closing = close()
        if inspect.isawaitable(closing):
            await closing
    except Exception:
        log.exception("closing handler %s failed", getattr(handler, "name", handler))
