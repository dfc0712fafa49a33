"""Handlers: resolving a name, a ``module:function`` reference or a command."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from swarmstream.errors import HandlerNotFound
from swarmstream.handlers.base import CallableHandler, ContextLike, Handler, as_handler, to_result
from swarmstream.handlers.builtin import Echo, Sleep
from swarmstream.handlers.retrieve import Retrieve

BUILTINS: dict[str, Callable[[], Handler]] = {"echo": Echo, "sleep": Sleep, "retrieve": Retrieve}


def resolve(ref: str) -> Handler:
    """A built-in name (``echo``, ``sleep``...) or ``package.module:function``."""
    if ref in BUILTINS:
        return BUILTINS[ref]()
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        names = ", ".join(sorted(BUILTINS))
        raise HandlerNotFound(
            f"unknown handler {ref!r}: use a built-in ({names}) or 'module:function'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerNotFound(f"cannot import handler module {module_name!r}: {exc}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise HandlerNotFound(f"module {module_name!r} has no attribute {attr!r}") from None
    return as_handler(obj, ref)


__all__ = [
    "BUILTINS",
    "CallableHandler",
    "ContextLike",
    "Handler",
    "as_handler",
    "resolve",
    "to_result",
]
