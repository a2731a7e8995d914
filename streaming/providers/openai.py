"""OpenAI Chat Completions, and every server that speaks it (Groq, DeepSeek, Ollama, vLLM, OpenRouter...).

The request, the stream, the hang-up and the failures are ``streaming.providers.http_sse``'s; this module
gives the body and the mapping from Chat Completions chunks to events (parsed with orjson, about six
times cheaper than the SDK's per-chunk objects).

``OPTIONS`` (all optional):

* ``base_url``: e.g. ``"http://127.0.0.1:11434/v1"``; else ``$OPENAI_BASE_URL`` (or the variable named
  by ``base_url_env``); else OpenAI's own.
* ``api_key_env``: the variable holding the key (default ``OPENAI_API_KEY``); ``require_api_key``:
  False for local servers that need none.
* ``timeout``: seconds for connecting and for each read (SDK default 600); ``headers``: extra headers;
  ``verify``, ``cert``, ``sdk_transport``, ``max_line_bytes``: see ``HTTPSSEProvider``.
* ``max_output_tokens`` and ``max_tokens_param`` (``"max_completion_tokens"``, or ``"max_tokens"`` for
  servers that only know the old name).
* ``reasoning_effort``: sent when a reply asks for reasoning (o-series, gpt-5).
* ``include_usage``: ``stream_options.include_usage`` (default True); ``extra_body``: merged into the body.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import openai
import orjson

from streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
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

DEFAULT_BASE_URL = "https://api.openai.com/v1"

FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content-filter",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
}


def _int(mapping: object, key: str) -> int:
    value = mapping.get(key) if isinstance(mapping, Mapping) else None
    return value if isinstance(value, int) else 0


def usage_from(usage: Mapping[str, Any]) -> Usage:
    """Chat Completions usage: cached and cache-write tokens are inside ``prompt_tokens``, reasoning inside
    ``completion_tokens``. DeepSeek reports its cache hits as ``prompt_cache_hit_tokens``."""
    prompt = usage.get("prompt_tokens_details")
    completion = usage.get("completion_tokens_details")
    return Usage(
        input_tokens=_int(usage, "prompt_tokens"),
        output_tokens=_int(usage, "completion_tokens"),
        cached_input_tokens=_int(prompt, "cached_tokens") or _int(usage, "prompt_cache_hit_tokens"),
        cache_write_tokens=_int(prompt, "cache_write_tokens"),
        reasoning_tokens=_int(completion, "reasoning_tokens"),
    )


class ChatCompletionChunks:
    """The mapping from Chat Completions stream chunks to events, shared by ``stream`` and ``astream``.

    Tool calls stream as ``delta.tool_calls`` pieces, by ``index`` (several at once when the model
    calls tools in parallel): the first piece of each has its id and name, the others pieces of its
    JSON arguments. Each finished call is yielded as a ``ToolCall`` at the end of the stream.
    """

    __slots__ = ("calls", "done", "finish_reason", "usage")

    def __init__(self) -> None:
        self.usage: Mapping[str, Any] | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.calls: dict[int, tuple[str, str, list[str]]] = {}  # index -> id, name, argument pieces

    def feed(self, data: bytes) -> list[Event]:
        if data == b"[DONE]":
            self.done = True
            return []
        chunk = orjson.loads(data)
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error"):
            raise ErrorEvent(chunk)
        try:
            return self._events(chunk)
        except (AttributeError, TypeError):  # a choice or delta that is not an object
            raise malformed() from None

    def _events(self, chunk: dict[str, Any]) -> list[Event]:
        usage = chunk.get("usage")
        if usage:
            if not isinstance(usage, dict):
                raise malformed()
            self.usage = usage
        events: list[Event] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            # DeepSeek and vLLM send ``reasoning_content``; OpenRouter, Ollama and newer vLLM ``reasoning``.
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning and isinstance(reasoning, str):
                events.append(ReasoningDelta(reasoning))
            text = delta.get("content") or delta.get("refusal")
            if text:
                events.append(TextDelta(as_text(text)))
            for piece in delta.get("tool_calls") or ():
                events += self._tool_piece(piece)
            finish_reason = choice.get("finish_reason")
            if finish_reason:
                self.finish_reason = as_text(finish_reason)
        return events

    def _tool_piece(self, piece: dict[str, Any]) -> list[Event]:
        index = piece.get("index", len(self.calls))
        function = piece.get("function") or {}
        arguments = function.get("arguments") or ""
        events: list[Event] = []
        if index not in self.calls:
            # (Some compatible servers send no id: the call gets one, which its result names.)
            call_id = as_text(piece.get("id") or f"call_{uuid.uuid4().hex[:24]}")
            self.calls[index] = (call_id, as_text(function.get("name") or ""), [])
            events.append(ToolCallStart(*self.calls[index][:2]))
        call_id, _name, pieces = self.calls[index]
        if arguments:
            pieces.append(as_text(arguments))
            events.append(ToolCallDelta(call_id, pieces[-1]))
        return events

    def end(self) -> list[Event]:
        """The body ended: the tool calls, usage, then the finish; a stream cut short is an error."""
        if self.finish_reason is None and not self.done:
            raise truncated()
        events: list[Event] = []
        for index in sorted(self.calls):
            call_id, name, pieces = self.calls[index]
            arguments = "".join(pieces)
            events.append(ToolCall(call_id, name, parse_tool_input(arguments), arguments))
        if self.usage:
            events.append(usage_from(self.usage))
        events.append(Finish(FINISH_REASONS.get(self.finish_reason or "", "other")))
        return events


class OpenAIProvider(HTTPSSEProvider):
    """Chat Completions over the OpenAI SDK; any OpenAI-compatible server through ``base_url``."""

    key_env: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    sdk = SDK(openai, openai.OpenAI, openai.AsyncOpenAI, openai.OpenAIError)
    path = "/chat/completions"
    default_base_url = DEFAULT_BASE_URL
    base_url_env = "OPENAI_BASE_URL"

    def needs_api_key(self) -> bool:
        # A local server (Ollama, vLLM) takes calls without one.
        return super().needs_api_key() and bool(self.options.get("require_api_key", True))

    def key(self) -> str:
        if not self.options.get("require_api_key", True) and not (self.api_key() or "").strip():
            return "unused"  # the SDK insists on one; a local server ignores it
        return super().key()

    def chunks(self) -> ChatCompletionChunks:
        return ChatCompletionChunks()

    def body(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model,
            "messages": [item for m in request.messages for item in _messages(m)],
            "stream": True,
        }
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
            if request.tool_choice:
                params["tool_choice"] = request.tool_choice
        if self.options.get("include_usage", True):
            params["stream_options"] = {"include_usage": True}
        limit = request.max_output_tokens or self.options.get("max_output_tokens")
        if limit:
            params[self.options.get("max_tokens_param", "max_completion_tokens")] = int(limit)
        if request.reasoning and self.options.get("reasoning_effort"):
            params["reasoning_effort"] = self.options["reasoning_effort"]
        params.update(self.options.get("extra_body") or {})
        return params


def _messages(message: ChatMessage) -> list[dict[str, Any]]:
    """A context message as Chat Completions takes it: an assistant's tool calls in ``tool_calls``, and
    a tool message per result."""
    if message.role == "tool":
        return [
            {"role": "tool", "tool_call_id": r.call_id, "content": result_text(r)}
            for r in message.tool_results
        ]
    if message.tool_calls:
        calls = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
            for c in message.tool_calls
        ]
        return [{"role": "assistant", "content": message.content or None, "tool_calls": calls}]
    return [{"role": message.role, "content": message.content}]
