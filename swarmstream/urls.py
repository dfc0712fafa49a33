"""Redis URLs: which topology a URL names, its hosts, and its redacted form.

Accepted forms (``rediss`` in place of ``redis`` means TLS)::

    redis://[user:password@]host:port[/db]          one server; a cluster node is
                                                    detected (INFO cluster) and used
                                                    as a cluster
    unix:///path/to/redis.sock[?db=N]               one server over a Unix socket
    redis+cluster://[user:password@]host:port[,host:port...]
                                                    Redis Cluster, named (no probe)
    redis+sentinel://[user:password@]host:port[,host:port...]/MASTER[/db]
                                                    the primary that Sentinel names
                                                    MASTER, followed across failovers

The ``redis+sentinel`` form is the one redis-py's issue tracker, Kombu and several
client libraries converged on; ``user:password`` are the data nodes' credentials,
and ``?sentinel_password=...`` (with ``sentinel_username``) authenticates to the
sentinels when they need it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

from swarmstream.errors import ConfigError


class Topology(StrEnum):
    """How the Redis behind a URL is organised."""

    STANDALONE = "standalone"
    CLUSTER = "cluster"
    SENTINEL = "sentinel"


_SCHEMES = {
    "redis": (Topology.STANDALONE, False),
    "rediss": (Topology.STANDALONE, True),
    "unix": (Topology.STANDALONE, False),
    "redis+cluster": (Topology.CLUSTER, False),
    "rediss+cluster": (Topology.CLUSTER, True),
    "redis+sentinel": (Topology.SENTINEL, False),
    "rediss+sentinel": (Topology.SENTINEL, True),
}


@dataclass(frozen=True)
class RedisUrl:
    """A parsed Redis URL (see the module docstring)."""

    url: str
    topology: Topology
    tls: bool
    hosts: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    db: int = 0
    master: str | None = None
    query: dict[str, str] = field(default_factory=dict)

    @property
    def named_topology(self) -> bool:
        """True when the scheme names the topology (no detection needed)."""
        return self.topology is not Topology.STANDALONE

    def standalone_url(self, host: str, port: int) -> str:
        """A plain redis:// URL for one of the hosts (credentials and db kept)."""
        auth = ""
        if self.password is not None or self.username:
            auth = f"{self.username or ''}:{self.password or ''}@"
        return f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{port}/{self.db}"


def redact(url: str) -> str:
    """The URL with any password (``user:password@`` or ``?password=``) replaced by
    ``***``, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        auth, _, hosts = netloc.rpartition("@")
        user, colon, _ = auth.partition(":")
        netloc = f"{user}:***@{hosts}" if colon else netloc
    out = f"{scheme}://{netloc}{slash}{tail}"
    if "password=" in out:
        head, _, query = out.partition("?")
        parts = [
            p.split("=", 1)[0] + "=***" if p.split("=", 1)[0].endswith("password") else p
            for p in query.split("&")
        ]
        out = f"{head}?{'&'.join(parts)}"
    return out


def _hosts(netloc: str, shown: str) -> tuple[tuple[str, int], ...]:
    out = []
    for part in netloc.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon:
            host, port = part.strip(), "26379" if "sentinel" in shown else "6379"
        host = host.strip("[]")
        if not host:
            raise ConfigError(f"invalid Redis URL {shown!r}: no host in {part!r}")
        try:
            number = int(port)
        except ValueError:
            raise ConfigError(f"invalid Redis URL {shown!r}: bad port {port!r}") from None
        if not 0 < number < 65536:
            raise ConfigError(f"invalid Redis URL {shown!r}: bad port {port!r}")
        out.append((host, number))
    return tuple(out)


def parse(url: str) -> RedisUrl:
    """Parse and check a Redis URL; raises ConfigError with a one-line reason."""
    shown = redact(url)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"invalid Redis URL {shown!r}: it must start with redis://, rediss://, unix://, "
            "redis+cluster:// or redis+sentinel:// (see README, Redis URLs)"
        )
    topology, tls = _SCHEMES[scheme]
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if scheme == "unix":
        if not parts.path:
            raise ConfigError(f"invalid Redis URL {shown!r}: no socket path")
        return RedisUrl(url, topology, tls, db=_db(query.get("db", "0"), shown), query=query)
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        user, colon, pw = auth.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    hosts = _hosts(netloc, shown) if netloc else ()
    if not hosts:
        raise ConfigError(f"invalid Redis URL {shown!r}: no host")
    path = [p for p in parts.path.split("/") if p]
    master = None
    if topology is Topology.SENTINEL:
        if not path:
            raise ConfigError(
                f"invalid Redis URL {shown!r}: name the primary, "
                "redis+sentinel://host:26379[,host:port...]/MASTER_NAME[/DB]"
            )
        master, path = path[0], path[1:]
    elif len(hosts) > 1 and topology is Topology.STANDALONE:
        raise ConfigError(
            f"invalid Redis URL {shown!r}: several hosts need redis+cluster:// or redis+sentinel://"
        )
    if len(path) > 1:
        raise ConfigError(f"invalid Redis URL {shown!r}: unexpected path {parts.path!r}")
    db = _db(path[0] if path else query.get("db", "0"), shown)
    if topology is Topology.CLUSTER and db != 0:
        raise ConfigError(f"invalid Redis URL {shown!r}: a cluster has only database 0")
    return RedisUrl(url, topology, tls, hosts, username, password, db, master, query)


def _db(text: str, shown: str) -> int:
    try:
        db = int(text)
    except ValueError:
        raise ConfigError(f"invalid Redis URL {shown!r}: bad database {text!r}") from None
    if db < 0:
        raise ConfigError(f"invalid Redis URL {shown!r}: bad database {text!r}")
    return db
