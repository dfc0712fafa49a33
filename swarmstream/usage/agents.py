"""Recognizing what an agent CLI printed on stdout: its answer, its usage, its error.

The shapes, as read from each project's own source and documentation:

* Claude Code, ``claude -p --output-format json``: one ``{"type": "result", "subtype":
  "success" | "error_max_turns" | "error_during_execution" | "error_max_budget_usd",
  "is_error", "result", "session_id", "num_turns", "total_cost_usd", "usage",
  "modelUsage": {model: {inputTokens, outputTokens, cacheReadInputTokens,
  cacheCreationInputTokens, costUSD, ...}}, "structured_output"?, "errors"?}``. A
  failed API call comes as ``subtype: "success"`` with ``is_error: true`` and the
  message in ``result``; the ``error_*`` subtypes put theirs in ``errors``.
  ``--output-format stream-json --verbose`` prints JSON lines: ``{"type": "system",
  "subtype": "init", "model", "session_id"}``, ``assistant`` and ``user`` messages,
  and the same ``result`` object last. (docs.anthropic.com/en/docs/claude-code/
  sdk/sdk-headless; the Agent SDK's result message as described on
  docs.rs/claude-code-agent ``ResultMessage``; transcripts in public repositories.)
* Gemini CLI, ``gemini -p ... --output-format json``: ``{"session_id"?, "response",
  "stats": {"models": {model: {"api": {...}, "tokens": {"input", "prompt",
  "candidates", "total", "cached", "thoughts", "tool"}}}, "tools", "files"},
  "error"?: {"type", "message", "code"?}}``; ``--output-format stream-json``: JSON
  lines ``init`` (session_id, model), ``message`` (role, content, delta),
  ``tool_use``, ``tool_result``, ``error`` (non-fatal) and a final ``result``
  (``status``, ``error``?, ``stats``: total_tokens, input_tokens, output_tokens,
  cached, input, duration_ms, tool_calls). (google-gemini/gemini-cli:
  packages/core/src/output/types.ts, json-formatter.ts, stream-json-formatter.ts,
  telemetry/uiTelemetry.ts; docs/cli/headless.md.)
* Codex, ``codex exec --json``: JSON lines ``thread.started`` (thread_id),
  ``turn.started``, ``item.started|updated|completed`` (``item.type`` is
  ``agent_message`` with ``text`` for the answer), ``turn.completed`` (``usage``:
  input_tokens, cached_input_tokens, output_tokens), ``turn.failed`` (``error.message``)
  and ``error`` (``message``). (openai/codex: codex-rs/exec/src/exec_events.rs,
  event_processor_with_jsonl_output.rs.) The model is not in this output.
* swarmstream's own object: ``{"content", "sources", "usage", "data"}``, optionally
  with ``model``, ``cost_usd``, ``session_id``, ``turns`` next to them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from swarmstream.usage.core import EMPTY, Usage, normalize, text_of, token_counts, total

CLAUDE = "claude"
GEMINI = "gemini"
CODEX = "codex"
#: swarmstream's own JSON object
OBJECT = "object"

_OWN_KEYS = ("content", "sources", "usage", "data")
_CLAUDE_EVENTS = frozenset({"system", "assistant", "user", "stream_event"})
_GEMINI_EVENTS = frozenset({"init", "message", "tool_use", "tool_result"})
_GEMINI_KEYS = frozenset({"session_id", "response", "stats", "error"})
_MAX_ERROR = 2000


@dataclass(frozen=True, slots=True)
class AgentOutput:
    """An agent's stdout, recognized.

    ``agent`` is ``"claude"``, ``"gemini"``, ``"codex"`` or ``"object"`` (swarmstream's
    own object). ``content`` is the answer (None when the output holds none yet),
    ``is_error``/``error`` say the agent reported a failure, ``data`` is Claude's
    ``structured_output`` or the object's ``data``. ``fields`` holds the object's
    ``content``, ``sources``, ``usage`` and ``data`` exactly as printed, for the
    caller to validate (None for the agent CLIs).
    """

    agent: str
    content: str | None = None
    usage: Usage | None = None
    is_error: bool = False
    error: str | None = None
    data: Any = None
    fields: Mapping[str, Any] | None = None

    @property
    def structured(self) -> bool:
        """True for swarmstream's own object (``content``/``sources``/``usage``...)."""
        return self.fields is not None


def parse_agent_output(text: str) -> AgentOutput | None:
    """Recognize the stdout of Claude Code, Gemini CLI, Codex (see the module
    docstring) or swarmstream's own JSON object; None for anything else (plain text,
    other JSON). A single JSON object is read whole; otherwise every non-empty line
    must be a JSON object. Never raises."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    if stripped.endswith("}"):
        value = _loads(stripped)
        if isinstance(value, dict):
            return _from_object(value)
    events = []
    for line in stripped.splitlines():
        if line.strip():
            event = _loads(line)
            if not isinstance(event, dict):
                return None
            events.append(event)
    return _from_events(events)


def usage_so_far(text: str) -> Usage | None:
    """The usage in the complete lines of a cut-short output (a timeout, a kill):
    Codex's finished turns, Claude's stream-json messages, any whole JSON object."""
    complete = text[: text.rfind("\n") + 1]
    out = parse_agent_output(complete) if complete.strip() else None
    return out.usage if out is not None else None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return None


def _from_object(value: dict[str, Any]) -> AgentOutput | None:
    kind = value.get("type")
    if kind == "result" and ("is_error" in value or "subtype" in value):
        return _claude([value])
    if "content" not in value and "type" not in value and _looks_gemini(value):
        return _gemini(value)
    if "content" in value or "sources" in value:
        return _own(value)
    if _agent_of(value) is not None or kind == "error":
        return _from_events([value])
    if "usage" in value or isinstance(value.get("result"), str):
        return _own(value)
    return None


def _looks_gemini(value: dict[str, Any]) -> bool:
    """Gemini CLI's JSON: per-model ``stats``, or only its own keys with a ``response``
    or an ``error`` object (an error's output has no stats)."""
    stats = value.get("stats")
    if isinstance(stats, Mapping) and isinstance(stats.get("models"), Mapping):
        return True
    return value.keys() <= _GEMINI_KEYS and (
        isinstance(value.get("response"), str) or isinstance(value.get("error"), Mapping)
    )


def _agent_of(event: Mapping[str, Any]) -> str | None:
    """Which CLI prints this event (None for one all print, like ``error``)."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return None
    if "." in kind or kind == "request_user_input":
        return CODEX
    if kind in _CLAUDE_EVENTS:
        return CLAUDE
    if kind in _GEMINI_EVENTS:
        return GEMINI
    if kind == "result":
        return GEMINI if "status" in event and "is_error" not in event else CLAUDE
    return None


def _from_events(events: list[dict[str, Any]]) -> AgentOutput | None:
    agent = next((a for e in events if (a := _agent_of(e)) is not None), None)
    if agent is None and any(e.get("type") == "error" and "severity" not in e for e in events):
        agent = CODEX  # only Codex's fatal error events: {"type": "error", "message"}
    if agent == CODEX:
        return _codex(events)
    if agent == CLAUDE:
        return _claude(events)
    if agent == GEMINI:
        return _gemini_stream(events)
    return None


def _message(value: Any) -> str | None:
    """An error's message: a string, or the ``message`` of an error object."""
    if isinstance(value, Mapping):
        value = value.get("message")
    if isinstance(value, str) and value.strip():
        return value.strip()[:_MAX_ERROR]
    return None


#: keys of our object that describe usage, not the finding
_USAGE_KEYS = frozenset({"cost_usd", "model", "session_id", "turns", "result"})


def _own(value: dict[str, Any]) -> AgentOutput:
    fields = {k: value[k] for k in _OWN_KEYS if k in value}
    if "content" not in fields and isinstance(value.get("result"), str):
        fields["content"] = value["result"]  # as `claude -p --output-format json` names it
    extra = {k: v for k, v in value.items() if k not in _OWN_KEYS and k not in _USAGE_KEYS}
    if extra and "content" not in fields:
        # an object of the agent's own (an answer with its "sources"): the finding's
        # content is the whole object, and its other keys are its data
        fields["content"] = json.dumps(value, ensure_ascii=False)
        fields.setdefault("data", extra)
    content = fields.get("content")
    return AgentOutput(
        OBJECT,
        content=None if content is None else str(content),
        usage=normalize(value),
        data=fields.get("data"),
        fields=fields,
    )


def _claude(events: list[dict[str, Any]]) -> AgentOutput:
    model = session = answer = None
    result: dict[str, Any] | None = None
    messages: dict[str, Usage] = {}
    for event in events:
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            model, session = text_of(event.get("model")), text_of(event.get("session_id"))
        elif kind == "assistant" and isinstance(message := event.get("message"), Mapping):
            counts = token_counts(message.get("usage"))
            if counts is not None:  # one count per message id: its blocks repeat it
                key = text_of(message.get("id")) or f"#{len(messages)}"
                messages[key] = replace(counts, model=text_of(message.get("model")))
            answer = _text_of_blocks(message.get("content")) or answer
        elif kind == "result":
            result = event
    if result is None:  # cut short before the result: what the messages reported
        usage = total(messages.values())
        if messages:
            usage = replace(usage, model=usage.model or model, session_id=session)
        return AgentOutput(CLAUDE, content=answer, usage=None if usage.is_empty else usage)
    usage = normalize(result) or EMPTY
    usage = replace(usage, model=usage.model or model, session_id=usage.session_id or session)
    subtype = result.get("subtype")
    failed = result.get("is_error") is True or (
        isinstance(subtype, str) and subtype.startswith("error")
    )
    content = result.get("result")
    error = None
    if failed:
        errors = result.get("errors")
        listed = [m for e in errors if (m := _message(e))] if isinstance(errors, list) else []
        error = _message(content) or "; ".join(listed)[:_MAX_ERROR] or f"claude: {subtype}"
    return AgentOutput(
        CLAUDE,
        content=content if isinstance(content, str) else None,
        usage=None if usage.is_empty else usage,
        is_error=failed,
        error=error,
        data=result.get("structured_output"),
    )


def _text_of_blocks(content: Any) -> str | None:
    if not isinstance(content, list):
        return None
    texts = [
        b["text"] for b in content if isinstance(b, Mapping) and isinstance(b.get("text"), str)
    ]
    return "".join(texts) or None


def _gemini(value: dict[str, Any]) -> AgentOutput:
    error = value.get("error")
    response = value.get("response")
    failed = bool(error)
    return AgentOutput(
        GEMINI,
        content=response if isinstance(response, str) else None,
        usage=normalize(value),
        is_error=failed,
        error=(_message(error) or "gemini reported an error") if failed else None,
    )


def _gemini_stream(events: list[dict[str, Any]]) -> AgentOutput:
    model = session = None
    parts: list[str] = []
    result: dict[str, Any] | None = None
    for event in events:
        kind = event.get("type")
        if kind == "init":
            model, session = text_of(event.get("model")), text_of(event.get("session_id"))
        elif kind == "message" and event.get("role") == "assistant":
            if isinstance(content := event.get("content"), str):
                parts.append(content)
        elif kind == "result":
            result = event
    usage = normalize(result) if result is not None else None
    if usage is not None:
        usage = replace(usage, model=usage.model or model, session_id=usage.session_id or session)
    failed = result is not None and (
        result.get("status") == "error" or result.get("error") is not None
    )
    return AgentOutput(
        GEMINI,
        content="".join(parts) if parts else None,
        usage=usage,
        is_error=failed,
        error=(_message(result.get("error")) or "gemini reported an error")
        if failed and result is not None
        else None,
    )


def _codex(events: list[dict[str, Any]]) -> AgentOutput:
    """Codex's events. The usage of every ``turn.completed`` is summed, as its schema
    documents per-turn usage (``codex exec`` itself ends after one turn)."""
    session = answer = stream_error = turn_error = None
    turns: list[Usage] = []
    failed = False
    for event in events:
        kind = event.get("type")
        if kind == "thread.started":
            session = text_of(event.get("thread_id")) or session
        elif kind == "item.completed" and isinstance(item := event.get("item"), Mapping):
            if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
                answer = item["text"]
        elif kind == "turn.completed":
            turns.append(token_counts(event.get("usage")) or EMPTY)
            failed = False
        elif kind == "turn.failed":
            turns.append(EMPTY)
            failed, turn_error = True, _message(event.get("error")) or "turn failed"
        elif kind == "error":
            stream_error = _message(event) or stream_error
    if not turns and stream_error is not None:
        failed, turn_error = True, stream_error
    usage = replace(total(turns), session_id=session, turns=len(turns) or None)
    return AgentOutput(
        CODEX,
        content=answer,
        usage=None if usage.is_empty else usage,
        is_error=failed,
        error=turn_error if failed else None,
    )
