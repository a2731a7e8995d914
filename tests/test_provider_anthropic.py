"""The Anthropic provider through the real SDK against the fake upstream: the recorded streams, thinking,
usage with cache reads and writes, the request it sends, and mid-stream errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streaming.events import Finish, ReasoningDelta, ReasoningSignature, TextDelta, Usage
from streaming.exceptions import Overloaded, ProviderConnectionError
from streaming.providers.anthropic import AnthropicProvider
from streaming.providers.base import ChatMessage, ChatRequest
from tests.fake_upstream import (
    FakeUpstream,
    Reply,
    anthropic_message,
    anthropic_sse,
    collect,
    fixture,
    split_every,
)

KEY = "sk-ant-test-SECRET-1234567890"
MODES = ["sync", "async"]


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with FakeUpstream() as server:
        yield server


def provider(upstream: FakeUpstream, **options: object) -> AnthropicProvider:
    return AnthropicProvider("anthropic", {"base_url": upstream.url, **options})


def chat(*, reasoning: bool = False, max_output_tokens: int | None = None) -> ChatRequest:
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!"),
        ChatMessage("user", "What is an eclipse?"),
    ]
    return ChatRequest("claude-test", messages, reasoning=reasoning, max_output_tokens=max_output_tokens)


@pytest.mark.parametrize("mode", MODES)
def test_recorded_basic_stream(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(fixture("anthropic_basic.sse")))
    events, error = collect(provider(upstream), chat(), mode)
    assert error is None
    assert events == [
        # message_start's count, with the first text: exact for the input side, not the final count.
        Usage(input_tokens=11, output_tokens=1, partial=True),
        TextDelta("Hello"),
        TextDelta(" there"),
        TextDelta("!"),
        Usage(input_tokens=11, output_tokens=6),
        Finish("stop"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_recorded_thinking_stream(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(split_every(fixture("anthropic_thinking.sse"), 5)))
    events, error = collect(provider(upstream), chat(reasoning=True), mode)
    assert error is None
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning.startswith("Simple educational question")
    assert reasoning.endswith("roll with it politely.")
    assert "c3ludGhl" not in reasoning  # the signature is not reasoning
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("Hi")]
    # output_tokens_details.thinking_tokens reports the reasoning part of the output.
    assert events[-2:] == [
        Usage(input_tokens=28, output_tokens=106, reasoning_tokens=67),
        Finish("content-filter"),
    ]


def test_request_is_a_messages_stream(upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply.stream(fixture("anthropic_basic.sse")))
    collect(provider(upstream), chat(), "sync")
    request = upstream.last
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert KEY in (request.headers.get("x-api-key", "") + request.headers.get("authorization", ""))
    assert "anthropic-version" in request.headers
    assert request.headers["x-stainless-retry-count"] == "0"
    body = request.json()
    assert body["stream"] is True
    assert body["model"] == "claude-test"
    assert body["max_tokens"] == 4096
    assert body["system"] == "Be brief."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert "thinking" not in body


def test_thinking_budget_on_top_of_max_tokens(upstream: FakeUpstream) -> None:
    upstream.enqueue(
        Reply.stream(fixture("anthropic_thinking.sse")), Reply.stream(fixture("anthropic_basic.sse"))
    )
    collect(provider(upstream, thinking_budget=3000), chat(reasoning=True, max_output_tokens=1000), "sync")
    body = upstream.last.json()
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    assert body["max_tokens"] == 4000  # larger than the budget, and the reply keeps its own 1000
    options = {"thinking_type": "adaptive", "max_tokens": 2048, "cache_control": {"type": "ephemeral"}}
    collect(provider(upstream, **options), chat(reasoning=True), "sync")
    body = upstream.last.json()
    assert body["thinking"] == {"type": "adaptive"}
    assert body["max_tokens"] == 2048
    assert body["cache_control"] == {"type": "ephemeral"}


@pytest.mark.parametrize("mode", MODES)
def test_usage_adds_cache_reads_and_writes_to_input(upstream: FakeUpstream, mode: str) -> None:
    start = {
        "input_tokens": 50,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 300,
        "output_tokens": 1,
    }
    events = anthropic_message(["Hi"], start_usage=start, delta_usage={"output_tokens": 42})
    upstream.enqueue(Reply.stream(anthropic_sse(events)))
    got, _ = collect(provider(upstream), chat(), mode)
    assert got[-2] == Usage(
        input_tokens=2350,
        output_tokens=42,
        cached_input_tokens=2000,
        cache_write_tokens=300,
        reasoning_tokens=0,
    )


def test_message_delta_restates_input_fields(upstream: FakeUpstream) -> None:
    # message_delta carries cumulative counts: its input fields replace message_start's; missing ones stay.
    start = {
        "input_tokens": 10,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "output_tokens": 1,
    }
    delta = {"input_tokens": 12, "cache_read_input_tokens": 100, "output_tokens": 30}
    events = anthropic_message(["Hi"], thinking=["Hmm."], start_usage=start, delta_usage=delta)
    upstream.enqueue(Reply.stream(anthropic_sse(events)))
    got, _ = collect(provider(upstream), chat(reasoning=True), "sync")
    assert got == [
        Usage(input_tokens=10, output_tokens=1, partial=True),
        ReasoningDelta("Hmm."),
        ReasoningSignature("c2lnbmF0dXJl"),  # (sent back with any tool calls the thinking led to)
        TextDelta("Hi"),
        Usage(input_tokens=112, output_tokens=30, cached_input_tokens=100),
        Finish("stop"),
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool-calls"),
        ("refusal", "content-filter"),
        ("something_new", "other"),
    ],
)
def test_stop_reasons(upstream: FakeUpstream, reason: str, expected: str) -> None:
    upstream.enqueue(Reply.stream(anthropic_sse(anthropic_message(["x"], stop_reason=reason))))
    events, _ = collect(provider(upstream), chat(), "sync")
    assert events[-1] == Finish(expected)


@pytest.mark.parametrize("mode", MODES)
def test_overloaded_error_event_mid_stream_comes_after_the_text(upstream: FakeUpstream, mode: str) -> None:
    events = anthropic_message(["Hel", "lo"])[:6]  # message_start, ping, block start, two deltas
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    upstream.enqueue(Reply.stream(anthropic_sse([*events, error])))
    got, exc = collect(provider(upstream), chat(), mode)
    assert got == [Usage(input_tokens=10, output_tokens=1, partial=True), TextDelta("Hel"), TextDelta("lo")]
    assert isinstance(exc, Overloaded)
    assert exc.code == "overloaded"
    assert "Overloaded" in exc.message


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_without_its_end_is_an_error(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(anthropic_sse(anthropic_message(["Hel"])[:5])))
    events, exc = collect(provider(upstream), chat(), mode)
    assert events == [Usage(input_tokens=10, output_tokens=1, partial=True), TextDelta("Hel")]
    assert isinstance(exc, ProviderConnectionError)
