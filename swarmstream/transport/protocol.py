"""The swarm's protocol record (``NS:protocol``): the protocol version, the SHA1 of
each Lua script and the settings that every worker of a swarm must share, published
once by the first worker and checked by every later one (docs/protocol.md §2, §6.1).

A worker in another language reads it to learn the values it must use; a worker
whose own values differ is told so at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swarmstream.codec import text as _s
from swarmstream.errors import ConfigError
from swarmstream.keys import Keys
from swarmstream.settings import Settings
from swarmstream.transport.link import Link
from swarmstream.transport.scripts import Scripts

#: the wire protocol this code speaks (docs/protocol.md); the major number changes
#: only with an incompatible change
PROTOCOL_VERSION = "1.2"

#: settings that must be the same for every worker of a swarm (script arguments)
SHARED = ("claim_idle_ms", "done_ttl", "error_ttl", "findings_maxlen", "dead_maxlen")


@dataclass(frozen=True)
class ProtocolRecord:
    """What ``NS:protocol`` holds: ``version``, ``script:<name>`` SHA1s and the
    shared settings, all as strings."""

    version: str
    scripts: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings, scripts: Scripts) -> ProtocolRecord:
        """This process's record."""
        r = settings.retention
        shared = {
            "claim_idle_ms": int(settings.worker.claim_idle * 1000),
            "done_ttl": r.done_ttl,
            "error_ttl": r.error_ttl,
            "findings_maxlen": r.findings_maxlen,
            "dead_maxlen": r.dead_maxlen,
        }
        return cls(PROTOCOL_VERSION, scripts.shas(), {k: str(v) for k, v in shared.items()})

    @classmethod
    def from_fields(cls, flat: dict[str, str]) -> ProtocolRecord:
        scripts = {k[len("script:") :]: v for k, v in flat.items() if k.startswith("script:")}
        shared = {k: v for k, v in flat.items() if k in SHARED}
        return cls(flat.get("version", ""), scripts, shared)

    def fields(self) -> dict[str, str]:
        out = {"version": self.version, **self.settings}
        out.update({f"script:{name}": sha for name, sha in self.scripts.items()})
        return out

    def differences(self, published: ProtocolRecord) -> list[str]:
        """How this record differs from the published one, one line each."""
        out = []
        if published.version != self.version:
            out.append(f"protocol version {self.version} here, {published.version} published")
        for name in sorted(set(self.settings) | set(published.settings)):
            mine, theirs = self.settings.get(name), published.settings.get(name)
            if mine != theirs:
                out.append(f"{name} is {mine} here but {theirs} in the swarm")
        theirs_of = published.scripts
        changed = [n for n, sha in sorted(self.scripts.items()) if theirs_of.get(n, sha) != sha]
        if changed:
            out.append(f"scripts differ from the swarm's: {', '.join(changed)}")
        return out

    def compatible(self, published: ProtocolRecord) -> bool:
        """Same major protocol version (the rest is reported, not refused)."""
        return published.version.split(".")[0] == self.version.split(".")[0]


class ProtocolStore:
    """Reads and publishes ``NS:protocol``."""

    def __init__(self, link: Link, keys: Keys, scripts: Scripts) -> None:
        self.link = link
        self.client: Any = link.client
        self.keys = keys
        self.scripts = scripts

    async def publish(self, record: ProtocolRecord) -> tuple[bool, ProtocolRecord]:
        """Publish ``record`` unless a record exists; (published?, the record in force)."""
        flat = [x for pair in record.fields().items() for x in pair]
        reply = await self.scripts.publish(keys=[self.keys.protocol], args=flat)
        if int(reply[0]) == 1:
            return True, record
        pairs = [_s(x) for x in reply[1:]]
        return False, ProtocolRecord.from_fields(dict(zip(pairs[::2], pairs[1::2], strict=True)))

    async def join(self, mine: ProtocolRecord) -> list[str]:
        """Publish ``mine`` if the swarm has no record, else compare with it: another
        major version raises ConfigError; other differences come back, one line each."""
        published, record = await self.publish(mine)
        if published:
            return []
        if not mine.compatible(record):
            raise ConfigError(
                f"this process speaks swarmstream protocol {mine.version} but the swarm "
                f"{self.keys.namespace!r} uses {record.version} ({self.keys.protocol}): "
                "run workers of one major version"
            )
        return mine.differences(record)

    async def read(self) -> ProtocolRecord | None:
        raw = await self.client.hgetall(self.keys.protocol)
        if not raw:
            return None
        return ProtocolRecord.from_fields({_s(k): _s(v) for k, v in raw.items()})

    async def replace(self, record: ProtocolRecord) -> None:
        """Publish ``record`` over whatever is there (after changing the swarm's
        settings everywhere, or an upgrade that changed the scripts)."""
        await self.link.transaction(
            [("DEL", self.keys.protocol), ("HSET", self.keys.protocol, *_flat(record))],
            key=self.keys.protocol,
        )


def _flat(record: ProtocolRecord) -> list[str]:
    return [x for pair in record.fields().items() for x in pair]
