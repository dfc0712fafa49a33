"""Recording what an attempt spent when no Result will carry it.

A successful attempt reports its usage in its Result. An attempt that fails (raises,
times out, is cancelled) has no Result, yet the agent may well have spent tokens. The
caller of one handler invocation opens a meter; the handler (or the exec handler on
its behalf) calls ``spend()`` with what it knows was spent; the caller reads
``meter.spent`` afterwards, whatever happened::

    with usage.metering() as meter:
        try:
            result = await handler(task, context)
        except Exception:
            lost = meter.spent   # None when nothing was reported

The meter lives in a ContextVar, so it reaches code awaited in the same task, tasks it
creates, and threads run through ``contextvars.copy_context().run`` (as the callable
handler adapter runs sync handlers). Adding is thread-safe. Meters nest: what is spent
inside an inner ``metering()`` is recorded by the outer ones too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from swarmstream.usage.core import Usage, normalize

_current: ContextVar[Meter | None] = ContextVar("swarmstream_usage_meter", default=None)


class Meter:
    """Usage spent during one handler invocation (see ``metering``)."""

    __slots__ = ("_lock", "_parent", "_spent")

    def __init__(self, parent: Meter | None = None) -> None:
        self._lock = threading.Lock()
        self._parent = parent
        self._spent: Usage | None = None

    @property
    def spent(self) -> Usage | None:
        """The sum of everything spent so far, or None when nothing was."""
        return self._spent

    def add(self, usage: Usage) -> None:
        """Record ``usage`` here and in the meters this one is nested in."""
        meter: Meter | None = self
        while meter is not None:
            with meter._lock:
                meter._spent = usage if meter._spent is None else meter._spent.combine(usage)
            meter = meter._parent

    def __repr__(self) -> str:
        return f"Meter(spent={self._spent!r})"


@contextmanager
def metering() -> Iterator[Meter]:
    """A new Meter that ``spend()`` records into until the block ends."""
    meter = Meter(_current.get())
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)


def current_meter() -> Meter | None:
    """The meter ``spend()`` would record into now, if any."""
    return _current.get()


def spend(usage: Any) -> None:
    """Record usage spent by the current attempt that no Result will report (a failed
    call, an error the agent reported, a timeout). Anything ``normalize`` accepts; a
    no-op outside ``metering()`` or when nothing is known."""
    meter = _current.get()
    if meter is None:
        return
    known = normalize(usage)
    if known is not None:
        meter.add(known)
