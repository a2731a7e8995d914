"""Failures of every provider, sync and async, through the real SDKs: HTTP errors before the stream map
to stable codes (with ``retry_after``), nothing is retried by the SDKs, connection refusals and timeouts
have their codes, and the API key never shows in an error or a provider's repr."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils.module_loading import import_string

from streaming.events import TextDelta, Usage
from streaming.exceptions import ProviderError, UpstreamError
from streaming.providers.base import ChatMessage, ChatRequest, Provider
from tests.fake_upstream import VENDORS, FakeUpstream, Hold, Reply, Vendor, collect, refused_url

KEY = "sk-test-SECRET-1234567890"
MODES = ["sync", "async"]
ENV = [
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_API_VERSION",
]


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    for vendor in VENDORS:
        monkeypatch.setenv(vendor.key_env, KEY)
    with FakeUpstream() as server:
        yield server


def make(vendor: Vendor, base_url: str, **options: Any) -> Provider:
    provider: Provider = import_string(vendor.backend)(vendor.name, {"base_url": base_url, **options})
    return provider


def chat() -> ChatRequest:
    return ChatRequest("model-test", [ChatMessage("user", "Hi")])


def vendor_ids(vendor: Vendor) -> str:
    return vendor.name


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=vendor_ids)
@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad_request"),
        (401, "auth"),
        (403, "auth"),
        (404, "bad_request"),
        (429, "rate_limited"),
        (500, "upstream"),
        (503, "overloaded"),
        (529, "overloaded"),
    ],
)
def test_http_errors_before_the_stream(
    upstream: FakeUpstream, vendor: Vendor, mode: str, status: int, code: str
) -> None:
    upstream.enqueue(Reply.json(status, vendor.error_body(status, "Something is wrong.")))
    upstream.enqueue(Reply.stream(vendor.partial()))  # would answer a retry: there must be none
    events, exc = collect(make(vendor, upstream.url + vendor.url_suffix), chat(), mode)
    assert events == []
    assert isinstance(exc, ProviderError)
    assert exc.code == code
    assert exc.upstream_status == status
    assert "Something is wrong." in exc.message
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=vendor_ids)
def test_rate_limit_carries_retry_after(upstream: FakeUpstream, vendor: Vendor, mode: str) -> None:
    upstream.enqueue(Reply.json(429, vendor.error_body(429, "Slow down."), **{"retry-after": "7"}))
    _, exc = collect(make(vendor, upstream.url + vendor.url_suffix), chat(), mode)
    assert isinstance(exc, ProviderError)
    assert (exc.code, exc.retry_after, exc.retryable) == ("rate_limited", 7.0, True)


def test_retry_after_in_milliseconds_wins(upstream: FakeUpstream) -> None:
    vendor = VENDORS[0]
    headers = {"retry-after": "7", "retry-after-ms": "1500"}
    upstream.enqueue(Reply.json(429, vendor.error_body(429, "Slow down."), **headers))
    _, exc = collect(make(vendor, upstream.url + vendor.url_suffix), chat(), "sync")
    assert isinstance(exc, ProviderError)
    assert exc.retry_after == 1.5


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=vendor_ids)
def test_connection_refused(vendor: Vendor, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(vendor.key_env, KEY)
    _, exc = collect(make(vendor, refused_url() + vendor.url_suffix), chat(), mode)
    assert isinstance(exc, ProviderError)
    assert exc.code == "connection"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=vendor_ids)
def test_timeout_before_the_first_byte(upstream: FakeUpstream, vendor: Vendor, mode: str) -> None:
    upstream.enqueue(Reply(delay=5.0, body=vendor.partial()))
    _, exc = collect(make(vendor, upstream.url + vendor.url_suffix, timeout=0.3), chat(), mode)
    assert isinstance(exc, ProviderError)
    assert exc.code == "timeout"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=vendor_ids)
def test_timeout_between_chunks_comes_after_the_text(
    upstream: FakeUpstream, vendor: Vendor, mode: str
) -> None:
    upstream.enqueue(Reply.stream([*vendor.partial("Hel"), Hold(5.0)]))
    events, exc = collect(make(vendor, upstream.url + vendor.url_suffix, timeout=0.3), chat(), mode)
    assert events == vendor.partial_events("Hel")
    assert isinstance(exc, ProviderError)
    assert exc.code == "timeout"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=vendor_ids)
def test_the_key_never_shows(upstream: FakeUpstream, vendor: Vendor, mode: str) -> None:
    echo = f"Incorrect API key provided: {KEY}. Sent as Authorization: Bearer {KEY}; url ?key={KEY}"
    upstream.enqueue(Reply.json(401, vendor.error_body(401, echo)))
    provider = make(vendor, upstream.url + vendor.url_suffix)
    _, exc = collect(provider, chat(), mode)
    assert isinstance(exc, ProviderError)
    assert exc.code == "auth"
    assert exc.message.startswith("The server's credentials for the model provider were refused.")
    assert "Incorrect API key provided" in exc.message
    shown = [
        str(exc),
        repr(exc),
        str(exc.as_dict()),
        "".join(traceback.format_exception(exc)),
        repr(provider),
    ]
    assert all(KEY not in text and "SECRET" not in text for text in shown)
    assert exc.__cause__ is None and exc.__suppress_context__  # the SDK's exception is not chained


@pytest.mark.parametrize("vendor", VENDORS, ids=vendor_ids)
def test_the_sdk_client_is_made_once(upstream: FakeUpstream, vendor: Vendor) -> None:
    provider = make(vendor, upstream.url + vendor.url_suffix)
    upstream.enqueue(
        Reply.json(500, vendor.error_body(500, "a")), Reply.json(500, vendor.error_body(500, "b"))
    )
    collect(provider, chat(), "sync")
    client = provider._clients.sync()  # type: ignore[attr-defined]
    collect(provider, chat(), "sync")
    assert provider._clients.sync() is client  # type: ignore[attr-defined]


ODD_CHUNKS = {
    "openai": [
        {"choices": ["not an object"]},
        {"choices": [{"index": 0, "delta": "not an object"}]},
        {"choices": 7},
        {"choices": [], "usage": "not an object"},
        {"choices": [{"index": 0, "delta": {"content": 5}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": ["stop"]}]},
    ],
    "anthropic": [
        {"type": "message_start", "message": "not an object"},
        {"type": "message_start", "message": {"usage": ["not", "an", "object"]}},
        {"type": "content_block_delta", "index": 0, "delta": "not an object"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}},
        {"type": "message_delta", "delta": ["not an object"], "usage": {"output_tokens": 1}},
        {"type": "message_delta", "delta": {"stop_reason": 3}, "usage": {"output_tokens": 1}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": "not an object"},
    ],
    "gemini": [
        {"candidates": [{"content": "not an object"}]},
        {"candidates": [{"content": {"parts": [{"text": 5}]}}]},
        {"candidates": [{"finishReason": 7, "content": {"parts": [{"text": "x"}]}}]},
        {"usageMetadata": "not an object"},
        {"promptFeedback": ["not an object"]},
        5,
    ],
}


def odd_stream(vendor: Vendor, chunk: Any) -> list[bytes]:
    """The start of a reply ("Hel"), then one chunk of a shape the vendor's wire format does not have."""
    data = json.dumps(chunk).encode()
    if vendor.name == "anthropic":
        return [*vendor.partial("Hel"), b"event: " + chunk["type"].encode() + b"\ndata: " + data + b"\n\n"]
    newline = b"\r\n" if vendor.name == "gemini" else b"\n"
    return [*vendor.partial("Hel"), b"data: " + data + newline * 2]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("vendor", "chunk"),
    [(vendor, chunk) for vendor in VENDORS for chunk in ODD_CHUNKS[vendor.name]],
    ids=lambda value: value.name if isinstance(value, Vendor) else json.dumps(value)[:40],
)
def test_a_chunk_of_an_odd_shape_is_a_malformed_stream(
    upstream: FakeUpstream, vendor: Vendor, chunk: Any, mode: str
) -> None:
    upstream.enqueue(Reply.stream(odd_stream(vendor, chunk)))
    events, exc = collect(make(vendor, upstream.url + vendor.url_suffix), chat(), mode)
    assert [event for event in events if not isinstance(event, Usage)] == [TextDelta("Hel")]
    assert isinstance(exc, UpstreamError)  # not an AttributeError, TypeError or KeyError
    assert exc.code == "upstream"
    assert exc.message == "The model provider sent a stream that could not be read."


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=vendor_ids)
def test_a_request_is_sent_once_even_when_its_kept_connection_drops(
    upstream: FakeUpstream, vendor: Vendor, mode: str
) -> None:
    """The server closes a kept connection as the request arrives: the request may have started a
    generation, so the call fails (the relay's retry policy decides what comes next) and the upstream
    saw it exactly once."""
    upstream.enqueue(Reply.stream(vendor.complete("Hi")), Reply(unanswered=True))
    provider = make(vendor, upstream.url + vendor.url_suffix)

    async def twice() -> list[Any]:
        return [await consume(provider) for _ in range(2)]

    if mode == "sync":
        outcomes = [collect(provider, chat(), "sync") for _ in range(2)]
    else:
        outcomes = asyncio.run(twice())
    assert TextDelta("Hi") in outcomes[0][0] and outcomes[0][1] is None
    assert isinstance(outcomes[1][1], ProviderError) and outcomes[1][1].code == "connection"
    assert len(upstream.requests) == 2  # one generation per call
    assert upstream.requests[1].peer == upstream.requests[0].peer  # the kept connection


async def consume(provider: Provider) -> tuple[list[Any], Exception | None]:
    """``collect``'s async way, on one event loop for several calls (so the async client keeps its
    connection between them)."""
    events: list[Any] = []
    try:
        async for event in provider.astream(chat()):
            events.append(event)
    except ProviderError as exc:
        return events, exc
    return events, None
