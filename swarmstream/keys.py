"""Every Redis key swarmstream uses is built here, and nowhere else.

Key layout for a namespace ``NS`` (default ``swarm``), a specialization ``S``
and a shard ``H``. The part in braces is the Redis Cluster hash tag: all keys
of one spec share a slot, so every multi-key atomic step (Lua) on a spec
touches a single slot; the same holds for one shard.

Per specialization (hash tag ``{S}``)::

    NS:spec:{S}:tasks          stream   task entries; consumer group "workers"
    NS:spec:{S}:findings       stream   one finding per task (MAXLEN ~ trimmed)
    NS:spec:{S}:dead           stream   dead letters (MAXLEN ~ trimmed)
    NS:spec:{S}:done:<task>    string   id of the task's finding entry (TTL)
    NS:spec:{S}:err:<task>     string   last error of a failed attempt (TTL)
    NS:spec:{S}:stats          hash     counters: ok, failed, dead, retried, buried,
                                        redelivered (entries taken over by XAUTOCLAIM)
    NS:spec:{S}:usage          hash     usage totals: the spec's, per model, per shard
                                        (fields: swarmstream.accounting)
    NS:spec:{S}:usage:workers  hash     usage totals per worker ("<worker>:<measure>")
    NS:spec:{S}:budget         hash     the spec's budget: usd, tokens (absent: none)
    NS:spec:{S}:hist:<task>    hash     attempt number -> JSON record of an attempt that
                                        did not end the task (TTL); moved into the finding
    NS:spec:{S}:leases         zset     entry id -> first delivery (ms), for entries held
                                        past a lease renewal, retried or released
    NS:spec:{S}:rel:<entry>    string   times a started entry was released (TTL)
    NS:spec:{S}:due            set      entry ids a reclaim scan found idle, left for any
                                        worker's reclaim.lua to take (TTL)
    NS:spec:{S}:lock:<chore>   string   the worker that does a chore this period (PX):
                                        scan (reclaim), trim, prune
    NS:spec:{S}:nil            (none)   never written: fills a KEYS[] slot when no task id
    NS:spec:{S}:bridge:<B>     string   "gen:offset" of the last bus line bridge B submitted
                                        to S (set in the MULTI of those XADDs)

Per shard (hash tag ``{H}``)::

    NS:shard:{H}:meta          hash     id, spec, context version, tokens, pass...
    NS:shard:{H}:ctx:<ver>     string   context bytes of one immutable version
    NS:shard:{H}:manifest:<ver> string  msgpack manifest of that version
    NS:shard:{H}:collected     stream   findings collected by the shard
    NS:shard:{H}:knowledge     hash     pass number -> synthesis (msgpack)
    NS:shard:{H}:workflow      hash     workflow progress (resumable)

Per bus bridge (hash tag ``{B}``, ``swarmstream bridge``; B is named after its file)::

    NS:bridge:{B}:state        hash     file position (dev, ino, gen, offset) and counters
    NS:bridge:{B}:pending      hash     task id -> JSON: a query line's task awaiting the
                                        response line the bridge appends for it
    NS:bridge:{B}:corr         hash     correlation id -> JSON: a served task written as a
                                        query line (state, and the answer once read)

Registries (one key each, no hash tag)::

    NS:specs                   set      every spec that has a task stream
    NS:workers                 zset     worker name -> last heartbeat (unix s)
    NS:worker:<name>           hash     worker state, expires with heartbeat TTL
    NS:shards                  zset     shard id -> last heartbeat (unix s)
    NS:budget                  hash     the namespace's budget (usd, tokens) and the last
                                        tally of its spending (spent_usd, spent_tokens, at)
    NS:budget:tally            string   lock: the worker that tallies the namespace's
                                        spending this interval (PX)
    NS:protocol                hash     protocol version, script SHA1s and the settings
                                        every worker must share (first writer wins)

``swarmstream bench`` also writes its plain redis-py reference keys in its own
throwaway namespace: ``NS:raw:{T}:<name>`` (tasks, results, ctx).

An ACL user confined to one namespace needs only the key pattern ``~NS:*``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from swarmstream.errors import ConfigError

#: Consumer group every worker of a spec joins.
GROUP = "workers"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid spec, shard or namespace name.

    Names are 1-64 characters of letters, digits, ``.``, ``_`` and ``-``, and
    start with a letter or digit. Braces and colons are refused because they
    would break the hash tags and the key layout.
    """
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ConfigError(
            f"invalid {kind} name {value!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


#: the per-spec chores that one worker does for the whole swarm each period
CHORES = ("scan", "trim", "prune")


@dataclass(frozen=True, slots=True)
class SpecKeys:
    """Keys of one specialization. All share the hash tag ``{spec}``."""

    namespace: str
    spec: str

    @property
    def _base(self) -> str:
        return f"{self.namespace}:spec:{{{self.spec}}}"

    @property
    def tasks(self) -> str:
        return f"{self._base}:tasks"

    @property
    def findings(self) -> str:
        return f"{self._base}:findings"

    @property
    def dead(self) -> str:
        return f"{self._base}:dead"

    @property
    def stats(self) -> str:
        return f"{self._base}:stats"

    @property
    def leases(self) -> str:
        return f"{self._base}:leases"

    @property
    def due(self) -> str:
        """Entry ids a reclaim scan found idle and left for other workers to take."""
        return f"{self._base}:due"

    def lock(self, chore: str) -> str:
        """The lock (SET NX PX) of a chore one worker does per period for the whole
        swarm: ``scan`` (reclaim), ``trim``, ``prune``."""
        if chore not in CHORES:
            raise ValueError(f"unknown chore {chore!r}")
        return f"{self._base}:lock:{chore}"

    @property
    def usage(self) -> str:
        return f"{self._base}:usage"

    @property
    def usage_workers(self) -> str:
        return f"{self._base}:usage:workers"

    @property
    def budget(self) -> str:
        return f"{self._base}:budget"

    def history(self, task_id: str) -> str:
        return f"{self._base}:hist:{task_id}"

    def released(self, entry_id: str) -> str:
        return f"{self._base}:rel:{entry_id}"

    @property
    def nil(self) -> str:
        """A key of this slot that is never written (placeholder in KEYS[])."""
        return f"{self._base}:nil"

    def done(self, task_id: str) -> str:
        return f"{self._base}:done:{task_id}"

    def err(self, task_id: str) -> str:
        return f"{self._base}:err:{task_id}"

    def bridged(self, bridge: str) -> str:
        """The last bus line a bridge submitted to this spec (see ``BridgeKeys``)."""
        return f"{self._base}:bridge:{validate_name('bridge', bridge)}"


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """Keys of one memory shard. All share the hash tag ``{shard}``."""

    namespace: str
    shard: str

    @property
    def _base(self) -> str:
        return f"{self.namespace}:shard:{{{self.shard}}}"

    @property
    def meta(self) -> str:
        return f"{self._base}:meta"

    def context(self, version: int) -> str:
        return f"{self._base}:ctx:{version}"

    def manifest(self, version: int) -> str:
        return f"{self._base}:manifest:{version}"

    @property
    def collected(self) -> str:
        return f"{self._base}:collected"

    @property
    def knowledge(self) -> str:
        return f"{self._base}:knowledge"

    @property
    def workflow(self) -> str:
        return f"{self._base}:workflow"


@dataclass(frozen=True, slots=True)
class BridgeKeys:
    """Keys of one bus bridge (``swarmstream bridge``). All share the hash tag ``{bridge}``."""

    namespace: str
    bridge: str

    @property
    def _base(self) -> str:
        return f"{self.namespace}:bridge:{{{self.bridge}}}"

    @property
    def state(self) -> str:
        return f"{self._base}:state"

    @property
    def pending(self) -> str:
        return f"{self._base}:pending"

    @property
    def corr(self) -> str:
        return f"{self._base}:corr"


@dataclass(frozen=True, slots=True)
class Keys:
    """Entry point to the key layout of one namespace."""

    namespace: str

    def __post_init__(self) -> None:
        validate_name("namespace", self.namespace)

    def spec(self, spec: str) -> SpecKeys:
        return _spec_keys(self.namespace, spec)

    def shard(self, shard: str) -> ShardKeys:
        return ShardKeys(self.namespace, validate_name("shard", shard))

    def bridge(self, bridge: str) -> BridgeKeys:
        return BridgeKeys(self.namespace, validate_name("bridge", bridge))

    def spec_of(self, tasks_key: str) -> str:
        """The spec whose task stream ``tasks_key`` is (the inverse of ``spec``)."""
        prefix = f"{self.namespace}:spec:{{"
        if not tasks_key.startswith(prefix) or not tasks_key.endswith("}:tasks"):
            raise ValueError(f"not a task stream key of {self.namespace!r}: {tasks_key!r}")
        return tasks_key[len(prefix) : -len("}:tasks")]

    @property
    def specs(self) -> str:
        return f"{self.namespace}:specs"

    @property
    def budget(self) -> str:
        return f"{self.namespace}:budget"

    @property
    def budget_tally(self) -> str:
        return f"{self.namespace}:budget:tally"

    @property
    def protocol(self) -> str:
        return f"{self.namespace}:protocol"

    @property
    def workers(self) -> str:
        return f"{self.namespace}:workers"

    def worker(self, name: str) -> str:
        return f"{self.namespace}:worker:{name}"

    @property
    def shards(self) -> str:
        return f"{self.namespace}:shards"

    def raw(self, tag: str, name: str) -> str:
        """A key of ``swarmstream bench``'s plain redis-py reference (not swarmstream's)."""
        return f"{self.namespace}:raw:{{{validate_name('tag', tag)}}}:{name}"


@functools.lru_cache(maxsize=4096)
def _spec_keys(namespace: str, spec: str) -> SpecKeys:
    """The keys of a spec, made once (every hot command names them; a bad name
    raises, and an exception is never cached)."""
    return SpecKeys(namespace, validate_name("spec", spec))
