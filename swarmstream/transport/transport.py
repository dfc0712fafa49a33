"""The transport: one object, built once from the settings, that owns the link to
Redis (standalone, Cluster or Sentinel), the key builder, the Lua scripts and the
stores. Everything above the transport layer takes a ``Transport``."""

from __future__ import annotations

from swarmstream.keys import Keys
from swarmstream.settings import Settings
from swarmstream.transport.bridge_state import BridgeStore
from swarmstream.transport.budgets import BudgetStore
from swarmstream.transport.link import Link, detect, make_link, open_link
from swarmstream.transport.protocol import ProtocolStore
from swarmstream.transport.registry import Registry
from swarmstream.transport.results import Results
from swarmstream.transport.scripts import Scripts
from swarmstream.transport.shards import ShardStore
from swarmstream.transport.stats import StatsReader
from swarmstream.transport.streams import Streams
from swarmstream.urls import Topology


class Transport:
    """The link, keys, scripts and stores of one namespace.

    Build it with ``await Transport.open(settings)`` (which detects a cluster behind
    a redis:// URL), or wrap an existing link with ``Transport(link, settings)``."""

    def __init__(self, link: Link, settings: Settings) -> None:
        self.link = link
        self.settings = settings
        self.keys = Keys(settings.redis.namespace)
        self.scripts = Scripts.register(link.client)
        self.streams = Streams(link, self.keys, self.scripts, settings.retention)
        self.results = Results(link, self.keys, self.scripts)
        self.registry = Registry(link, self.keys)
        self.shards = ShardStore(link, self.keys)
        self.stats = StatsReader(link, self.keys)
        self.protocol = ProtocolStore(link, self.keys, self.scripts)
        self.bridges = BridgeStore(link, self.keys, self.streams)
        self.budgets = BudgetStore(link, self.keys)

    @classmethod
    async def open(cls, settings: Settings, client_name: str | None = None) -> Transport:
        """A transport for ``settings.redis.url`` (not yet checked: see ``check``)."""
        return cls(await open_link(settings.redis, client_name), settings)

    @classmethod
    def create(cls, settings: Settings, client_name: str | None = None) -> Transport:
        """A transport built without I/O (a redis:// cluster node is found by
        ``detected``)."""
        return cls(make_link(settings.redis, client_name), settings)

    async def detected(self, client_name: str | None = None) -> Transport:
        """This transport, or a new one on a ClusterLink if its redis:// URL turned
        out to point at a cluster node (this one is then closed)."""
        link = await detect(self.link, client_name)
        return self if link is self.link else Transport(link, self.settings)

    @property
    def topology(self) -> Topology:
        return self.link.topology

    @property
    def failures(self) -> int:
        """Connection failures so far (each may have lost a reply)."""
        return self.link.failures

    async def check(self) -> tuple[int, ...]:
        """Ping Redis and check its version; raises ConnectionFailed with advice."""
        return await self.link.version()

    async def aclose(self) -> None:
        await self.streams.aclose()
        await self.link.aclose()
