"""Anthropic Messages streaming, with extended thinking streamed as reasoning.

The request, the stream, the hang-up and the failures are ``streaming.providers.http_sse``'s; this module
gives the body and the mapping from Messages stream events to events (parsed with orjson).

``OPTIONS`` (all optional):

* ``base_url``: else ``$ANTHROPIC_BASE_URL``, else Anthropic's own; ``api_key_env`` (default
  ``ANTHROPIC_API_KEY``); ``timeout`` (seconds, SDK default 600); ``headers``; ``verify``, ``cert``,
  ``sdk_transport``, ``max_line_bytes``: see ``HTTPSSEProvider``.
* ``max_tokens``: the reply's token limit when the request sets none (default 4096).
* ``thinking_budget``: thinking tokens when a reply asks for reasoning (default 2048, at least 1024);
  ``max_tokens`` is raised by the budget so the visible reply keeps its limit. ``thinking_type``:
  ``"enabled"`` (default, with the budget) or ``"adaptive"`` for models that decide for themselves.
* ``cache_control``: e.g. ``{"type": "ephemeral"}`` to cache the conversation prefix automatically.
* ``extra_body``: merged into the request body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import anthropic
import orjson

from streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    parse_tool_input,
)
from streaming.providers.base import ChatMessage, ChatRequest
from streaming.providers.http_sse import SDK, HTTPSSEProvider
from streaming.providers.upstream import ErrorEvent, as_text, malformed, result_text, truncated

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 4096
DEFAULT_THINKING_BUDGET = 2048

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool-calls",
    "refusal": "content-filter",
}

_USAGE_FIELDS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")


class MessageEvents:
    """The mapping from Messages stream events to events, shared by ``stream`` and ``astream``.

    Usage arrives twice: ``message_start`` has the input side (and a first output count);
    ``message_delta`` has the cumulative output count and may restate the input fields. The first is
    yielded as a partial ``Usage`` just before the first text, so a reply stopped or failed after
    that text keeps the exact input side (cache reads and writes included). Not on its own: until the
    first text a failure is retried, and a call that produced nothing has no usage.
    """

    __slots__ = ("reported", "stop_reason", "stopped", "tools", "usage")

    def __init__(self) -> None:
        self.usage: dict[str, int] = {}
        self.stop_reason: str | None = None
        self.stopped = False
        self.reported = False
        self.tools: dict[int, tuple[str, str, list[str]]] = {}  # a tool_use block's index -> id, name, JSON

    def feed(self, data: bytes) -> list[Event]:
        event = orjson.loads(data)
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "error":
            raise ErrorEvent(event)
        try:
            return self._events(kind, event)
        except (AttributeError, TypeError):  # a delta, message or usage that is not an object
            raise malformed() from None

    def _events(self, kind: object, event: dict[str, Any]) -> list[Event]:
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            delta_type = delta.get("type")
            if delta_type == "text_delta" and delta.get("text"):
                return self._first_report(TextDelta(as_text(delta["text"])))
            if delta_type == "thinking_delta" and delta.get("thinking"):
                return self._first_report(ReasoningDelta(as_text(delta["thinking"])))
            if delta_type == "input_json_delta" and delta.get("partial_json"):
                return self._tool_input(event.get("index"), as_text(delta["partial_json"]))
            if delta_type == "signature_delta" and delta.get("signature"):
                return [ReasoningSignature(as_text(delta["signature"]))]
            return []  # citations_delta
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                call: tuple[str, str, list[str]] = (
                    as_text(block.get("id") or ""),
                    as_text(block.get("name") or ""),
                    [],
                )
                self.tools[event.get("index", len(self.tools))] = call
                return self._first_report(ToolCallStart(call[0], call[1]))
        elif kind == "content_block_stop" and event.get("index") in self.tools:
            call_id, name, pieces = self.tools.pop(event["index"])
            arguments = "".join(pieces)
            return [ToolCall(call_id, name, parse_tool_input(arguments), arguments)]
        if kind == "message_start":
            self._merge((event.get("message") or {}).get("usage"))
        elif kind == "message_delta":
            stop_reason = (event.get("delta") or {}).get("stop_reason")
            self.stop_reason = as_text(stop_reason) if stop_reason else self.stop_reason
            self._merge(event.get("usage"))
        elif kind == "message_stop":
            self.stopped = True
        return []

    def _tool_input(self, index: object, text: str) -> list[Event]:
        call = self.tools.get(index) if isinstance(index, int) else None
        if call is None:
            return []
        call[2].append(text)
        return [ToolCallDelta(call[0], text)]

    def _first_report(self, delta: TextDelta | ReasoningDelta | ToolCallStart) -> list[Event]:
        if self.reported or not self.usage:
            return [delta]
        self.reported = True
        return [usage_from(self.usage, partial=True), delta]

    def _merge(self, usage: Mapping[str, Any] | None) -> None:
        if not usage:
            return
        if not isinstance(usage, Mapping):
            raise malformed()
        for name in _USAGE_FIELDS:
            if isinstance(usage.get(name), int):
                self.usage[name] = usage[name]
        details = usage.get("output_tokens_details")
        if isinstance(details, Mapping) and isinstance(details.get("thinking_tokens"), int):
            self.usage["thinking_tokens"] = details["thinking_tokens"]

    def end(self) -> list[Event]:
        """The body ended: usage, then the finish; a stream cut short is an error."""
        if not self.stopped and self.stop_reason is None:
            raise truncated()
        events: list[Event] = [usage_from(self.usage)] if self.usage else []
        events.append(Finish(STOP_REASONS.get(self.stop_reason or "", "other")))
        return events


def usage_from(usage: Mapping[str, int], *, partial: bool = False) -> Usage:
    """Anthropic counts cache reads and writes apart from ``input_tokens``; a normalized ``input_tokens``
    counts all input (``streaming.events.Usage``), so they are added in."""
    cache_read = usage.get("cache_read_input_tokens", 0)
    cache_write = usage.get("cache_creation_input_tokens", 0)
    return Usage(
        input_tokens=usage.get("input_tokens", 0) + cache_read + cache_write,
        output_tokens=usage.get("output_tokens", 0),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=usage.get("thinking_tokens", 0),
        partial=partial,
    )


class AnthropicProvider(HTTPSSEProvider):
    """Claude models over the Anthropic SDK's Messages API."""

    key_env: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    sdk = SDK(anthropic, anthropic.Anthropic, anthropic.AsyncAnthropic, anthropic.AnthropicError)
    path = "/v1/messages"
    default_base_url = DEFAULT_BASE_URL
    base_url_env = "ANTHROPIC_BASE_URL"

    def chunks(self) -> MessageEvents:
        return MessageEvents()

    def body(self, request: ChatRequest) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        max_tokens = int(request.max_output_tokens or self.options.get("max_tokens", DEFAULT_MAX_TOKENS))
        params: dict[str, Any] = {
            "model": request.model,
            "messages": [_message(m) for m in request.messages if m.role != "system"],
            "stream": True,
        }
        if system:
            params["system"] = system
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
            if request.tool_choice:
                params["tool_choice"] = {"type": request.tool_choice}
        if request.reasoning:
            if self.options.get("thinking_type", "enabled") == "adaptive":
                params["thinking"] = {"type": "adaptive"}
            else:
                budget = max(1024, int(self.options.get("thinking_budget", DEFAULT_THINKING_BUDGET)))
                params["thinking"] = {"type": "enabled", "budget_tokens": budget}
                max_tokens += budget  # thinking counts against max_tokens, which must exceed the budget
        params["max_tokens"] = max_tokens
        if self.options.get("cache_control"):
            params["cache_control"] = dict(self.options["cache_control"])
        params.update(self.options.get("extra_body") or {})
        return params

    def output_token_limit(self, reasoning: bool) -> int:
        """``max_tokens`` as ``_params`` sends it: thinking with a budget comes on top of the reply's."""
        limit = int(self.options.get("max_tokens", DEFAULT_MAX_TOKENS))
        if reasoning and self.options.get("thinking_type", "enabled") != "adaptive":
            limit += max(1024, int(self.options.get("thinking_budget", DEFAULT_THINKING_BUDGET)))
        return limit


def _message(message: ChatMessage) -> dict[str, Any]:
    """A context message as the Messages API takes it: an assistant's tool calls as ``tool_use`` blocks
    (after its signed thinking, which the API wants back with them), their results as ``tool_result``
    blocks of a user message."""
    if message.role == "tool":
        results = [
            {
                "type": "tool_result",
                "tool_use_id": r.call_id,
                "content": result_text(r),
                "is_error": r.error is not None,
            }
            for r in message.tool_results
        ]
        return {"role": "user", "content": results}
    if not message.tool_calls:
        return {"role": message.role, "content": message.content}
    blocks: list[dict[str, Any]] = []
    if message.reasoning_signature:
        blocks.append(
            {"type": "thinking", "thinking": message.reasoning, "signature": message.reasoning_signature}
        )
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": c.input or {}} for c in message.tool_calls
    ]
    return {"role": "assistant", "content": blocks}
