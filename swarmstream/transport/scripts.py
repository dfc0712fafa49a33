"""Lua scripts, loaded from ``swarmstream/lua`` and run with EVALSHA.

Scripts receive every key in KEYS[]; none builds a key name itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_NAMES = (
    "complete",
    "bury",
    "renew",
    "retry",
    "release",
    "reclaim",
    "trim",
    "prune",
    "requeue",
    "vanished",
    "publish",
)


def _source(name: str) -> str:
    return resources.files("swarmstream").joinpath("lua", f"{name}.lua").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Scripts:
    """The registered scripts of one client. Calling one runs EVALSHA (EVAL on NOSCRIPT)."""

    complete: AsyncScript
    bury: AsyncScript
    renew: AsyncScript
    retry: AsyncScript
    release: AsyncScript
    reclaim: AsyncScript
    trim: AsyncScript
    prune: AsyncScript
    requeue: AsyncScript
    vanished: AsyncScript
    publish: AsyncScript

    def source(self, name: str) -> str:
        """A script's Lua source, by script name."""
        return str(getattr(self, name).script)

    def shas(self) -> dict[str, str]:
        """Each script's SHA1 (what EVALSHA names it by), by script name."""
        return {name: str(getattr(self, name).sha) for name in _NAMES}

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        loaded: dict[str, Any] = {n: client.register_script(_source(n)) for n in _NAMES}
        return cls(**loaded)
