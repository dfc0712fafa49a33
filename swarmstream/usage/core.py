"""The Usage record, and ``normalize``: whatever a handler or an agent reported, as one
shape.

The four token counts are disjoint, so they add up and price simply:
``input_tokens`` is uncached input, ``output_tokens`` includes reasoning ("thinking")
tokens, ``cache_read_tokens`` and ``cache_write_tokens`` are the prompt cache's. The
providers disagree on whether their input count includes the cached tokens;
``normalize`` subtracts them where it does:

* excluded already (kept as is): the canonical dict (``input_tokens``,
  ``cache_read_tokens``, ``cache_write_tokens``); Anthropic's Messages API
  (``input_tokens``, ``cache_read_input_tokens``, ``cache_creation_input_tokens``);
  Claude Code's ``modelUsage`` entries (``inputTokens``, ``cacheReadInputTokens``,
  ``cacheCreationInputTokens``, and ``costUSD``; Bedrock's ``cacheWriteInputTokens``);
* included (subtracted): OpenAI Chat Completions (``prompt_tokens``,
  ``completion_tokens``, ``prompt_tokens_details.cached_tokens``); OpenAI Responses
  (``input_tokens``, ``input_tokens_details.cached_tokens``); Codex ``exec --json``
  (``input_tokens``, ``cached_input_tokens``); the Gemini API (``promptTokenCount``,
  ``cachedContentTokenCount``, in camelCase or snake_case); Gemini CLI's ``stats``
  (``models.<m>.tokens.prompt`` and ``cached``; stream-json ``input_tokens`` and
  ``cached``).

Gemini's candidate count leaves out its thoughts, which are billed as output, so they
are added to ``output_tokens`` (and its tool-use prompt tokens to ``input_tokens``);
OpenAI's and Codex's output counts include reasoning tokens already.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

#: ``cost_source``: the agent reported the cost, or it was computed from a price table
REPORTED = "reported"
COMPUTED = "computed"
#: the model of a sum of usages of different models
MIXED = "mixed"

_SOURCES = (REPORTED, COMPUTED)
_COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_MAX_COUNT = 10**15  # larger token counts are garbage, not usage
_MAX_COST = 1e9
_MAX_TEXT = 256
# keys read from the reporting object itself (and from its nested usage object)
_MODEL_KEYS = ("model", "modelVersion", "model_version")
_COST_KEYS = ("cost_usd", "total_cost_usd", "costUSD")
_SESSION_KEYS = ("session_id", "sessionId", "thread_id")
_TURN_KEYS = ("turns", "num_turns")
_FLAT_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cached_input_tokens",
)


def count_of(value: Any) -> int | None:
    """A token count from a reported value, or None when it is not one: bools,
    negative, fractional, NaN, infinite and absurdly large numbers are rejected;
    strings holding a number are accepted."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _MAX_COUNT else None
    if isinstance(value, float):
        ok = math.isfinite(value) and 0 <= value <= _MAX_COUNT and value.is_integer()
        return int(value) if ok else None
    if isinstance(value, str) and len(value) <= 32:
        try:
            return count_of(int(value))
        except ValueError:
            try:
                return count_of(float(value))
            except ValueError:
                return None
    return None


def cost_of(value: Any) -> float | None:
    """A cost in USD from a reported value, or None (same rules as ``count_of``,
    fractions allowed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and len(value) <= 32:
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float):
        try:
            cost = float(value)
        except OverflowError:
            return None
        return cost if math.isfinite(cost) and 0 <= cost <= _MAX_COST else None
    return None


def text_of(value: Any) -> str | None:
    """A model name or session id: a non-empty, UTF-8 encodable string of at most
    256 characters, stripped; else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > _MAX_TEXT:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON's \\ud800
        return None
    return text


def _n(value: Any) -> int:
    return count_of(value) or 0


@dataclass(frozen=True, slots=True)
class Usage:
    """What one attempt spent: tokens (disjoint counts, see the module docstring),
    cost and the agent's session.

    ``cost_source`` is ``"reported"`` when the agent reported ``cost_usd``,
    ``"computed"`` when a ``PriceTable`` filled it in, None when the cost is unknown.
    """

    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None
    cost_source: str | None = None
    session_id: str | None = None
    turns: int | None = None

    @property
    def tokens(self) -> int:
        """All tokens: input, output, cache reads and cache writes."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + (self.cache_write_tokens)
        )

    @property
    def is_empty(self) -> bool:
        """True when nothing at all is known (every field at its default)."""
        return self == EMPTY

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-safe dict with the canonical key names: None values and zero
        token counts are left out (``from_dict`` reads a missing count as 0), so an
        empty Usage gives ``{}``. ``turns`` and ``cost_usd`` are kept when 0."""
        out: dict[str, Any] = {}
        if self.model is not None:
            out["model"] = self.model
        for name in _COUNTS:
            if count := getattr(self, name):
                out[name] = count
        for name in ("cost_usd", "cost_source", "session_id", "turns"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> Usage:
        """The inverse of ``to_dict``, tolerant: unknown keys and bad values are
        ignored, a missing count is 0, and a cost without a valid ``cost_source`` is
        taken as reported. Other shapes go through ``normalize``."""
        if not isinstance(mapping, Mapping):
            return EMPTY
        cost = cost_of(mapping.get("cost_usd"))
        source = mapping.get("cost_source")
        return cls(
            text_of(mapping.get("model")),
            _n(mapping.get("input_tokens")),
            _n(mapping.get("output_tokens")),
            _n(mapping.get("cache_read_tokens")),
            _n(mapping.get("cache_write_tokens")),
            cost_usd=cost,
            cost_source=None if cost is None else source if source in _SOURCES else REPORTED,
            session_id=text_of(mapping.get("session_id")),
            turns=count_of(mapping.get("turns")),
        )

    def combine(self, other: Usage) -> Usage:
        """The sum of two usages.

        Tokens and turns add (None + n is n). The cost is the sum when both are known,
        else the known one: a lower bound, never an invented number; its source is
        ``"computed"`` if either part was computed. The model is kept when both agree
        (or one is unknown), else it becomes ``"mixed"``. The session id is the last
        known one (``other``'s if it has one).
        """
        if self.cost_usd is None or other.cost_usd is None:
            cost = self.cost_usd if other.cost_usd is None else other.cost_usd
            source = self.cost_source if other.cost_usd is None else other.cost_source
        else:
            cost = self.cost_usd + other.cost_usd
            sources = (self.cost_source, other.cost_source)
            source = COMPUTED if COMPUTED in sources else self.cost_source or other.cost_source
        if self.model is None or other.model is None or self.model == other.model:
            model = self.model if other.model is None else other.model
        else:
            model = MIXED
        turns = other.turns if self.turns is None else self.turns + (other.turns or 0)
        return Usage(
            model,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            cost,
            source,
            other.session_id if other.session_id is not None else self.session_id,
            turns,
        )

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return self.combine(other)


#: the Usage that knows nothing
EMPTY = Usage()


def total(usages: Iterable[Usage]) -> Usage:
    """The ``combine`` of several usages (``EMPTY`` for none)."""
    out = EMPTY
    for usage in usages:
        out = out.combine(usage)
    return out


#: the keys of ``Usage.to_dict``
_CANONICAL = frozenset(
    (
        "model",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "cost_source",
        "session_id",
        "turns",
    )
)


def normalize(value: Any) -> Usage | None:
    """Whatever a handler or an agent reported, as a Usage; None when nothing is known.

    Accepts a Usage; the canonical dict (``Usage.to_dict``); an object holding a
    ``usage`` (or Gemini's ``usageMetadata``) object next to ``model``, ``cost_usd``,
    ``session_id``, ``turns``; the usage objects of Anthropic, OpenAI (Chat Completions
    and Responses), Codex and Gemini; Claude Code's result (``modelUsage``,
    ``total_cost_usd``, ``num_turns``); Gemini CLI's output and its stream-json result
    (``stats``). Never raises: bad numbers are ignored.
    """
    if isinstance(value, Usage):
        return None if value.is_empty else value
    if not isinstance(value, Mapping):
        return None
    try:
        # the canonical dict (what swarmstream writes, what most handlers return):
        # read directly, without trying every provider's shape (the hot path)
        usage = Usage.from_dict(value) if _CANONICAL.issuperset(value) else _from_mapping(value)
    except Exception:  # a Mapping whose lookups raise: reported garbage, not our error
        return None
    return None if usage.is_empty else usage


def token_counts(m: Any) -> Usage | None:
    """The token counts of one usage object (any provider's shape), or None when it
    has none of the known keys."""
    if not isinstance(m, Mapping):
        return None
    get = m.get
    if "promptTokenCount" in m or "candidatesTokenCount" in m or "prompt_token_count" in m:
        # Gemini API usageMetadata (camelCase, or snake_case from the Python SDK)
        prompt = _n(get("promptTokenCount", get("prompt_token_count")))
        cached = _n(get("cachedContentTokenCount", get("cached_content_token_count")))
        tool = _n(get("toolUsePromptTokenCount", get("tool_use_prompt_token_count")))
        out = _n(get("candidatesTokenCount", get("candidates_token_count")))
        thoughts = _n(get("thoughtsTokenCount", get("thoughts_token_count")))
        return Usage(None, max(0, prompt - cached) + tool, out + thoughts, cached)
    if "prompt_tokens" in m or "completion_tokens" in m:  # OpenAI Chat Completions
        cached = _n(_nested(m, "prompt_tokens_details", "cached_tokens"))
        prompt = _n(get("prompt_tokens"))
        return Usage(None, max(0, prompt - cached), _n(get("completion_tokens")), cached)
    if "inputTokens" in m or "outputTokens" in m:  # Claude Code modelUsage, Bedrock
        write = get("cacheCreationInputTokens", get("cacheWriteInputTokens"))
        return Usage(
            None,
            _n(get("inputTokens")),
            _n(get("outputTokens")),
            _n(get("cacheReadInputTokens")),
            _n(write),
        )
    if not any(key in m for key in _FLAT_KEYS):
        return None
    given = _n(get("input_tokens"))
    if "cached_input_tokens" in m:  # Codex: input_tokens includes the cached ones
        cached = _n(get("cached_input_tokens"))
        given = max(0, given - cached)
    elif isinstance(get("input_tokens_details"), Mapping):  # OpenAI Responses: same
        cached = _n(_nested(m, "input_tokens_details", "cached_tokens"))
        given = max(0, given - cached)
    else:  # canonical and Anthropic: input_tokens excludes cache reads and writes
        cached = _n(get("cache_read_tokens", get("cache_read_input_tokens")))
    write = _n(get("cache_write_tokens", get("cache_creation_input_tokens")))
    return Usage(None, given, _n(get("output_tokens")), cached, write)


def _nested(m: Mapping[str, Any], key: str, inner: str) -> Any:
    value = m.get(key)
    return value.get(inner) if isinstance(value, Mapping) else None


def _first(sources: tuple[Mapping[str, Any], ...], keys: tuple[str, ...], read: Any) -> Any:
    """The first valid value of ``keys`` in ``sources`` (in order), read by ``read``."""
    for source in sources:
        for key in keys:
            if key in source and (value := read(source[key])) is not None:
                return value
    return None


def _from_mapping(m: Mapping[str, Any]) -> Usage:
    inner = m.get("usage")
    if not isinstance(inner, Mapping):
        meta = m.get("usageMetadata")  # a Gemini API response
        inner = meta if isinstance(meta, Mapping) else None
    stats = m.get("stats")
    by_model = _claude_models(m.get("modelUsage"))
    if by_model is not None and by_model.tokens:
        counts = by_model  # every model's usage, sub-agents included (as is the cost)
    elif isinstance(stats, Mapping) and (gemini := gemini_stats(stats)) is not None:
        counts = gemini
    else:
        counts = token_counts(inner if inner is not None else m) or EMPTY
        if by_model is not None:  # modelUsage without counts: its model and cost
            counts = replace(counts, model=by_model.model, cost_usd=by_model.cost_usd)
    sources = (m,) if inner is None else (m, inner)
    cost = _first(sources, _COST_KEYS, cost_of)
    source = m.get("cost_source", inner.get("cost_source") if inner is not None else None)
    if cost is None:
        cost, source = counts.cost_usd, REPORTED
    return replace(
        counts,
        model=_first(sources, _MODEL_KEYS, text_of) or counts.model,
        cost_usd=cost,
        cost_source=None if cost is None else source if source in _SOURCES else REPORTED,
        session_id=_first(sources, _SESSION_KEYS, text_of),
        turns=_first(sources, _TURN_KEYS, count_of),
    )


def _dominant_total(parts: list[Usage]) -> Usage:
    """The sum of per-model usages, named after the model that cost the most (or, when
    no cost is known, used the most tokens; the first one on a tie)."""
    top = max(parts, key=lambda u: (u.cost_usd or 0.0, u.tokens))
    return replace(total(parts), model=top.model)


def _claude_models(value: Any) -> Usage | None:
    """Claude Code's ``modelUsage``: ``{model id: {inputTokens, ..., costUSD}}``."""
    if not isinstance(value, Mapping):
        return None
    parts = []
    for name, entry in value.items():
        if isinstance(entry, Mapping):
            cost = cost_of(entry.get("costUSD"))
            counts = token_counts(entry) or EMPTY
            parts.append(replace(counts, model=text_of(name), cost_usd=cost, cost_source=REPORTED))
    return _dominant_total(parts) if parts else None


def gemini_stats(stats: Mapping[str, Any]) -> Usage | None:
    """Gemini CLI's ``stats``: per model in ``--output-format json``
    (``models.<m>.tokens``), or the flat totals of a stream-json ``result`` event."""
    models = stats.get("models")
    if isinstance(models, Mapping):
        parts = []
        for name, entry in models.items():
            tokens = entry.get("tokens") if isinstance(entry, Mapping) else None
            if isinstance(tokens, Mapping):
                cached = _n(tokens.get("cached"))
                uncached = count_of(tokens.get("input"))  # prompt - cached, when given
                if uncached is None:
                    uncached = max(0, _n(tokens.get("prompt")) - cached)
                output = _n(tokens.get("candidates")) + _n(tokens.get("thoughts"))
                parts.append(
                    Usage(text_of(name), uncached + _n(tokens.get("tool")), output, cached)
                )
        return _dominant_total(parts) if parts else None
    if "input_tokens" not in stats and "total_tokens" not in stats:
        return None
    # stream-json: input_tokens includes `cached`; output_tokens leaves out thoughts,
    # so the rest of total_tokens (thoughts, tool prompts) counts as output
    prompt, cached, output = (_n(stats.get(k)) for k in ("input_tokens", "cached", "output_tokens"))
    uncached = count_of(stats.get("input"))
    if uncached is None:
        uncached = max(0, prompt - cached)
    rest = max(0, _n(stats.get("total_tokens")) - prompt - output)
    return Usage(None, uncached, output + rest, cached)
