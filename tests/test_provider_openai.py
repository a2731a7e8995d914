"""The OpenAI provider through the real SDK against the fake upstream: the recorded stream, constructed
ones for reasoning and cached usage, the request it sends, and mid-stream failures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streaming.events import Finish, ReasoningDelta, TextDelta, Usage
from streaming.exceptions import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    RateLimited,
    UpstreamError,
)
from streaming.providers.base import ChatMessage, ChatRequest
from streaming.providers.openai import OpenAIProvider
from tests.fake_upstream import (
    CUT,
    FakeUpstream,
    Reply,
    collect,
    fixture,
    openai_chunk,
    openai_sse,
    split_every,
)

KEY = "sk-test-SECRET-1234567890"
MODES = ["sync", "async"]


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with FakeUpstream() as server:
        yield server


def provider(upstream: FakeUpstream, **options: object) -> OpenAIProvider:
    return OpenAIProvider("openai", {"base_url": upstream.url + "/v1", **options})


def chat(text: str = "Hi", *, reasoning: bool = False, max_output_tokens: int | None = None) -> ChatRequest:
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", text)]
    return ChatRequest("gpt-test", messages, reasoning=reasoning, max_output_tokens=max_output_tokens)


@pytest.mark.parametrize("mode", MODES)
def test_recorded_stream(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(fixture("openai_chat.sse")))
    events, error = collect(provider(upstream), chat(), mode)
    assert error is None
    assert events == [
        TextDelta("Foo"),
        TextDelta("!"),
        Usage(input_tokens=9, output_tokens=2),
        Finish("stop"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_stream_cut_anywhere_parses_the_same(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(split_every(fixture("openai_chat.sse"), 7)))
    events, error = collect(provider(upstream), chat(), mode)
    assert error is None
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Foo", "!"]


@pytest.mark.parametrize("mode", MODES)
def test_request_is_chat_completions_with_usage(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(fixture("openai_chat.sse")))
    collect(provider(upstream), chat("Hello"), mode)
    request = upstream.last
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-stainless-retry-count"] == "0"
    body = request.json()
    assert body["model"] == "gpt-test"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert "reasoning_effort" not in body
    assert "max_completion_tokens" not in body


def test_reasoning_effort_and_limits_are_options(upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply.stream(fixture("openai_chat.sse")), Reply.stream(fixture("openai_chat.sse")))
    options = {"reasoning_effort": "low", "extra_body": {"top_k": 5}, "headers": {"X-Title": "tests"}}
    collect(provider(upstream, **options), chat(reasoning=True, max_output_tokens=300), "sync")
    body = upstream.last.json()
    assert body["reasoning_effort"] == "low"
    assert body["max_completion_tokens"] == 300
    assert body["top_k"] == 5
    assert upstream.last.headers["x-title"] == "tests"
    # A reply without reasoning sends no effort; an old-style server gets ``max_tokens``.
    compatible = provider(
        upstream, reasoning_effort="low", max_tokens_param="max_tokens", max_output_tokens=99
    )
    collect(compatible, chat(), "sync")
    body = upstream.last.json()
    assert "reasoning_effort" not in body
    assert body["max_tokens"] == 99


def test_base_url_and_key_from_the_environment(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.url + "/v1")
    monkeypatch.setenv("GROQ_API_KEY", "gsk-other-key")
    upstream.enqueue(Reply.stream(fixture("openai_chat.sse")))
    _, error = collect(OpenAIProvider("groq", {"api_key_env": "GROQ_API_KEY"}), chat(), "sync")
    assert error is None
    assert upstream.last.headers["authorization"] == "Bearer gsk-other-key"


@pytest.mark.parametrize("mode", MODES)
def test_reasoning_deltas_of_compatible_servers(upstream: FakeUpstream, mode: str) -> None:
    chunks = [
        openai_chunk(role="assistant", content=""),
        openai_chunk(reasoning_content="Think "),  # DeepSeek, vLLM
        openai_chunk(reasoning="more."),  # OpenRouter, Ollama
        openai_chunk(reasoning_content="Once.", reasoning="Once."),  # both fields: counted once
        openai_chunk("Answer"),
        openai_chunk(finish="stop"),
        openai_chunk(usage={"prompt_tokens": 20, "completion_tokens": 50, "total_tokens": 70}),
    ]
    upstream.enqueue(Reply.stream(openai_sse(chunks)))
    events, error = collect(provider(upstream), chat(reasoning=True), mode)
    assert error is None
    assert events[:4] == [
        ReasoningDelta("Think "),
        ReasoningDelta("more."),
        ReasoningDelta("Once."),
        TextDelta("Answer"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_usage_with_cached_input_cache_writes_and_reasoning(upstream: FakeUpstream, mode: str) -> None:
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 256},
    }
    chunks = [openai_chunk("Hi"), openai_chunk(finish="stop"), openai_chunk(usage=usage)]
    upstream.enqueue(Reply.stream(openai_sse(chunks)))
    events, _ = collect(provider(upstream), chat(), mode)
    # Cached and written tokens are part of prompt_tokens already, reasoning part of completion_tokens.
    assert events[-2] == Usage(
        input_tokens=1200,
        output_tokens=300,
        cached_input_tokens=1024,
        cache_write_tokens=100,
        reasoning_tokens=256,
    )


def test_deepseek_cache_hits(upstream: FakeUpstream) -> None:
    usage = {"prompt_tokens": 90, "completion_tokens": 5, "prompt_cache_hit_tokens": 64}
    chunks = [openai_chunk("Hi", finish="stop"), openai_chunk(usage=usage)]
    upstream.enqueue(Reply.stream(openai_sse(chunks)))
    events, _ = collect(provider(upstream), chat(), "sync")
    assert events[-2] == Usage(input_tokens=90, output_tokens=5, cached_input_tokens=64)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("content_filter", "content-filter"),
        ("tool_calls", "tool-calls"),
        ("something_new", "other"),
    ],
)
def test_finish_reasons(upstream: FakeUpstream, reason: str, expected: str) -> None:
    upstream.enqueue(Reply.stream(openai_sse([openai_chunk("x"), openai_chunk(finish=reason)])))
    events, _ = collect(provider(upstream), chat(), "sync")
    assert events == [TextDelta("x"), Finish(expected)]  # no usage reported: no Usage event


@pytest.mark.parametrize("mode", MODES)
def test_error_chunk_mid_stream_comes_after_the_text(upstream: FakeUpstream, mode: str) -> None:
    error = {
        "error": {"message": "The server had an error while processing your request.", "type": "server_error"}
    }
    upstream.enqueue(Reply.stream(openai_sse([openai_chunk("Hel"), openai_chunk("lo"), error], done=False)))
    events, exc = collect(provider(upstream), chat(), mode)
    assert events == [TextDelta("Hel"), TextDelta("lo")]
    assert isinstance(exc, UpstreamError)
    assert exc.code == "upstream"
    assert "The server had an error" in exc.message


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_that_ends_early_is_an_error(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(openai_sse([openai_chunk("Hel")], done=False)))  # no finish, no [DONE]
    events, exc = collect(provider(upstream), chat(), mode)
    assert events == [TextDelta("Hel")]
    assert isinstance(exc, ProviderConnectionError)


@pytest.mark.parametrize("mode", MODES)
def test_a_dropped_connection_is_a_connection_error(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream([*openai_sse([openai_chunk("Hel")], done=False), CUT]))
    events, exc = collect(provider(upstream), chat(), mode)
    assert events == [TextDelta("Hel")]
    assert isinstance(exc, ProviderConnectionError)
    assert exc.code == "connection"


def test_missing_key(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    _, exc = collect(provider(upstream), chat(), "sync")
    assert isinstance(exc, ProviderAuthError)
    assert "OPENAI_API_KEY" in exc.message
    assert upstream.requests == []


def test_local_server_without_a_key(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    upstream.enqueue(Reply.stream(fixture("openai_chat.sse")))
    events, exc = collect(provider(upstream, require_api_key=False), chat(), "sync")
    assert exc is None
    assert events[-1] == Finish("stop")


@pytest.mark.parametrize("mode", MODES)
def test_a_used_up_quota_is_rate_limited_but_not_retryable(upstream: FakeUpstream, mode: str) -> None:
    quota = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    upstream.enqueue(Reply.json(429, quota))
    _, error = collect(provider(upstream), chat(), mode)
    assert isinstance(error, RateLimited)
    assert (error.code, error.retryable) == ("rate_limited", False)
    assert error.message == (
        "The server's quota with the model provider is used up. (HTTP 429: You exceeded your current quota,"
        " please check your plan and billing details.)"
    )
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("body", "expected", "message"),
    [
        (
            {"error": {"message": "The model `gpt-x` does not exist", "type": "invalid_request_error"}},
            ProviderBadRequest,
            "The model provider refused the request. (instead of a stream: The model `gpt-x` does not exist)",
        ),
        (  # vLLM's shape
            {"object": "error", "message": "Context too long.", "type": "BadRequestError", "code": 400},
            ProviderBadRequest,
            "The model provider refused the request. (instead of a stream: Context too long.)",
        ),
        (
            {"error": {"message": "Rate limit reached.", "type": "requests", "code": "rate_limit_exceeded"}},
            RateLimited,
            "The model provider is rate limiting requests. Try again shortly."
            " (instead of a stream: Rate limit reached.)",
        ),
        (
            {"error": {"message": "The server had an error.", "type": "server_error"}},
            UpstreamError,
            "The model provider returned an error. (instead of a stream: The server had an error.)",
        ),
        (  # not an error, and not a stream either
            {"id": "chatcmpl-1", "object": "chat.completion", "choices": []},
            UpstreamError,
            "The model provider sent a stream that could not be read.",
        ),
    ],
)
def test_a_json_body_with_status_200_is_read_as_the_error_it_is(
    upstream: FakeUpstream, mode: str, body: dict[str, object], expected: type, message: str
) -> None:
    # Some OpenAI-compatible servers answer a failed streaming request with a JSON error and status 200.
    upstream.enqueue(Reply.json(200, body))
    events, error = collect(provider(upstream), chat(), mode)
    assert events == []
    assert type(error) is expected
    assert isinstance(error, ProviderError) and error.message == message
