"""Google Gemini through google-genai's ``generate_content_stream``, thoughts streamed as reasoning.

Gemini sends few, large chunks, so the SDK's own parsing costs little here; its raw path is private.
The SDK gets its HTTP clients from this module, with a response hook that records each response a
call opens: closing the SDK's stream early does not close its response (the async ``aclose()`` stops
at the outer generator), so ``stream``/``astream`` close them themselves.

``OPTIONS`` (all optional):

* ``base_url``: else ``$GOOGLE_GEMINI_BASE_URL``, else Google's; ``api_version`` (SDK default, ``v1``;
  ``v1beta`` for preview features); ``api_key_env`` (default ``GEMINI_API_KEY``, then ``GOOGLE_API_KEY``).
* ``timeout``: seconds for connecting and for each read (default 600); ``headers``; ``verify`` and
  ``cert`` (TLS) and ``max_line_bytes`` (default 8 MB), as for ``HTTPSSEProvider``.
* ``max_output_tokens``; ``thinking_budget`` / ``thinking_level`` sent with ``include_thoughts`` when a
  reply asks for reasoning.
* ``automatic_continuation``: let the SDK resume long replies in further requests (default False:
  every request is one provider call, so a stopped reply makes no new request).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from contextvars import ContextVar
from typing import Any, ClassVar

import httpx2
import orjson
from google import genai
from google.genai import errors, types

from streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from streaming.exceptions import ProviderError
from streaming.providers.base import ChatMessage, ChatRequest, Provider
from streaming.providers.clients import HangupTransport, calling, tls_context
from streaming.providers.sse_lines import MAX_LINE, limit_lines
from streaming.providers.upstream import (
    SDKClients,
    common_error,
    hang_up_for,
    malformed,
    missing_key,
    notify_open,
    redacted,
    status_error,
    transport_classes,
    truncated,
)

DEFAULT_TIMEOUT = 600.0

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "CONTINUATION": "length",  # a long reply paused, not resumed (automatic_continuation off)
    "SAFETY": "content-filter",
    "RECITATION": "content-filter",
    "BLOCKLIST": "content-filter",
    "PROHIBITED_CONTENT": "content-filter",
    "SPII": "content-filter",
    "IMAGE_SAFETY": "content-filter",
    "IMAGE_PROHIBITED_CONTENT": "content-filter",
    "UNEXPECTED_TOOL_CALL": "tool-calls",
}


# What the SDK raises for a chunk of an odd shape: pydantic's ValidationError (a ValueError), or an
# AttributeError or TypeError from its converters (a finishReason that is a number, a chunk that is one).
_UNREADABLE = (ValueError, TypeError, AttributeError, KeyError)


class GeminiChunks:
    """The mapping from ``GenerateContentResponse`` chunks to events, shared by ``stream`` and ``astream``.

    Each chunk's ``usage_metadata`` is the running total so far: the last one is the call's usage.
    The ones before it are yielded as partial ``Usage``, each before its chunk's deltas, once the reply
    has text: a reply stopped or failed midway keeps the exact prompt count. Not before the first
    text: until then a failure is retried, and a call that produced nothing has no usage.
    """

    __slots__ = ("finish_reason", "started", "usage")

    def __init__(self) -> None:
        self.usage: types.GenerateContentResponseUsageMetadata | None = None
        self.finish_reason: str | None = None
        self.started = False

    def feed(self, chunk: types.GenerateContentResponse) -> list[Event]:
        if chunk.usage_metadata is not None:
            self.usage = chunk.usage_metadata
        if chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason:
            self.finish_reason = "content-filter"
        deltas = self._deltas(chunk)
        self.started = self.started or bool(deltas)
        # (A chunk that finishes the reply has the final count, which ``end`` yields.)
        if self.started and chunk.usage_metadata is not None and self.finish_reason is None:
            return [usage_from(chunk.usage_metadata, partial=True), *deltas]
        return deltas

    def _deltas(self, chunk: types.GenerateContentResponse) -> list[Event]:
        if not chunk.candidates:
            return []
        candidate = chunk.candidates[0]
        if candidate.finish_reason:
            reason = getattr(candidate.finish_reason, "value", candidate.finish_reason)
            self.finish_reason = FINISH_REASONS.get(str(reason), "other")
        events: list[Event] = []
        for part in (candidate.content.parts if candidate.content else None) or ():
            if part.function_call is not None:
                events += tool_call_events(part)
            elif part.text:
                events.append(ReasoningDelta(part.text) if part.thought else TextDelta(part.text))
        return events

    def end(self) -> list[Event]:
        """The body ended: usage, then the finish; a stream cut short is an error."""
        if self.finish_reason is None:
            raise truncated()
        events: list[Event] = [usage_from(self.usage)] if self.usage else []
        events.append(Finish(self.finish_reason))
        return events


def tool_call_events(part: types.Part) -> list[Event]:
    """A ``functionCall`` part, which comes whole, as the events of a streamed call. Gemini gives a call
    no id unless asked: it gets one here, which its result names (Gemini matches them by order). The
    part's thought signature (Gemini 3) goes back with the call in the next request."""
    call = part.function_call
    assert call is not None
    call_id = call.id or f"call_{uuid.uuid4().hex[:24]}"
    name = call.name or ""
    arguments = orjson.dumps(call.args or {}).decode()
    signature = base64.b64encode(part.thought_signature).decode() if part.thought_signature else None
    return [
        ToolCallStart(call_id, name),
        ToolCallDelta(call_id, arguments),
        ToolCall(call_id, name, dict(call.args or {}), arguments, signature),
    ]


def _content(message: ChatMessage) -> types.Content:
    """A context message as Gemini takes it: an assistant's tool calls as ``functionCall`` parts (with
    their thought signatures), their results as ``functionResponse`` parts of a user message."""
    if message.role == "tool":
        responses = [
            types.Part(
                function_response=types.FunctionResponse(
                    name=r.name, response={"error": r.error} if r.error is not None else {"output": r.output}
                )
            )
            for r in message.tool_results
        ]
        return types.Content(role="user", parts=responses)
    parts = [types.Part(text=message.content)] if message.content or not message.tool_calls else []
    for call in message.tool_calls:
        parts.append(
            types.Part(
                function_call=types.FunctionCall(name=call.name, args=call.input or {}),
                thought_signature=base64.b64decode(call.signature) if call.signature else None,
            )
        )
    return types.Content(role="model" if message.role == "assistant" else "user", parts=parts)


def _tools(request: ChatRequest, config: types.GenerateContentConfig) -> None:
    """The tools offered, as function declarations (their JSON schema as it is)."""
    declarations = [
        types.FunctionDeclaration(name=t.name, description=t.description, parameters_json_schema=t.parameters)
        for t in request.tools
    ]
    config.tools = [types.Tool(function_declarations=declarations)]
    # (The SDK calls Python functions itself when given some: these are declarations only.)
    config.automatic_function_calling = types.AutomaticFunctionCallingConfig(disable=True)
    if request.tool_choice == "none":
        mode = types.FunctionCallingConfigMode.NONE
        config.tool_config = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode=mode))


def usage_from(usage: types.GenerateContentResponseUsageMetadata, *, partial: bool = False) -> Usage:
    """``prompt_token_count`` includes cached content; thoughts are counted apart from candidates."""
    thoughts = usage.thoughts_token_count or 0
    return Usage(
        input_tokens=(usage.prompt_token_count or 0) + (usage.tool_use_prompt_token_count or 0),
        output_tokens=(usage.candidates_token_count or 0) + thoughts,
        cached_input_tokens=usage.cached_content_token_count or 0,
        reasoning_tokens=thoughts,
        partial=partial,
    )


class _OpenedResponses:
    """The HTTP responses one call opened, recorded by the clients' response hook while it runs."""

    def __init__(self, request: ChatRequest, max_line: int) -> None:
        self.request = request
        self.max_line = max_line
        self.responses: list[Any] = []

    def add(self, response: Any) -> None:
        self.responses.append(response)
        notify_open(self.request, response)
        limit_lines(response, self.max_line)  # (the SDK reads the stream's lines itself)

    def hang_up(self) -> None:
        # Synchronous, so it happens even if the task is cancelled again while closing.
        for response in self.responses:
            hang_up_for(response)()

    def close(self) -> None:
        self.hang_up()
        for response in self.responses:
            response.close()

    async def aclose(self) -> None:
        self.hang_up()
        for response in self.responses:
            await response.aclose()


_opened: ContextVar[_OpenedResponses | None] = ContextVar("streaming_gemini_opened", default=None)


def _record(response: httpx2.Response) -> None:
    opened = _opened.get()
    if opened is not None:
        opened.add(response)


async def _arecord(response: httpx2.Response) -> None:
    _record(response)


def _next(chunks: Iterator[types.GenerateContentResponse], opened: _OpenedResponses) -> Any:
    # Set around each step (not the whole loop): the consumer may resume the generator from another context.
    token = _opened.set(opened)
    try:
        with calling(opened.request.hangup):  # the SDK sends the request at the first step
            return next(chunks, None)
    except _UNREADABLE:
        raise malformed() from None
    finally:
        _opened.reset(token)


async def _anext(chunks: AsyncIterator[types.GenerateContentResponse], opened: _OpenedResponses) -> Any:
    token = _opened.set(opened)
    try:
        return await anext(chunks, None)
    except _UNREADABLE:
        raise malformed() from None
    finally:
        _opened.reset(token)


class GeminiProvider(Provider):
    """Gemini models over google-genai (the Gemini Developer API, not Vertex AI)."""

    key_env: ClassVar[tuple[str, ...]] = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, options)
        tls = tls_context(self.options)
        self._clients: SDKClients[genai.Client, genai.Client] = SDKClients(
            lambda: self._client(
                httpx_client=httpx2.Client(
                    transport=HangupTransport(tls), event_hooks={"response": [_record]}
                )
            ),
            lambda: self._client(
                httpx_async_client=httpx2.AsyncClient(
                    verify=tls or True, event_hooks={"response": [_arecord]}
                )
            ),
        )
        self.max_line = int(self.options.get("max_line_bytes", MAX_LINE))

    def base_url(self) -> str | None:
        env = self.options.get("base_url_env", "GOOGLE_GEMINI_BASE_URL")
        return self.options.get("base_url") or os.environ.get(env) or None

    def _client(self, **http_clients: Any) -> genai.Client:
        key = (self.api_key() or "").strip()  # a stray newline would make an invalid header
        if not key:
            raise missing_key(self.name, self.key_variables())
        http_options = types.HttpOptions(
            base_url=self.base_url(),
            api_version=self.options.get("api_version"),
            headers=dict(self.options.get("headers") or {}) or None,
            timeout=int(float(self.options.get("timeout", DEFAULT_TIMEOUT)) * 1000),
            # The SDK does not retry by default; say so, and keep its aiohttp path from retrying either.
            retry_options=types.HttpRetryOptions(attempts=1),
            **http_clients,
        )
        return genai.Client(api_key=key, vertexai=False, http_options=http_options)

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        contents = [_content(m) for m in request.messages if m.role != "system"]
        config = types.GenerateContentConfig(
            system_instruction=system or None,
            max_output_tokens=request.max_output_tokens or self.options.get("max_output_tokens"),
        )
        if "automatic_continuation" in types.GenerateContentConfig.model_fields:  # google-genai 3.4+
            config.automatic_continuation = bool(self.options.get("automatic_continuation", False))
        if request.tools:
            _tools(request, config)
        if request.reasoning:
            config.thinking_config = types.ThinkingConfig(
                include_thoughts=True,
                thinking_budget=self.options.get("thinking_budget"),
                thinking_level=self.options.get("thinking_level"),
            )
        return {"model": request.model, "contents": contents, "config": config}

    def _error(self, exc: Exception) -> ProviderError:
        """The one way a failure leaves ``stream``/``astream``: a ``ProviderError`` without the key, which
        an error body or an error chunk may quote."""
        secrets = [self.api_key()]
        if isinstance(exc, errors.APIError):
            # An error chunk inside the stream comes with the stream's own response (status 200) and
            # the chunk's code as exc.code: it has no status line of its own, like the other vendors'.
            in_stream = getattr(exc.response, "status_code", None) == 200
            status = exc.code if isinstance(exc.code, int) and not in_stream else None
            headers = getattr(exc.response, "headers", None)
            error = status_error(status, exc.details, headers=headers, secrets=secrets)
        elif isinstance(exc, errors.UnknownApiResponseError):
            error = malformed()
        else:
            error = common_error(exc, secrets)
        return redacted(error, secrets)

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        opened = _OpenedResponses(request, self.max_line)
        try:
            chunks = self._clients.sync().models.generate_content_stream(**self._params(request))
            mapper = GeminiChunks()
            try:
                while (chunk := _next(chunks, opened)) is not None:
                    yield from mapper.feed(chunk)
            finally:
                getattr(chunks, "close", lambda: None)()
                opened.close()
            yield from mapper.end()
        except _failures() as exc:
            raise self._error(exc) from None

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        opened = _OpenedResponses(request, self.max_line)
        try:
            models = self._clients.for_loop().aio.models
            chunks = await models.generate_content_stream(**self._params(request))
            mapper = GeminiChunks()
            try:
                while (chunk := await _anext(chunks, opened)) is not None:
                    for event in mapper.feed(chunk):
                        yield event
            finally:
                await opened.aclose()
                await getattr(chunks, "aclose", _nothing)()
            for event in mapper.end():
                yield event
        except _failures() as exc:
            raise self._error(exc) from None


async def _nothing() -> None:
    return None


def _failures() -> tuple[type[Exception], ...]:
    """What the SDK and the stream may raise; each becomes a ``ProviderError``."""
    return (ProviderError, errors.APIError, errors.UnknownApiResponseError, *transport_classes())
