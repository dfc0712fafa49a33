"""What a swarm spent, and the budgets that bound it: domain objects, free of Redis.

The Lua steps that record a finding, a retried attempt or a dead letter add the
attempt's usage to two hashes of the spec (``keys.SpecKeys.usage`` and
``usage_workers``), in the same atomic step, so totals never count an attempt twice.
Their fields are ``<prefix><measure>``:

- measures: ``input``, ``output``, ``cache_read``, ``cache_write`` (tokens),
  ``cost`` (USD, reported or computed), ``cost_computed`` (the part of ``cost``
  computed from the price table), ``attempts`` (attempts that reported usage) and
  ``unpriced`` (attempts with tokens but no known cost);
- prefixes in the spec's ``usage`` hash: none (the spec's total), ``model:<model>:``
  and ``shard:<shard>:``; in its ``usage_workers`` hash: ``<worker>:``.

A measure that stayed zero is never written. ``Totals.from_fields`` reads them back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from swarmstream.errors import ConfigError
from swarmstream.models import Finding

#: the measures kept per prefix, in the order the Lua step packs them
MEASURES = ("input", "output", "cache_read", "cache_write", "cost", "cost_computed")
#: counters kept per prefix besides the measures
COUNTS = ("attempts", "unpriced")
MODEL, SHARD = "model:", "shard:"


@dataclass(frozen=True, slots=True)
class Totals:
    """Usage added up over attempts (of a spec, a model, a shard or a worker)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    #: the part of ``cost_usd`` computed from the price table (the rest was reported)
    cost_computed_usd: float = 0.0
    attempts: int = 0  # attempts that reported usage
    unpriced: int = 0  # attempts with tokens but no known cost: cost_usd is a floor

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Totals)))

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 9),
            "cost_computed_usd": round(self.cost_computed_usd, 9),
            "attempts": self.attempts,
            "unpriced": self.unpriced,
        }

    @classmethod
    def from_fields(cls, values: Mapping[str, str], prefix: str = "") -> Totals:
        """The totals under ``prefix`` of a usage hash (str keys and values)."""

        def num(name: str) -> float:
            raw = values.get(prefix + name)
            try:
                value = float(raw) if raw is not None else 0.0
            except ValueError:
                return 0.0
            return value if math.isfinite(value) else 0.0

        return Totals(
            input_tokens=int(num("input")),
            output_tokens=int(num("output")),
            cache_read_tokens=int(num("cache_read")),
            cache_write_tokens=int(num("cache_write")),
            cost_usd=num("cost"),
            cost_computed_usd=num("cost_computed"),
            attempts=int(num("attempts")),
            unpriced=int(num("unpriced")),
        )


def _groups(values: Mapping[str, str], prefix: str) -> dict[str, Totals]:
    """Totals per name for fields ``<prefix><name>:<measure>`` (names may hold ':')."""
    names = {key[len(prefix) :].rpartition(":")[0] for key in values if key.startswith(prefix)}
    return {name: Totals.from_fields(values, f"{prefix}{name}:") for name in sorted(names) if name}


@dataclass(frozen=True, slots=True)
class SpecUsage:
    """A spec's usage hash, decoded: its total, and the totals per model and shard."""

    total: Totals = field(default_factory=Totals)
    models: Mapping[str, Totals] = field(default_factory=dict)
    shards: Mapping[str, Totals] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, values: Mapping[str, str]) -> SpecUsage:
        return cls(
            total=Totals.from_fields(values),
            models=_groups(values, MODEL),
            shards=_groups(values, SHARD),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **self.total.to_json(),
            "models": {m: t.to_json() for m, t in self.models.items()},
            "shards": {s: t.to_json() for s, t in self.shards.items()},
        }


def worker_totals(values: Mapping[str, str]) -> dict[str, Totals]:
    """A spec's ``usage_workers`` hash, decoded: totals per worker name."""
    return _groups(values, "")


def add_up(items: Mapping[str, Totals], more: Mapping[str, Totals]) -> dict[str, Totals]:
    """Merge two name -> totals maps (the same model over several specs, say)."""
    out = dict(items)
    for name, totals in more.items():
        out[name] = out[name] + totals if name in out else totals
    return out


# -- budgets ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit on a spec or a whole namespace: USD and/or tokens."""

    usd: float | None = None
    tokens: int | None = None

    def __post_init__(self) -> None:
        if self.usd is not None and (not math.isfinite(self.usd) or self.usd < 0):
            raise ConfigError(f"budget usd must be a number >= 0, not {self.usd!r}")
        if self.tokens is not None and self.tokens < 0:
            raise ConfigError(f"budget tokens must be an integer >= 0, not {self.tokens!r}")

    @property
    def unlimited(self) -> bool:
        return self.usd is None and self.tokens is None

    def spent_by(self, totals: Totals) -> str | None:
        """Why ``totals`` exhaust this budget (a short phrase), or None while it lasts."""
        if self.usd is not None and totals.cost_usd >= self.usd:
            return f"spent ${totals.cost_usd:.4f} of ${self.usd:g}"
        if self.tokens is not None and totals.tokens >= self.tokens:
            return f"used {totals.tokens:,} of {self.tokens:,} tokens"
        return None

    def left(self, totals: Totals) -> tuple[float | None, int | None]:
        """USD and tokens left (None where unlimited; never below zero)."""
        usd = None if self.usd is None else max(0.0, self.usd - totals.cost_usd)
        tokens = None if self.tokens is None else max(0, self.tokens - totals.tokens)
        return usd, tokens

    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.usd is not None:
            out["usd"] = repr(float(self.usd))
        if self.tokens is not None:
            out["tokens"] = str(int(self.tokens))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"usd": self.usd, "tokens": self.tokens}

    @classmethod
    def from_fields(cls, values: Mapping[str, str]) -> Budget:
        """A budget hash, decoded; a field that does not parse is no limit."""

        def parse(name: str, kind: type[float] | type[int]) -> Any:
            raw = values.get(name)
            if raw in (None, ""):
                return None
            try:
                value = kind(float(raw)) if kind is int else kind(raw)
            except (TypeError, ValueError, OverflowError):
                return None
            return value if value >= 0 and math.isfinite(value) else None

        return cls(usd=parse("usd", float), tokens=parse("tokens", int))

    @classmethod
    def from_config(cls, where: str, value: Any) -> Budget:
        """A ``[budgets.<spec>]`` (or ``[budgets."*"]``) table of the config file."""
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table like {{ usd = 5.0, tokens = 2000000 }}")
        unknown = set(value) - {"usd", "tokens"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        usd, tokens = value.get("usd"), value.get("tokens")
        if usd is not None and (isinstance(usd, bool) or not isinstance(usd, int | float)):
            raise ConfigError(f"{where}.usd must be a number")
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)):
            raise ConfigError(f"{where}.tokens must be an integer")
        return cls(usd=None if usd is None else float(usd), tokens=tokens)


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A budget and what was spent against it, at one moment."""

    budget: Budget
    spent: Totals

    @property
    def paused_by(self) -> str | None:
        """Why work is paused (the budget is spent), or None."""
        return self.budget.spent_by(self.spent)

    def to_json(self) -> dict[str, Any]:
        usd_left, tokens_left = self.budget.left(self.spent)
        return {
            **self.budget.to_json(),
            "usd_left": usd_left,
            "tokens_left": tokens_left,
            "paused": self.paused_by is not None,
            "reason": self.paused_by,
        }


def spent_by_findings(findings: Iterable[Finding]) -> Totals:
    """What the attempts of these findings' tasks spent, as their histories tell
    (every recorded attempt once: the same sum the Lua totals keep)."""
    from swarmstream.codec import attempt_history
    from swarmstream.usage import Usage

    total = Totals()
    for finding in findings:
        for record in attempt_history(finding):
            raw = record.get("usage")
            if not isinstance(raw, Mapping) or not raw:
                continue
            u = Usage.from_dict(raw)
            total = total + Totals(
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cache_read_tokens=u.cache_read_tokens,
                cache_write_tokens=u.cache_write_tokens,
                cost_usd=u.cost_usd or 0.0,
                cost_computed_usd=(u.cost_usd or 0.0) if u.cost_source == "computed" else 0.0,
                attempts=1,
                unpriced=int(u.cost_usd is None and u.tokens > 0),
            )
    return total
