"""One very long line from the model provider, through the real SDKs against the fake upstream: read in
a time that grows with its length (the old buffering took 2.7-13 s of CPU for 20 MB, starving every
other stream of the worker), and refused with a clear ``upstream`` error past ``max_line_bytes``
(8 MB by default), sync and async, for every provider."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils.module_loading import import_string

from streaming.events import TextDelta
from streaming.exceptions import UpstreamError
from streaming.providers.base import ChatMessage, ChatRequest, Provider
from streaming.providers.sse_lines import MAX_LINE, SSEDecoder
from tests.fake_upstream import VENDORS, FakeUpstream, Reply, Vendor, collect, split_every

KEY = "sk-test-SECRET-1234567890"
MB = 1024 * 1024


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for vendor in VENDORS:
        monkeypatch.setenv(vendor.key_env, KEY)
    with FakeUpstream() as server:
        yield server


def long_reply(upstream: FakeUpstream, vendor: Vendor, size: int, **options: Any) -> Provider:
    """A reply whose one text delta is ``size`` bytes, on one line, sent in 64 KB pieces."""
    upstream.enqueue(Reply.stream(split_every(vendor.complete("x" * size), 64 * 1024)))
    url = upstream.url + vendor.url_suffix
    provider: Provider = import_string(vendor.backend)(vendor.name, {"base_url": url, **options})
    return provider


def chat() -> ChatRequest:
    return ChatRequest("model-test", [ChatMessage("user", "Hi")])


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda vendor: vendor.name)
def test_a_line_past_the_limit_is_an_upstream_error(
    upstream: FakeUpstream, vendor: Vendor, mode: str
) -> None:
    provider = long_reply(upstream, vendor, MAX_LINE + MB)
    events, error = collect(provider, chat(), mode)
    assert isinstance(error, UpstreamError)
    assert error.code == "upstream"
    assert error.message == "The model provider sent a line longer than 8,388,608 bytes."
    assert not [event for event in events if isinstance(event, TextDelta)]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda vendor: vendor.name)
def test_a_long_line_under_the_limit_is_read_in_linear_time(
    upstream: FakeUpstream, vendor: Vendor, mode: str
) -> None:
    provider = long_reply(upstream, vendor, 20 * MB, max_line_bytes=32 * MB)
    started = time.process_time()  # (this process's CPU, the fake upstream's threads included)
    events, error = collect(provider, chat(), mode)
    took = time.process_time() - started
    assert error is None
    assert "".join(event.text for event in events if isinstance(event, TextDelta)) == "x" * (20 * MB)
    assert took < 2.5, took  # 0.1-0.4 s here; the quadratic buffering took 2.7-13 s


def test_a_line_of_many_pieces_is_decoded_whole() -> None:
    """(Its pieces are kept apart and joined once, at the line's end.)"""
    line = b"data: " + b"x" * (4 * MB) + b"\n\n"
    for piece in (64 * 1024, 1024):
        decoder = SSEDecoder()
        events = []
        for start in range(0, len(line), piece):
            events += decoder.feed(line[start : start + piece])
        assert events == [("", b"x" * (4 * MB))]
