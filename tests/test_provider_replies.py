"""Retries, fallbacks and failures in the middle of a reply, through the real SDKs: ``POST /api/chat`` on
the sync (WSGI) and the async (ASGI) path, each vendor behind its own fake upstream, counting the
calls each one receives."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from django.test import Client

from streaming.models import Message, Usage
from tests.fake_upstream import (
    VENDORS,
    FakeUpstream,
    Reply,
    anthropic_message,
    anthropic_sse,
    gemini_chunk,
    gemini_sse,
    openai_chunk,
    openai_sse,
)
from tests.real_providers import BY_NAME, MODEL, body, configure, post, use_key
from tests.sse import parse_events, text_of

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-test-1234567890"
MODES = ["sync", "async"]


@pytest.fixture
def upstreams(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FakeUpstream]]:
    """One fake upstream per vendor, so that each one's calls can be counted."""
    use_key(monkeypatch, KEY)
    with ExitStack() as stack:
        yield {vendor.name: stack.enter_context(FakeUpstream()) for vendor in VENDORS}


def chunks(sse: bytes) -> list[Any]:
    return [event for event in parse_events(sse) if isinstance(event, dict)]


def errors(sse: bytes) -> list[dict[str, Any]]:
    return [event for event in chunks(sse) if event["type"] == "error"]


def finish(sse: bytes) -> dict[str, Any]:
    last: dict[str, Any] = chunks(sse)[-1]
    assert last["type"] == "finish"
    return last


@pytest.mark.parametrize("mode", MODES)
def test_a_used_up_quota_is_not_retried_but_the_fallback_is_tried(
    upstreams: dict[str, FakeUpstream], settings: Any, api: Client, user: Any, mode: str
) -> None:
    configure(settings, upstreams, FALLBACKS={MODEL["openai"]: [MODEL["anthropic"]]})
    quota = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    upstreams["openai"].enqueue(Reply.json(429, quota), Reply.stream(BY_NAME["openai"].complete("No")))
    upstreams["anthropic"].enqueue(Reply.stream(BY_NAME["anthropic"].complete("From Claude")))

    sse = post(mode, api, user, body("openai"))

    assert len(upstreams["openai"].requests) == 1  # a billing problem: calling again would not help
    assert len(upstreams["anthropic"].requests) == 1
    assert text_of(parse_events(sse)) == "From Claude"
    assert finish(sse)["messageMetadata"]["status"] == "complete"
    message = Message.objects.get(role="assistant")
    assert (message.status, message.model) == ("complete", MODEL["anthropic"])


def answer(vendor: str, text: str) -> list[bytes]:
    """A whole reply with the vendor's final usage: 9 tokens in, 2 out."""
    if vendor == "anthropic":
        start = {"input_tokens": 9, "output_tokens": 1}
        return anthropic_sse(anthropic_message([text], start_usage=start, delta_usage={"output_tokens": 2}))
    if vendor == "gemini":
        usage = {"promptTokenCount": 9, "candidatesTokenCount": 2}
        return gemini_sse([gemini_chunk(text, finish="STOP", usage=usage)])
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    return openai_sse([openai_chunk(text), openai_chunk(finish="stop"), openai_chunk(usage=usage)])


def assert_answered(sse: bytes, vendor: str, text: str) -> None:
    """One reply, complete, stored with the model that answered and its one usage row."""
    assert text_of(parse_events(sse)) == text
    assert errors(sse) == []
    assert finish(sse)["messageMetadata"]["status"] == "complete"
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content, message.model) == ("complete", text, MODEL[vendor])
    usage = Usage.objects.get()
    assert usage.message_id == message.id
    assert (usage.provider, f"{usage.provider}:{usage.model}") == (vendor, MODEL[vendor])
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (9, 2, False)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", [vendor.name for vendor in VENDORS])
def test_a_rate_limit_with_retry_after_is_waited_out_then_answered(
    upstreams: dict[str, FakeUpstream], settings: Any, api: Client, user: Any, vendor: str, mode: str
) -> None:
    # The cap is above the Retry-After, so the model is called again once it has passed.
    configure(settings, upstreams, RETRY_ATTEMPTS=3, RETRY_BASE_DELAY=0.01, RETRY_MAX_DELAY=5)
    upstream = upstreams[vendor]
    limited = BY_NAME[vendor].error_body(429, "Rate limit reached. Try again in 1s.")
    upstream.enqueue(Reply.json(429, limited, **{"retry-after": "1"}), Reply.stream(answer(vendor, "Hello")))

    sse = post(mode, api, user, body(vendor))

    assert_answered(sse, vendor, "Hello")
    assert len(upstream.requests) == 2
    waited = upstream.requests[1].received_at - upstream.requests[0].received_at
    assert 0.98 <= waited < 3.0  # the Retry-After, not the 0.01 s backoff


FAILOVERS = [("openai", 503, "anthropic"), ("anthropic", 529, "gemini"), ("gemini", 503, "openai")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("first", "status", "fallback"), FAILOVERS)
def test_a_model_that_keeps_failing_falls_back_to_another_vendor(
    upstreams: dict[str, FakeUpstream],
    settings: Any,
    api: Client,
    user: Any,
    first: str,
    status: int,
    fallback: str,
    mode: str,
) -> None:
    configure(settings, upstreams, RETRY_ATTEMPTS=2, FALLBACKS={MODEL[first]: [MODEL[fallback]]})
    busy = BY_NAME[first].error_body(status, "The model is overloaded.")
    upstreams[first].enqueue(Reply.json(status, busy), Reply.json(status, busy))
    upstreams[first].enqueue(Reply.stream(answer(first, "A third call")))  # must not be made
    upstreams[fallback].enqueue(Reply.stream(answer(fallback, "From the fallback")))

    sse = post(mode, api, user, body(first))

    assert len(upstreams[first].requests) == 2  # RETRY_ATTEMPTS calls, then the fallback
    assert len(upstreams[fallback].requests) == 1
    assert_answered(sse, fallback, "From the fallback")
    conversation = api.get(f"/api/conversations/{Message.objects.get(role='assistant').conversation_id}")
    assert conversation.json()["messages"][-1]["model"] == MODEL[fallback]


MID_STREAM = [("openai", "upstream"), ("anthropic", "overloaded"), ("gemini", "overloaded")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("vendor", "code"), MID_STREAM)
def test_an_error_in_the_middle_of_the_stream_keeps_the_text_and_is_not_retried(
    upstreams: dict[str, FakeUpstream],
    settings: Any,
    api: Client,
    user: Any,
    vendor: str,
    code: str,
    mode: str,
) -> None:
    other = "anthropic" if vendor == "openai" else "openai"
    configure(settings, upstreams, RETRY_ATTEMPTS=3, FALLBACKS={MODEL[vendor]: [MODEL[other]]})
    wire = BY_NAME[vendor]
    overloaded = vendor != "openai"  # OpenAI's error chunks are server errors
    failing = [
        *wire.partial("Partial answer"),
        *wire.stream_error("Overloaded, sorry.", overloaded=overloaded),
    ]
    upstreams[vendor].enqueue(Reply.stream(failing), Reply.stream(answer(vendor, "A retry")))
    upstreams[other].enqueue(Reply.stream(answer(other, "A fallback")))

    sse = post(mode, api, user, body(vendor))

    kinds = [event["type"] if isinstance(event, dict) else event for event in parse_events(sse)]
    assert kinds[-4:] == ["text-end", "error", "finish", "[DONE]"]
    [error] = errors(sse)
    assert error["code"] == code
    assert "Overloaded, sorry." in error["errorText"]
    assert finish(sse)["finishReason"] == "error"
    assert finish(sse)["messageMetadata"]["status"] == "error"
    assert text_of(parse_events(sse)) == "Partial answer"
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content, message.error_code) == ("error", "Partial answer", code)
    assert message.model == MODEL[vendor]
    assert (len(upstreams[vendor].requests), len(upstreams[other].requests)) == (1, 0)  # nothing retried
    assert Usage.objects.get().estimated is True
