"""Prices per model, to compute the cost of usage an agent reported without one.

Configured like the ``[prices]`` table of a TOML settings file::

    [prices."claude-sonnet-4-5"]
    input = 3.0          # USD per million uncached input tokens
    output = 15.0
    cache_read = 0.3     # defaults to input
    cache_write = 3.75   # defaults to input
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from swarmstream.errors import ConfigError
from swarmstream.usage.core import COMPUTED, Usage

_FIELDS = ("input", "output", "cache_read", "cache_write")
_CACHE_LIMIT = 1024  # model names remembered by lookup()


def _rate(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{what} must be a number (USD per million tokens), not {value!r}")
    rate = float(value)
    if not math.isfinite(rate) or rate < 0:
        raise ConfigError(f"{what} must be a finite number >= 0, not {value!r}")
    return rate


@dataclass(frozen=True, slots=True, init=False)
class Price:
    """USD per million tokens of each kind; cache reads and writes default to the
    input price. Raises ConfigError for a negative or non-finite rate."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def __init__(
        self,
        input: float,
        output: float,
        cache_read: float | None = None,
        cache_write: float | None = None,
    ) -> None:
        rate = _rate(input, "input")
        object.__setattr__(self, "input", rate)
        object.__setattr__(self, "output", _rate(output, "output"))
        read = rate if cache_read is None else _rate(cache_read, "cache_read")
        object.__setattr__(self, "cache_read", read)
        write = rate if cache_write is None else _rate(cache_write, "cache_write")
        object.__setattr__(self, "cache_write", write)

    def cost(self, usage: Usage) -> float:
        """The cost in USD of ``usage``'s tokens at these prices."""
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * self.cache_read
            + usage.cache_write_tokens * self.cache_write
        ) / 1_000_000


class PriceTable:
    """Prices by model name.

    ``lookup`` matches an exact name first, then the longest configured name that the
    model's name starts with: ``"claude-sonnet-4-5"`` prices
    ``"claude-sonnet-4-5-20250929"`` and ``"claude-sonnet-4-5[1m]"``. A prefix matches
    any continuation, so configure ``"gpt-4o-mini"`` as well as ``"gpt-4o"`` when both
    are used: the longer one wins. Lookups are remembered, so pricing a task costs a
    dict lookup.
    """

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices = dict(prices or {})
        self._prefixes = sorted(self._prices, key=len, reverse=True)
        self._seen: dict[str, Price | None] = {}

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> PriceTable:
        """Build from ``{model: {"input": x, "output": y, "cache_read"?: z,
        "cache_write"?: w}}`` (the TOML ``[prices]`` table); ConfigError with a
        one-line message for a bad entry."""
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"prices must be a table of models, not {type(mapping).__name__}")
        prices = {}
        for model, entry in mapping.items():
            if not isinstance(model, str) or not model.strip():
                raise ConfigError(f"prices: invalid model name {model!r}")
            if not isinstance(entry, Mapping):
                raise ConfigError(f"prices.{model}: expected a table with input and output")
            unknown = sorted(str(k) for k in entry if k not in _FIELDS)
            if unknown:
                known = ", ".join(_FIELDS)
                raise ConfigError(f"prices.{model}: unknown key {unknown[0]!r} (known: {known})")
            missing = [k for k in ("input", "output") if k not in entry]
            if missing:
                raise ConfigError(f"prices.{model}: missing {missing[0]!r} (USD per million)")
            try:
                prices[model.strip()] = Price(**{k: entry[k] for k in _FIELDS if k in entry})
            except ConfigError as exc:
                raise ConfigError(f"prices.{model}.{exc}") from None
        return cls(prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({sorted(self._prices)!r})"

    def lookup(self, model: str | None) -> Price | None:
        """The price of ``model``: its exact entry, else the longest prefix's."""
        if not model:
            return None
        try:
            return self._seen[model]
        except KeyError:
            pass
        price = self._prices.get(model)
        if price is None:
            prefix = next((p for p in self._prefixes if model.startswith(p)), None)
            price = None if prefix is None else self._prices[prefix]
        if len(self._seen) >= _CACHE_LIMIT:
            self._seen.clear()
        self._seen[model] = price
        return price

    def cost(self, usage: Usage) -> float | None:
        """The cost of ``usage`` at its model's price, None when the model is unpriced."""
        price = self.lookup(usage.model)
        return None if price is None else price.cost(usage)

    def apply(self, usage: Usage) -> Usage:
        """``usage`` with ``cost_usd`` computed (``cost_source="computed"``) when its
        cost is unknown, it has tokens and its model is priced. A reported cost is
        never overridden; otherwise ``usage`` comes back unchanged."""
        if usage.cost_usd is not None or not usage.tokens:
            return usage
        cost = self.cost(usage)
        if cost is None:
            return usage
        return replace(usage, cost_usd=cost, cost_source=COMPUTED)
