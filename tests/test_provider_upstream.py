"""The pieces the provider modules share: SSE parsing of raw bytes, the mapping of vendor errors to
codes (with ``retry_after`` and secrets removed), the abort hook, and per-loop SDK clients."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import pytest

from streaming.exceptions import (
    Overloaded,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderTimeout,
    RateLimited,
    UpstreamError,
)
from streaming.providers.base import Hangup
from streaming.providers.sse_lines import SSEDecoder, iter_sse
from streaming.providers.upstream import (
    SDKClients,
    clean,
    redacted,
    retry_after,
    status_error,
)

STREAM = (
    b": a comment\r\n"
    b"event: message_start\r\n"
    b'data: {"a": 1}\r\n'
    b"\r\n"
    b"data: first line\n"
    b"data:second line\n"
    b"\n"
    b"event: ping\rdata: {}\r\r"
    b'data: {"text": "\xe2\x80\xa8 line separator inside a string"}\n\n'
    b"data: no blank line at the end"
)
EXPECTED = [
    ("message_start", b'{"a": 1}'),
    ("", b"first line\nsecond line"),
    ("ping", b"{}"),
    ("", b'{"text": "\xe2\x80\xa8 line separator inside a string"}'),
    ("", b"no blank line at the end"),
]


def test_sse_events_with_every_line_ending() -> None:
    assert list(iter_sse([STREAM])) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_sse_events_survive_any_split(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert list(iter_sse(chunks)) == EXPECTED


# What the vendors send: OpenAI's data lines, Anthropic's event + data, and some odd corners.
VENDOR_SHAPES = (
    b'data: {"choices": [{"delta": {"content": "tok "}}]}\n\n'
    b'event: content_block_delta\ndata: {"delta": 1}\n\n'
    b"data: [DONE]\n\n"
    b"event: ping\n\n"  # no data: no event
    b": a comment\ndata: after a comment\n\n"
    b"data:no space\n\n"
    b"data: two\ndata: lines\n\n"
    b"id: 7\ndata: with an id\n\n"
    b"event: message_stop\ndata: {}\n\n"
)


@pytest.mark.parametrize("size", [None, 1, 5, 40, 61])
def test_the_vendors_event_shapes_whole_or_split(size: int | None) -> None:
    """Every shape of event the vendors send, read whole, an event per read, or split anyhow."""
    chunks = (
        [VENDOR_SHAPES]
        if size is None
        else [VENDOR_SHAPES[i : i + size] for i in range(0, len(VENDOR_SHAPES), size)]
    )
    # Each event on its own read (the usual case), and split anyhow.
    per_event = [block + b"\n\n" for block in VENDOR_SHAPES[:-2].split(b"\n\n")]
    general = SSEDecoder()
    expected = general._lines(VENDOR_SHAPES.splitlines(keepends=True))
    assert expected == [
        ("", b'{"choices": [{"delta": {"content": "tok "}}]}'),
        ("content_block_delta", b'{"delta": 1}'),
        ("", b"[DONE]"),
        ("", b"after a comment"),
        ("", b"no space"),
        ("", b"two\nlines"),
        ("", b"with an id"),
        ("message_stop", b"{}"),
    ]
    assert list(iter_sse(chunks)) == expected
    assert list(iter_sse(per_event)) == expected
    decoder = SSEDecoder()
    assert decoder.feed(b"event: delayed\n") == []  # an event name whose data comes in the next read
    assert decoder.feed(b"data: x\n\n") == [("delayed", b"x")]


def test_sse_event_waits_for_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n") == []
    assert decoder.feed(b"\n") == [("", b"x")]
    assert decoder.flush() == []


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, {"error": {"message": "slow", "type": "requests"}}, RateLimited),
        (529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, Overloaded),
        (500, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, Overloaded),
        (500, {"error": {"message": "oops", "type": "server_error"}}, UpstreamError),
        (502, "<html>Bad gateway</html>", UpstreamError),
        (504, None, UpstreamError),
        (408, None, ProviderTimeout),
        (401, {"error": {"type": "invalid_request_error", "code": "invalid_api_key"}}, ProviderAuthError),
        (400, {"error": {"type": "invalid_request_error", "message": "bad model"}}, ProviderBadRequest),
        (400, {"type": "error", "error": {"type": "api_error"}}, ProviderBadRequest),  # stays a 4xx
        (418, None, ProviderBadRequest),
        (
            400,
            {"error": {"status": "INVALID_ARGUMENT", "details": [{"reason": "API_KEY_INVALID"}]}},
            ProviderAuthError,
        ),
        (None, {"type": "error", "error": {"type": "overloaded_error"}}, Overloaded),
        (None, {"error": {"message": "x", "type": "rate_limit_exceeded"}}, RateLimited),
        (None, {"error": {"message": "x"}}, UpstreamError),
        # Without a status line, a status in the body classifies (Google's chunks, vLLM's errors).
        (None, {"error": {"code": 503, "message": "busy"}}, Overloaded),
        (None, {"object": "error", "code": 400, "message": "too long"}, ProviderBadRequest),
        (None, {"error": {"code": 7, "message": "not a status"}}, UpstreamError),
    ],
)
def test_status_error_classes(status: int | None, body: Any, expected: type) -> None:
    error = status_error(status, body)
    assert type(error) is expected
    assert error.upstream_status == status


def test_status_error_message_is_a_sentence_plus_the_vendor_words() -> None:
    error = status_error(429, {"error": {"message": "Rate limit reached for gpt-x."}})
    assert error.message == (
        "The model provider is rate limiting requests. Try again shortly."
        " (HTTP 429: Rate limit reached for gpt-x.)"
    )
    assert status_error(None, {"type": "error", "error": {"type": "overloaded_error"}}).message == (
        "The model provider is overloaded. Try again shortly. (during the stream)"
    )


def test_html_error_pages_are_not_quoted() -> None:
    error = status_error(502, "<html><body><h1>502 Bad Gateway</h1></body></html>")
    assert error.message == "The model provider returned an error. (HTTP 502)"


def test_clean_removes_secrets_and_credentials() -> None:
    text = "Key sk-live-123 rejected; header Authorization: Bearer abc.def; url /v1?key=AIzaXYZ&alt=sse"
    cleaned = clean(text, ["sk-live-123\n", None])
    assert "sk-live-123" not in cleaned
    assert "abc.def" not in cleaned
    assert "AIzaXYZ" not in cleaned
    assert "alt=sse" in cleaned
    assert len(clean("x" * 5000)) == 300
    assert clean("two\n  lines") == "two lines"


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after": "12"}) == 12.0
    assert retry_after({"retry-after": "0.5", "retry-after-ms": "250"}) == 0.25
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 27 <= (retry_after({"retry-after": soon}) or 0) <= 30
    assert retry_after({"retry-after": "soon-ish"}) is None
    assert retry_after({}) is None
    google = {
        "error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]}
    }
    assert retry_after(None, google) == 2.5


def test_hang_up_before_and_after_a_response_opens() -> None:
    calls: list[str] = []
    hangup = Hangup()
    hangup.opened(lambda: calls.append("first"))
    hangup.hang_up()
    assert calls == ["first"]
    hangup.opened(lambda: calls.append("retry"))  # a retry's response, after the hang-up: closed at once
    assert calls == ["first", "retry"]
    assert Hangup().hung_up is False


def test_sdk_clients_one_sync_and_one_per_loop() -> None:
    made: list[str] = []

    def make_sync() -> object:
        made.append("sync")
        return object()

    clients: SDKClients[object, object] = SDKClients(make_sync, object)
    assert clients.sync() is clients.sync()
    assert made == ["sync"]

    async def twice() -> tuple[object, object]:
        return clients.for_loop(), clients.for_loop()

    first, again = asyncio.run(twice())
    assert first is again
    other, _ = asyncio.run(twice())
    assert other is not first  # a new event loop gets its own client


def test_redacted_removes_the_key_from_any_provider_error() -> None:
    error = redacted(UpstreamError("Failed for sk-live-123, Bearer abc.def sent"), ["sk-live-123", None])
    assert error.message == "Failed for [redacted], Bearer [redacted] sent"
    assert str(error) == error.message
    untouched = ProviderTimeout()
    assert redacted(untouched, ["sk-live-123"]) is untouched
    assert untouched.message == ProviderTimeout.default_message
