"""One frozen settings object, resolved once from flags, ``SWARMSTREAM_*``
environment variables and a TOML file (lowest to highest: defaults, file,
environment, flags). Nothing here is read at import time."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from swarmstream.errors import ConfigError
from swarmstream.keys import validate_name
from swarmstream.urls import parse as parse_url
from swarmstream.urls import redact as redact_url

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_NAMESPACE = "swarm"


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where Redis is and how to talk to it."""

    url: str = DEFAULT_URL
    namespace: str = DEFAULT_NAMESPACE
    #: time limit of one command (s); a blocking read gets its block time plus this.
    #: 0 = none (TCP keepalive still finds a dead peer, within about 25 s)
    socket_timeout: float = 10.0
    connect_timeout: float = 5.0
    health_check_interval: int = 15
    retries: int = 5
    #: how long a long-running process (worker, shard, run, monitor) waits for Redis
    #: to answer at start, retrying with backoff; None = as long as it takes
    connect_wait: float | None = None
    #: submit and completion wait (WAIT) until this many replicas have the write;
    #: 0 = don't wait (a failover can then lose the last writes: README, Durability)
    durable_replicas: int = 0
    #: how long such a wait may take (s) before the write is reported not durable
    durable_timeout: float = 5.0

    def __post_init__(self) -> None:
        parse_url(self.url)  # ConfigError with a one-line reason
        if self.durable_replicas < 0:
            raise ConfigError("durable_replicas must be 0 or more")
        if self.durable_timeout <= 0:
            raise ConfigError("durable_timeout must be more than 0 seconds")
        validate_name("namespace", self.namespace)

    @property
    def redacted_url(self) -> str:
        """The URL with any password (``user:password@`` or ``?password=``) replaced
        by ``***``, for messages and logs."""
        if "+" in self.url.partition("://")[0]:
            return redact_url(self.url)  # several hosts: urlsplit can't take them
        parts = urlsplit(self.url)
        if parts.password is not None:
            user = parts.username or ""
            host = parts.hostname or ""
            netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=netloc)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(k == "password" for k, _ in query):
            hidden = [(k, "***" if k == "password" else v) for k, v in query]
            parts = parts._replace(query=urlencode(hidden, safe="*/"))
        return urlunsplit(parts)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history Redis keeps. Nothing grows without bound."""

    findings_maxlen: int = 100_000
    dead_maxlen: int = 10_000
    done_ttl: int = 7 * 24 * 3600
    error_ttl: int = 24 * 3600


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a worker reads, leases, retries and stops."""

    concurrency: int = 8
    claim_idle: float = 60.0
    lease_interval: float | None = None  # default: claim_idle / 4
    reclaim_interval: float = 1.0
    block: float = 1.0
    grace: float = 30.0
    retry_base: float = 1.0
    retry_max: float = 60.0
    default_timeout: float | None = None
    heartbeat_interval: float = 2.0
    trim_interval: float = 5.0
    max_entry_bytes: int = 1 << 20
    once: bool = False
    max_tasks: int | None = None
    idle_exit: float | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.claim_idle <= 0:
            raise ConfigError("claim_idle must be positive")
        if self.lease_interval is not None and not 0 < self.lease_interval < self.claim_idle:
            raise ConfigError("lease_interval must be positive and shorter than claim_idle")

    @property
    def lease_every(self) -> float:
        """Seconds between lease renewals: well inside claim_idle."""
        return self.lease_interval if self.lease_interval is not None else self.claim_idle / 4

    @property
    def reclaim_every(self) -> float:
        return min(self.reclaim_interval, self.claim_idle / 2)

    @property
    def reclaim_every_ms(self) -> int:
        """The reclaim period in ms: also the period of the swarm's reclaim scan."""
        return max(1, int(self.reclaim_every * 1000))

    @property
    def heartbeat_ttl(self) -> int:
        return max(3, int(self.heartbeat_interval * 3 + 1))


@dataclass(frozen=True, slots=True)
class SpecDefaults:
    """The defaults of one spec, ``[specs.<name>]`` in the config file: what ``submit``
    gives that spec's tasks and how ``worker <name>`` runs them, unless a flag (or a
    task's own line) says otherwise. None: not set (the generic setting applies)."""

    #: deliveries before dead-lettering, for tasks that set none (``submit``)
    max_attempts: int | None = None
    #: handler time limit per attempt (s): ``submit`` gives it to tasks that set none,
    #: a worker applies it to tasks that arrive without one (``default_timeout``)
    timeout: float | None = None
    #: the worker's external command (``worker --exec``), split like a shell line
    exec: str | None = None
    #: the worker's handler (``worker --handler``); exclusive with ``exec``
    handler: str | None = None
    #: the worker's tasks at once (``worker --concurrency``)
    concurrency: int | None = None

    @classmethod
    def from_config(cls, where: str, table: Any) -> SpecDefaults:
        """Check a ``[specs.<name>]`` table (``where`` names it in errors)."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} must be a table")
        known = [f.name for f in fields(cls)]
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
            if value is None:
                continue
            if not _spec_value_ok(key, value):
                raise ConfigError(f"{where}: {key} {_SPEC_RULES[key]}, got {value!r}")
        if table.get("exec") is not None and table.get("handler") is not None:
            raise ConfigError(f"{where}: give exec or handler, not both")
        values = dict(table)
        if values.get("timeout") is not None:
            values["timeout"] = float(values["timeout"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The keys that are set, as in the config file."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


#: what each [specs.<name>] key must be (the end of its error message)
_SPEC_RULES = {
    "max_attempts": "must be an integer between 1 and 1000",
    "timeout": "must be a positive number of seconds",
    "exec": "must be a non-empty command string",
    "handler": "must be a handler name or module:function",
    "concurrency": "must be an integer of at least 1",
}


def _spec_value_ok(key: str, value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if key == "max_attempts":
        return number and isinstance(value, int) and 1 <= value <= 1000
    if key == "concurrency":
        return number and isinstance(value, int) and value >= 1
    if key == "timeout":
        return number and 0 < value < float("inf")
    return isinstance(value, str) and value.strip() != ""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a swarmstream process needs, resolved once."""

    redis: RedisSettings = field(default_factory=RedisSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    retention: Retention = field(default_factory=Retention)
    #: USD per million tokens, per model: ``[prices."<model>"]`` with input, output,
    #: cache_read, cache_write (swarmstream.usage.PriceTable); fills in the cost of
    #: usage reported without one. Spawned workers get it as SWARMSTREAM_PRICES (JSON).
    prices: Mapping[str, Any] = field(default_factory=dict)
    #: ``[budgets.<spec>]`` and ``[budgets."*"]`` (the namespace): what
    #: ``swarmstream budget apply`` writes to Redis
    budgets: Mapping[str, Any] = field(default_factory=dict)
    #: ``[specs.<spec>]``: per-spec defaults of submit and worker (``SpecDefaults``).
    #: Spawned workers get them as SWARMSTREAM_SPECS (JSON).
    specs: Mapping[str, SpecDefaults] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        config: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Resolve settings: defaults < TOML file < environment < ``overrides``.

        ``overrides`` are flat names (``url``, ``namespace``, ``concurrency``,
        ``claim_idle``...) whose value is not None.
        """
        env = os.environ if env is None else env
        flat: dict[str, Any] = {}
        tables: dict[str, Any] = {}
        if config is not None:
            data = _read_toml(Path(config))
            flat.update(data.pop("", {}))
            tables.update(data)
        flat.update(_from_env(env))
        for table in ("prices", "specs"):
            if raw := env.get(f"SWARMSTREAM_{table.upper()}"):
                try:
                    tables[table] = json.loads(raw)
                except ValueError:
                    raise ConfigError(f"SWARMSTREAM_{table.upper()} is not valid JSON") from None
        flat.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls.from_flat(flat), **_tables(tables))

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> Settings:
        """Build from flat names, each routed to the section that owns it."""
        sections: dict[str, dict[str, Any]] = {"redis": {}, "worker": {}, "retention": {}}
        owners = {
            f.name: section
            for section, klass in (
                ("redis", RedisSettings),
                ("worker", WorkerSettings),
                ("retention", Retention),
            )
            for f in fields(klass)
        }
        for name, value in flat.items():
            if name not in owners:
                raise ConfigError(f"unknown setting {name!r}")
            sections[owners[name]][name] = value
        try:
            return cls(
                redis=RedisSettings(**sections["redis"]),
                worker=WorkerSettings(**sections["worker"]),
                retention=Retention(**sections["retention"]),
            )
        except TypeError as exc:
            raise ConfigError(f"invalid settings: {exc}") from None

    def with_worker(self, **changes: Any) -> Settings:
        """A copy with some worker settings changed."""
        return replace(self, worker=replace(self.worker, **changes))

    def spec(self, name: str) -> SpecDefaults:
        """The defaults of spec ``name`` (all None when it has no ``[specs]`` table)."""
        return self.specs.get(name) or SpecDefaults()

    def spec_defaults(self, names: Sequence[str]) -> SpecDefaults:
        """The defaults of a worker serving ``names``: each key set by one of the specs
        or set alike by several; specs that disagree on a key are a ConfigError (one
        worker runs one handler: give the flag, or run one worker per spec)."""
        merged: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for name in names:
            for key, value in self.spec(name).to_json().items():
                if key in merged and merged[key] != value:
                    raise ConfigError(
                        f"[specs.{origin[key]}] and [specs.{name}] set different {key} "
                        f"({merged[key]!r}, {value!r}): give --{key.replace('_', '-')} "
                        "or run one worker per spec"
                    )
                merged[key], origin[key] = value, name
        if "exec" in merged and "handler" in merged:
            raise ConfigError(
                f"[specs.{origin['exec']}] sets exec and [specs.{origin['handler']}] handler: "
                "give --exec or --handler, or run one worker per spec"
            )
        return SpecDefaults(**merged)

    def to_json(self) -> dict[str, dict[str, Any]]:
        """Every setting by section, as in the TOML file, with the URL's password
        redacted: what ``swarmstream config`` and ``worker --show-settings`` print."""
        out = {name: dataclasses.asdict(section) for name, section in self._sections()}
        out["redis"]["url"] = self.redis.redacted_url
        out["prices"] = dict(self.prices)
        out["budgets"] = dict(self.budgets)
        if self.specs:
            out["specs"] = self._specs_json()
        return out

    def to_env(self) -> dict[str, str]:
        """The ``SWARMSTREAM_*`` variables that make ``load`` resolve these settings
        again (in a subprocess; the URL, password included, as
        ``SWARMSTREAM_REDIS_URL``). Settings that are None have no variable: a child
        must not inherit the parent's (see ``env_names``)."""
        out: dict[str, str] = {}
        for _, section in self._sections():
            for f in fields(section):
                value = getattr(section, f.name)
                if value is not None:
                    out[_env_name(f.name)] = str(value)
        if self.prices:
            out["SWARMSTREAM_PRICES"] = json.dumps(self.prices)
        if self.specs:
            out["SWARMSTREAM_SPECS"] = json.dumps(self._specs_json())
        return out

    def _specs_json(self) -> dict[str, dict[str, Any]]:
        return {name: defaults.to_json() for name, defaults in self.specs.items()}

    def _sections(self) -> tuple[tuple[str, Any], ...]:
        return (("redis", self.redis), ("worker", self.worker), ("retention", self.retention))


def env_names() -> frozenset[str]:
    """Every environment variable ``Settings.load`` reads."""
    names = (f"SWARMSTREAM_{n.upper()}" for n in _FIELD_KINDS)
    return frozenset({*names, _env_name("url"), "SWARMSTREAM_PRICES", "SWARMSTREAM_SPECS"})


def _tables(tables: Mapping[str, Any]) -> dict[str, Any]:
    """The ``prices``, ``budgets`` and ``specs`` tables, checked (a one-line
    ConfigError)."""
    from swarmstream.accounting import Budget
    from swarmstream.usage import PriceTable

    out: dict[str, Any] = {}
    if "prices" in tables:
        PriceTable.from_mapping(tables["prices"])  # raises ConfigError when invalid
        out["prices"] = dict(tables["prices"])
    if "budgets" in tables:
        budgets = tables["budgets"]
        if not isinstance(budgets, Mapping):
            raise ConfigError("[budgets] must be a table of [budgets.<spec>] tables")
        for name, value in budgets.items():
            if name != "*":
                validate_name("spec", name)
            Budget.from_config(f"[budgets.{name}]", value)
        out["budgets"] = dict(budgets)
    if "specs" in tables:
        specs = tables["specs"]
        if not isinstance(specs, Mapping):
            raise ConfigError("[specs] must be a table of [specs.<spec>] tables")
        for name in specs:
            try:
                validate_name("spec", name)
            except ConfigError as exc:
                raise ConfigError(f"[specs]: {exc}") from None
        out["specs"] = {
            name: SpecDefaults.from_config(f"[specs.{name}]", value)
            for name, value in specs.items()
        }
    return out


def _env_name(name: str) -> str:
    """The documented variable of a setting (the URL's is SWARMSTREAM_REDIS_URL)."""
    return "SWARMSTREAM_REDIS_URL" if name == "url" else f"SWARMSTREAM_{name.upper()}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for section in ("redis", "worker", "retention"):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [{section}] must be a table")
        flat.update(table)
    out: dict[str, Any] = {"": flat}
    for section in ("prices", "budgets", "specs"):
        if section in data:
            if not isinstance(data[section], dict):
                raise ConfigError(f"config file {path}: [{section}] must be a table")
            out[section] = data[section]
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name in _FIELD_KINDS:
        raw = env.get(f"SWARMSTREAM_{name.upper()}")
        if raw is None or raw == "":
            continue
        flat[name] = _coerce(name, raw)
    if "url" not in flat and env.get("SWARMSTREAM_REDIS_URL"):
        flat["url"] = env["SWARMSTREAM_REDIS_URL"]
    return flat


def _coerce(name: str, raw: str) -> Any:
    kind = _FIELD_KINDS.get(name, "str")
    try:
        if kind == "bool":
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(f"SWARMSTREAM_{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw


def _kind(annotation: Any) -> str:
    text = str(annotation)
    for kind in ("bool", "int", "float"):
        if text.startswith(kind):
            return kind
    return "str"


_FIELD_KINDS = {
    f.name: _kind(f.type)
    for klass in (RedisSettings, WorkerSettings, Retention)
    for f in dataclasses.fields(klass)
}
