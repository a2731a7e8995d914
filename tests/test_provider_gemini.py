"""The Gemini provider through google-genai against the fake upstream: the recorded stream, thoughts,
cumulative usage, the request it sends, API versions, and error chunks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streaming.events import Finish, ReasoningDelta, TextDelta, Usage
from streaming.exceptions import Overloaded, ProviderAuthError, ProviderError, RateLimited, UpstreamError
from streaming.providers.base import ChatMessage, ChatRequest
from streaming.providers.gemini import GeminiProvider
from tests.fake_upstream import FakeUpstream, Reply, collect, fixture, gemini_chunk, gemini_sse

KEY = "AIza-test-SECRET-1234567890"
MODES = ["sync", "async"]


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    for name in (
        "GOOGLE_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_API_VERSION",
    ):
        monkeypatch.delenv(name, raising=False)
    with FakeUpstream() as server:
        yield server


def provider(upstream: FakeUpstream, **options: object) -> GeminiProvider:
    return GeminiProvider("gemini", {"base_url": upstream.url, **options})


def chat(*, reasoning: bool = False) -> ChatRequest:
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!"),
    ]
    return ChatRequest("gemini-test", [*messages, ChatMessage("user", "More?")], reasoning=reasoning)


@pytest.mark.parametrize("mode", MODES)
def test_recorded_stream(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(fixture("gemini_real.sse", crlf=True)))
    events, error = collect(provider(upstream), chat(), mode)
    assert error is None
    # Output is candidates (2) plus thoughts (94): thoughts are billed as output.
    assert events == [
        Usage(input_tokens=7, output_tokens=96, reasoning_tokens=94, partial=True),
        TextDelta("fixture ok"),
        Usage(input_tokens=7, output_tokens=96, reasoning_tokens=94),
        Finish("stop"),
    ]


def test_request_goes_to_the_stream_endpoint(upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply.stream(fixture("gemini_real.sse", crlf=True)))
    collect(provider(upstream), chat(), "sync")
    request = upstream.last
    assert request.method == "POST"
    assert request.path == "/v1/models/gemini-test:streamGenerateContent?alt=sse"
    assert request.headers["x-goog-api-key"] == KEY
    body = request.json()
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert "thinkingConfig" not in body.get("generationConfig", {})


def test_api_version_and_thinking_options(upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply.stream(fixture("gemini_real.sse", crlf=True)))
    options = {"api_version": "v1beta", "thinking_budget": 512, "max_output_tokens": 900}
    collect(provider(upstream, **options), chat(reasoning=True), "sync")
    assert upstream.last.path == "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
    config = upstream.last.json()["generationConfig"]
    thinking = {key.replace("_", "").lower(): value for key, value in config["thinkingConfig"].items()}
    assert thinking == {"includethoughts": True, "thinkingbudget": 512}
    assert config["maxOutputTokens"] == 900


@pytest.mark.parametrize("mode", MODES)
def test_thoughts_are_reasoning_and_usage_is_the_last_total(upstream: FakeUpstream, mode: str) -> None:
    chunks = [
        gemini_chunk(
            "Let me think.", thought=True, usage={"promptTokenCount": 1200, "thoughtsTokenCount": 40}
        ),
        gemini_chunk(
            "Answer", usage={"promptTokenCount": 1200, "candidatesTokenCount": 1, "thoughtsTokenCount": 80}
        ),
        gemini_chunk(
            " done.",
            finish="STOP",
            usage={
                "promptTokenCount": 1200,
                "cachedContentTokenCount": 1024,
                "candidatesTokenCount": 3,
                "thoughtsTokenCount": 80,
                "totalTokenCount": 1283,
            },
        ),
    ]
    upstream.enqueue(Reply.stream(gemini_sse(chunks)))
    events, error = collect(provider(upstream), chat(reasoning=True), mode)
    assert error is None
    assert events == [
        # Each chunk's running total comes just before its text; the last chunk's is the final count.
        Usage(input_tokens=1200, output_tokens=40, reasoning_tokens=40, partial=True),
        ReasoningDelta("Let me think."),
        Usage(input_tokens=1200, output_tokens=81, reasoning_tokens=80, partial=True),
        TextDelta("Answer"),
        TextDelta(" done."),
        # Usage metadata is cumulative per chunk: the last one counts, never a sum.
        Usage(input_tokens=1200, output_tokens=83, cached_input_tokens=1024, reasoning_tokens=80),
        Finish("stop"),
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content-filter"), ("OTHER", "other")],
)
def test_finish_reasons(upstream: FakeUpstream, reason: str, expected: str) -> None:
    upstream.enqueue(Reply.stream(gemini_sse([gemini_chunk("x", finish=reason)])))
    events, _ = collect(provider(upstream), chat(), "sync")
    assert events == [TextDelta("x"), Finish(expected)]


def test_blocked_prompt_is_a_content_filter_finish(upstream: FakeUpstream) -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8}}
    upstream.enqueue(Reply.stream(gemini_sse([blocked])))
    events, error = collect(provider(upstream), chat(), "sync")
    assert error is None
    assert events == [Usage(input_tokens=8), Finish("content-filter")]


@pytest.mark.parametrize("mode", MODES)
def test_error_chunk_mid_stream_comes_after_the_text(upstream: FakeUpstream, mode: str) -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    upstream.enqueue(Reply.stream(gemini_sse([gemini_chunk("Hel"), gemini_chunk("lo"), error])))
    events, exc = collect(provider(upstream), chat(), mode)
    assert events == [TextDelta("Hel"), TextDelta("lo")]
    assert isinstance(exc, Overloaded)
    assert "overloaded" in exc.message
    assert len(upstream.requests) == 1


def test_invalid_key_is_an_auth_error_even_as_400(upstream: FakeUpstream) -> None:
    body = {
        "error": {
            "code": 400,
            "message": f"API key not valid. Please pass a valid API key. ({KEY})",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
        }
    }
    upstream.enqueue(Reply.json(400, body))
    _, exc = collect(provider(upstream), chat(), "sync")
    assert isinstance(exc, ProviderAuthError)
    assert KEY not in str(exc)


@pytest.mark.parametrize("mode", MODES)
def test_quota_errors_carry_google_retry_info_and_are_not_retried(upstream: FakeUpstream, mode: str) -> None:
    body = {
        "error": {
            "code": 429,
            "message": "Quota exceeded.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}],
        }
    }
    upstream.enqueue(Reply.json(429, body), Reply.stream(fixture("gemini_real.sse", crlf=True)))
    _, exc = collect(provider(upstream), chat(), mode)
    assert isinstance(exc, RateLimited)
    assert exc.retry_after == 37.0
    assert len(upstream.requests) == 1


def test_no_automatic_continuation_request(upstream: FakeUpstream) -> None:
    # A hop that stops for continuation would make the SDK send a new request: off by default, so a
    # stopped or failed reply never makes another call behind the service layer's back.
    hop = gemini_chunk("Part one", finish="CONTINUATION")
    hop["candidates"][0]["continuationToken"] = "Y29udGludWU="
    upstream.enqueue(
        Reply.stream(gemini_sse([hop])), Reply.stream(gemini_sse([gemini_chunk(" two", finish="STOP")]))
    )
    events, error = collect(provider(upstream), chat(), "sync")
    assert error is None
    assert events == [TextDelta("Part one"), Finish("length")]
    assert len(upstream.requests) == 1
    upstream.replies.clear()
    # Opted in, the SDK continues in a second request, and the reply reads as one.
    upstream.enqueue(
        Reply.stream(gemini_sse([hop])), Reply.stream(gemini_sse([gemini_chunk(" two", finish="STOP")]))
    )
    events, error = collect(provider(upstream, automatic_continuation=True), chat(), "sync")
    assert error is None
    assert events == [TextDelta("Part one"), TextDelta(" two"), Finish("stop")]
    assert len(upstream.requests) == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("error", "expected", "message"),
    [
        (
            {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"},
            Overloaded,
            "The model provider is overloaded. Try again shortly."
            " (during the stream: The model is overloaded.)",
        ),
        (
            {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"},
            RateLimited,
            "The model provider is rate limiting requests. Try again shortly."
            " (during the stream: Quota exceeded.)",
        ),
        (
            {"code": 500, "message": "Internal error.", "status": "INTERNAL"},
            UpstreamError,
            "The model provider returned an error. (during the stream: Internal error.)",
        ),
    ],
)
def test_an_error_chunk_says_it_came_during_the_stream(
    upstream: FakeUpstream, mode: str, error: dict[str, object], expected: type, message: str
) -> None:
    # Its code is the chunk's, not a status line's: the response itself was a 200.
    upstream.enqueue(Reply.stream(gemini_sse([gemini_chunk("Hel"), {"error": error}])))
    events, exc = collect(provider(upstream), chat(), mode)
    assert events == [TextDelta("Hel")]
    assert type(exc) is expected
    assert isinstance(exc, ProviderError)
    assert (exc.message, exc.upstream_status) == (message, None)


@pytest.mark.parametrize("mode", MODES)
def test_an_html_error_page_is_not_quoted(upstream: FakeUpstream, mode: str) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
    upstream.enqueue(Reply(502, [page], {"content-type": "text/html"}))
    _, exc = collect(provider(upstream), chat(), mode)
    assert isinstance(exc, UpstreamError)
    assert exc.message == "The model provider returned an error. (HTTP 502)"


def test_tool_use_prompt_tokens_are_input(upstream: FakeUpstream) -> None:
    usage = {
        "promptTokenCount": 100,
        "toolUsePromptTokenCount": 25,
        "cachedContentTokenCount": 40,
        "candidatesTokenCount": 7,
    }
    upstream.enqueue(Reply.stream(gemini_sse([gemini_chunk("Done.", finish="STOP", usage=usage)])))
    events, error = collect(provider(upstream), chat(), "sync")
    assert error is None
    assert events == [
        TextDelta("Done."),
        Usage(input_tokens=125, output_tokens=7, cached_input_tokens=40),
        Finish("stop"),
    ]
